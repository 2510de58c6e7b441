// Descriptors between processes: sending and receiving one over a Unix socket (SCM_RIGHTS), whose
// control-message macros Swift cannot call, and closing those a process should not have inherited; and
// which process is at the other end of such a socket.
#ifndef IMGDEPLOY_DESCRIPTOR_PASSING_H
#define IMGDEPLOY_DESCRIPTOR_PASSING_H

#include <stddef.h>
#include <sys/types.h>
#include <spawn.h>

/// Sends `length` bytes of `data` (at least one) with `descriptor` attached. Returns the bytes sent, or -1 with errno set.
ssize_t imgdeploy_send_with_descriptor(int socket, const void *data, size_t length, int descriptor);

/// Receives up to `capacity` bytes into `buffer`; a descriptor that came with them is stored in
/// `*descriptor` (close-on-exec), else -1. Returns the bytes received, or -1 with errno set.
ssize_t imgdeploy_receive_with_descriptor(int socket, void *buffer, size_t capacity, int *descriptor);

/// Starts `path` with `argv` and `envp` as a child whose standard input is `input` and whose standard
/// output and error go to `output`, with no other descriptor of this process (however it was opened),
/// no blocked signals and default signal handling. Returns 0 and the child's pid, or an errno value.
int imgdeploy_spawn_clean(const char *path, char *const argv[], char *const envp[], int input, int output, pid_t *pid);

/// The pid of the process at the other end of the Unix stream socket `socket`, as the kernel recorded it
/// when the connection was made (SO_PEERCRED, whose struct Swift cannot see); 0 if it cannot be read.
pid_t imgdeploy_peer_process(int socket);

#endif
