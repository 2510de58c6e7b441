// Umbrella header for the system library libseccomp, with its function-like macros as functions
// (Swift imports neither macros with arguments nor variadic functions).
#include <seccomp.h>
#include <stdint.h>

static inline uint32_t imgdeploy_seccomp_errno(uint16_t error) { return SCMP_ACT_ERRNO(error); }
static inline uint32_t imgdeploy_seccomp_allow(void) { return SCMP_ACT_ALLOW; }
static inline int imgdeploy_seccomp_unknown(void) { return __NR_SCMP_ERROR; }
