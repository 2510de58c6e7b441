// Umbrella header for the system library libarchive.
#include <archive.h>
#include <archive_entry.h>
