/*
 * trusted_load.c - load a module only root may change (see trusted.h),
 * in a smap linked with the shared C library. A static smap links
 * common/static/notls.c in its place.
 *
 * TRUST: what trusted_open() accepts; the module is then part of us.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

#include "trusted.h"

/* trusted_modules_exec - this build loads modules itself: nothing to do */
void
trusted_modules_exec(const char *dir, char *const argv[])
{
	(void)dir;
	(void)argv;
}

/* trusted_dlsym - load a module only root may change, from its descriptor */
void *
trusted_dlsym(const char *path, const char *symbol, char *why, size_t len)
{
	char self[64];
	void *h, *sym = NULL;
	int fd;

	if ((fd = trusted_open(path, why, len)) < 0)
		return NULL;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if ((h = dlopen(self, RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (sym = dlsym(h, symbol)) == NULL)
		snprintf(why, len, "%s: %s", path, dlerror());
	(void)close(fd);
	return sym;
}
