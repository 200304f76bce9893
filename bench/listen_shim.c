/*
 * bench/listen_shim.c - for make bench only, loaded with LD_PRELOAD into
 * OpenSMTPD: listen(2) with a backlog of at least BACKLOG (the kernel
 * caps it at net.core.somaxconn). Debian's OpenSMTPD listens with a
 * backlog of 5, so under concurrency its column measured how many
 * connections the kernel would queue, not how fast it receives. Nothing
 * else is changed. Trusts nothing; never installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/socket.h>

#define BACKLOG 4096

int listen(int fd, int backlog);

/* listen - the real listen(2), with the larger backlog */
int
listen(int fd, int backlog)
{
	static int (*real)(int, int);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "listen");
	if (real == NULL)
		return -1;
	return real(fd, backlog < BACKLOG ? BACKLOG : backlog);
}
