// Extended attributes (<sys/xattr.h>), which Swift's Glibc module does not include.
#include <sys/types.h>
#include <sys/xattr.h>
