// openat2(2), which the C library does not wrap and Swift cannot reach through the variadic syscall(2).
#ifndef IMGBUILD_COPENAT2_H
#define IMGBUILD_COPENAT2_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/// O_PATH, which <fcntl.h> names only with _GNU_SOURCE (and so Swift's Glibc module does not).
static inline int imgbuild_o_path(void) {
#if defined(O_PATH)
    return O_PATH;
#elif defined(__O_PATH)
    return __O_PATH;
#else
    return 0;
#endif
}

/// `struct open_how` of <linux/openat2.h> (its first version, 24 bytes), declared here so that the
/// kernel headers need not be new enough to have it.
struct imgbuild_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/// `how->resolve` flags (Linux 5.6).
#define IMGBUILD_RESOLVE_NO_XDEV 0x01
#define IMGBUILD_RESOLVE_NO_MAGICLINKS 0x02
#define IMGBUILD_RESOLVE_NO_SYMLINKS 0x04
#define IMGBUILD_RESOLVE_BENEATH 0x08
#define IMGBUILD_RESOLVE_IN_ROOT 0x10

/// openat2(dirfd, path, {flags, mode, resolve}): a file descriptor, or -1 with errno set (ENOSYS on a
/// kernel before 5.6 or another system).
static inline int imgbuild_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
#if defined(__linux__) && defined(SYS_openat2)
    struct imgbuild_open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
#else
    (void)dirfd; (void)path; (void)flags; (void)mode; (void)resolve;
    errno = ENOSYS;
    return -1;
#endif
}

#endif
