// libFuzzer's entry for programs that have their own main (compiler-rt, FuzzerInterface.h). The fuzz
// binaries are linked with -sanitize=fuzzer, which provides it.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
