// Network namespaces of instances: creating one that holds only loopback (pinned by a bind mount, as
// `ip netns add` does), and opening a TCP connection inside one from a process that lives outside it.
// Both switch the calling thread's network namespace for a moment (setns(2) applies to one thread),
// which Swift cannot do safely between two of its own calls.
#ifndef IMGDEPLOY_NETWORK_NAMESPACE_H
#define IMGDEPLOY_NETWORK_NAMESPACE_H

#include <stdint.h>

/// Creates a network namespace with loopback up, in which unprivileged processes may bind any port,
/// and pins it at `path` (a file that must not exist yet). Needs CAP_SYS_ADMIN. Returns 0, or an errno value.
int imgdeploy_netns_create(const char *path);

/// Starts a TCP connection to `ipv4:port` (IPv4 text, port in host order) from inside the network
/// namespace pinned at `path`, without waiting: returns a non-blocking, close-on-exec socket with
/// TCP_NODELAY set, and sets `*in_progress` to 1 when the connection is not made yet (wait until the
/// socket is writable, then read SO_ERROR), or returns -errno. The thread is back in its own namespace
/// when this returns, after a moment measured in microseconds: it may be an event loop's.
int imgdeploy_netns_connect(const char *path, const char *ipv4, uint16_t port, int *in_progress);

#endif
