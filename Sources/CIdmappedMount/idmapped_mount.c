#define _GNU_SOURCE
#include "idmapped_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_map(pid_t pid, const char *file, uint32_t base, uint32_t size) {
    char path[64], map[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int length = snprintf(map, sizeof map, "0 %u %u\n", base, size);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int error = write(fd, map, (size_t)length) == length ? 0 : errno;
    close(fd);
    return error;
}

/// A user namespace with the mapping, held by a child that waits for `release` to close.
static int make_user_namespace(uint32_t base, uint32_t size, int *namespace_fd) {
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) != 0) return errno;
    // A raw clone rather than fork(): the child runs no fork handlers of this process's libraries and
    // makes only system calls (it waits on the pipe, then exits).
    long child = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (child < 0) { int error = errno; close(hold[0]); close(hold[1]); return error; }
    if (child == 0) {
        char byte;
        syscall(SYS_close, hold[1]);
        syscall(SYS_read, hold[0], &byte, 1);
        syscall(SYS_exit, 0);
    }
    close(hold[0]);
    int error = write_map((pid_t)child, "uid_map", base, size);
    if (error == 0) error = write_map((pid_t)child, "gid_map", base, size);
    if (error == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/ns/user", child);
        *namespace_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*namespace_fd < 0) error = errno;
    }
    close(hold[1]);
    while (waitpid((pid_t)child, NULL, __WALL) < 0 && errno == EINTR) {}
    return error;
}

int imgdeploy_idmapped_bind(const char *source, const char *target, uint32_t base, uint32_t size) {
    int userns = -1;
    int error = make_user_namespace(base, size, &userns);
    if (error != 0) return error;
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) { error = errno; close(userns); return error; }
    struct mount_attr attributes;
    memset(&attributes, 0, sizeof attributes);
    attributes.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attributes.userns_fd = (uint64_t)userns;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attributes, sizeof attributes) != 0) error = errno;
    else if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) error = errno;
    close(tree);
    close(userns);
    return error;
}
