// Idmapped mounts (mount_setattr(2) with MOUNT_ATTR_IDMAP, Linux 5.12+): a view of a folder in which
// every owner is shifted, so that an instance in a user namespace sees its release's files owned as
// the image says while the host sees unprivileged ids. The C library wraps none of these calls.
#ifndef IMGDEPLOY_IDMAPPED_MOUNT_H
#define IMGDEPLOY_IDMAPPED_MOUNT_H

#include <stdint.h>

/// Mounts a read-only view of `source` at `target` (an existing folder) in which user and group ids
/// 0..size-1 appear as base..base+size-1 (others as the overflow id). Needs CAP_SYS_ADMIN. Returns 0,
/// or an errno value (EINVAL or ENOSYS where the kernel or the file system cannot idmap).
int imgdeploy_idmapped_bind(const char *source, const char *target, uint32_t base, uint32_t size);

#endif
