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

/// Connects to `ipv4:port` (IPv4 text, port in host order) from inside the network namespace pinned at
/// `path`, waiting at most `timeout_ms`. Returns a connected, non-blocking, close-on-exec TCP socket with
/// TCP_NODELAY set, or -errno. The thread is back in its own namespace when this returns.
int imgdeploy_netns_connect(const char *path, const char *ipv4, uint16_t port, int timeout_ms);

#endif
