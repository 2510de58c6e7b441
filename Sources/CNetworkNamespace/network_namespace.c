#define _GNU_SOURCE
#include "network_namespace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/// Returns the calling thread to the namespace it came from; a thread that cannot go back would go on
/// serving in the wrong namespace, so the process stops instead.
static void return_to(int original) {
    if (setns(original, CLONE_NEWNET) != 0) abort();
    close(original);
}

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t written = write(fd, text, strlen(text));
    int error = written < 0 ? errno : 0;
    close(fd);
    return error;
}

int imgdeploy_netns_create(const char *path) {
    int pin = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (pin < 0) return errno;
    close(pin);
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) { int error = errno; unlink(path); return error; }
    if (unshare(CLONE_NEWNET) != 0) { int error = errno; close(original); unlink(path); return error; }
    int error = 0;
    if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) != 0) error = errno;
    if (error == 0) {
        int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq request;
        memset(&request, 0, sizeof request);
        strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
        if (control < 0 || ioctl(control, SIOCGIFFLAGS, &request) != 0) error = errno;
        else {
            request.ifr_flags |= IFF_UP;
            if (ioctl(control, SIOCSIFFLAGS, &request) != 0) error = errno;
        }
        if (control >= 0) close(control);
    }
    // /proc/sys/net shows the namespace of the thread that opens it: this one, for now. Any port may
    // be bound inside, as Docker allows, so no instance needs CAP_NET_BIND_SERVICE for port 80.
    if (error == 0) error = write_text("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
    return_to(original);
    if (error != 0) {
        umount2(path, MNT_DETACH);
        unlink(path);
    }
    return error;
}

int imgdeploy_netns_connect(const char *path, const char *ipv4, uint16_t port, int *in_progress) {
    *in_progress = 0;
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (inet_pton(AF_INET, ipv4, &address.sin_addr) != 1) return -EINVAL;
    int target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) return -errno;
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) { int error = errno; close(target); return -error; }
    if (setns(target, CLONE_NEWNET) != 0) { int error = errno; close(target); close(original); return -error; }
    close(target);
    // The socket belongs to the namespace it was created in, wherever it is used afterwards.
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int error = fd < 0 ? errno : 0;
    return_to(original);
    if (fd < 0) return -error;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (errno == EINPROGRESS) { *in_progress = 1; return fd; }
        error = errno;
        close(fd);
        return -error;
    }
    return fd;
}
