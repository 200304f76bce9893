/*
 * notls.c - linked into a statically linked smap (make STATIC=1, and
 * smap/smap-static) in place of trusted.c's module loader. A static smap
 * cannot load smap-tls.so (the module needs the shared C library and
 * OpenSSL's shared objects), so TLS is refused, with this reason, by
 * smap -t and at start. Trusts nothing.
 */
#include <stdio.h>

#include "trusted.h"

/* trusted_dlsym - no modules in a static smap: NULL and why */
void *
trusted_dlsym(const char *path, const char *symbol, char *why, size_t len)
{
	(void)symbol;
	snprintf(why, len, "%s: this smap is linked statically and loads no "
	    "modules; TLS needs smap built without STATIC=1", path);
	return NULL;
}
