// Umbrella header for the system library libzstd.
#include <zstd.h>
#include <zstd_errors.h>
