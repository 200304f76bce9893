/*
 * trusted.h - open a file that only root (or the running user) can
 * change: the file and every directory above it are owned by root or
 * by the effective user and writable by nobody else. For code smap
 * loads into itself (smap-tls.so) and files it must not be tricked
 * into reading.
 */
#ifndef SMAP_TRUSTED_H
#define SMAP_TRUSTED_H

#include <stddef.h>

/* Open path (absolute) read-only, then check the open file with fstat
 * and each directory above it: fd, or -1 with the path and the cause
 * in why. Check the descriptor, then use it (e.g. /proc/self/fd/N):
 * the name may change after the check, the open file cannot. */
int trusted_open(const char *path, char *why, size_t len);

/* Load the shared object at path only if trusted_open() accepts it,
 * from that very descriptor (/proc/self/fd/N), and find symbol in it:
 * its address, or NULL with why. */
void *trusted_dlsym(const char *path, const char *symbol, char *why,
    size_t len);

/* A program that cannot load modules runs one that can in its place:
 * a static smap (common/static/notls.c) runs dir/smap-dynamic, the same
 * smap linked with the shared C library, with argv, from the descriptor
 * trusted_open() accepted; back only when that failed (its
 * trusted_dlsym() then says why). Where modules load (trusted_load.c),
 * nothing. */
void trusted_modules_exec(const char *dir, char *const argv[]);

#endif
