/*
 * cdb_musl.c - linked into smap only when it is built with musl
 * (LIBC=musl). Debian's libcdb.a, tinycdb's reader, is compiled against
 * glibc and calls three of glibc's large-file names; musl 1.2.3 still
 * has them as aliases, musl 1.2.4 and later do not. On a 64-bit system
 * each is the plain call, so each forwards to it.
 *
 * TRUST: nothing of its own; it passes its callers' arguments on.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#undef mmap64			/* musl 1.2.3's headers map these names */
#undef lseek64

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
off_t lseek64(int fd, off_t off, int whence);
int __fxstat64(int ver, int fd, struct stat *st);

void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

off_t
lseek64(int fd, off_t off, int whence)
{
	return lseek(fd, off, whence);
}

/* __fxstat64 - glibc's fstat of old: ver names a struct stat layout,
 * and x86_64 has one */
int
__fxstat64(int ver, int fd, struct stat *st)
{
	(void)ver;
	return fstat(fd, st);
}
