"""Power loss, simulated for real: an LD_PRELOAD shim (compiled by the ``shim`` fixture with
gcc) wraps fsync/fdatasync in the server and its children; after each successful call it
records the file's inode and the size it had when the call started (a lower bound of what the
call made durable).  :func:`lose_power` then cuts every AOF back to that size, which is what
the disk could hold after the power went out.
"""

from __future__ import annotations

import os

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_fd = -1;

static void slow_down(void) {
    const char *delay = getenv("FSYNC_SHIM_DELAY_MS");  /* a slow disk, for real */
    if (delay != NULL) usleep((useconds_t)atoi(delay) * 1000);
}

static void note(const struct stat *st) {
    if (log_fd < 0) {
        const char *path = getenv("FSYNC_SHIM_LOG");
        if (path == NULL) return;
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log_fd < 0) return;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%lu %lld\n", (unsigned long)st->st_ino,
                     (long long)st->st_size);
    if (write(log_fd, line, n) != n) { /* best effort */ }
}

#define WRAP(name)                                                          \
    int name(int fd) {                                                      \
        static int (*real)(int);                                            \
        if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, #name);     \
        struct stat st;                                                     \
        int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);           \
        slow_down();                                                        \
        int result = real(fd);                                              \
        if (result == 0 && regular) note(&st);                              \
        return result;                                                      \
    }

WRAP(fsync)
WRAP(fdatasync)
"""

def lose_power(directory, log_path) -> int:
    """Cut every AOF back to its last fsynced size; the bytes removed."""
    durable: dict[int, int] = {}
    if os.path.exists(log_path):
        with open(log_path) as handle:
            for line in handle:
                inode, size = line.split()
                durable[int(inode)] = int(size)
    removed = 0
    for name in os.listdir(directory):
        if not name.endswith(".aof"):
            continue
        path = os.path.join(directory, name)
        stat = os.stat(path)
        keep = min(stat.st_size, durable.get(stat.st_ino, 0))
        removed += stat.st_size - keep
        os.truncate(path, keep)
    return removed
