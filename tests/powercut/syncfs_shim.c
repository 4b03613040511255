/*
 * syncfs_shim.so: LD_PRELOAD it into a program whose syncfs(2) calls should reach
 * powercutfs. The kernel never forwards syncfs to a /dev/fuse daemon (powercutfs.c says
 * why), so after the real syncfs(fd) has returned, this sends PCFS_IOC_SYNCFS on the same
 * fd: powercutfs makes everything durable then, as a disk's syncfs would. On any other file
 * system the ioctl fails with ENOTTY and nothing changes. After a power cut powercutfs
 * answers EIO, which this syncfs returns, as a dead disk's would.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "powercut.h"

int syncfs(int fd);

int syncfs(int fd)
{
        int saved;

        if (syscall(SYS_syncfs, fd) < 0)
                return -1;
        saved = errno;
        if (ioctl(fd, PCFS_IOC_SYNCFS) < 0) {
                if (errno == EIO)
                        return -1;
                errno = saved;
        }
        return 0;
}
