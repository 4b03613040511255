/* The power-cut file system's one ioctl, shared by powercutfs.c and the syncfs shim. */
#ifndef CJA_POWERCUT_H
#define CJA_POWERCUT_H

#include <sys/ioctl.h>

/*
 * "A syncfs(2) of this filesystem has just completed": make everything durable. No data
 * crosses, so FUSE forwards it as a restricted ioctl, on a file or a directory handle. The
 * kernel never forwards syncfs itself to a /dev/fuse daemon (see powercutfs.c).
 */
#define PCFS_IOC_SYNCFS _IO(0xCA, 0x51)

#endif
