/*
 * suffix.c - the public suffix list, asked through libpsl (see suffix.h).
 *
 * libpsl is loaded with dlopen, and only by -t: a smap session never
 * pays for it and its IDN libraries, and neither program links it.
 * The list is the newer of libpsl's built-in one and the system's
 * (Debian's publicsuffix package), as psl_latest() chooses.
 *
 * TRUST: libpsl as installed (a system library, found by the dynamic
 * linker's own search); the domain comes from the configuration.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <libpsl.h>

#include "suffix.h"

#define LIBPSL "libpsl.so.5"

typedef psl_ctx_t *(*latest_fn)(const char *);
typedef int (*public_fn)(const psl_ctx_t *, const char *, int);

/* suffix_public - a listed suffix (not merely an unknown top-level one) */
int
suffix_public(const char *domain, char *err, size_t len)
{
	static void *lib;
	static const psl_ctx_t *psl;
	static public_fn is_public;
	latest_fn latest;

	if (psl == NULL) {
		if (lib == NULL && (lib = dlopen(LIBPSL, RTLD_NOW)) == NULL) {
			snprintf(err, len, "%s (Debian: libpsl5) cannot be "
			    "loaded: %s", LIBPSL, dlerror());
			return -1;
		}
		latest = (latest_fn)dlsym(lib, "psl_latest");
		is_public = (public_fn)dlsym(lib, "psl_is_public_suffix2");
		if (latest == NULL || is_public == NULL ||
		    (psl = latest(NULL)) == NULL) {
			snprintf(err, len, "%s has no public suffix list", LIBPSL);
			return -1;
		}
	}
	return is_public(psl, domain, PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE) != 0;
}
