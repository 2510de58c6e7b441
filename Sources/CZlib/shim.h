// Umbrella header for the system library libz.
#include <zlib.h>
