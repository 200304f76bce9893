/*
 * notls.c - linked into a statically linked smap (the default build;
 * not with STATIC=0 or SAN=1) in place of trusted_load.c's module
 * loader. A static smap cannot load smap-tls.so (the module needs the
 * shared C library and OpenSSL's shared objects), so where TLS is on it
 * runs smap-dynamic, its own build linked with the shared C library,
 * from beside the module (shlib_directory), judged as the module would
 * be (trusted_open()). When that cannot be run, TLS is refused with the
 * reason, by smap -t and at start.
 *
 * The same holds for NSS modules: past "files" they are shared objects
 * too, and one loaded into a static program crashes it. So a static smap
 * looks users and groups up in /etc/passwd and /etc/group only (files_only
 * below, before main); a mail_owner or smapd_user kept elsewhere (LDAP,
 * sss) is an unknown user to it, said as such (STATIC=0 builds the smap
 * that asks NSS).
 *
 * TRUST: what trusted_open() accepts. smap-dynamic is smap itself; a
 * copy of this static build put in its place would run itself again:
 * that is refused the second time (same file as /proc/self/exe).
 */
#include <errno.h>
#include <nss.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "trusted.h"

extern char **environ;

static char failed[4200];	/* why smap-dynamic was not run */

/* files_only - passwd and group from the files NSS built into the C
 * library, never a module: before main, before any lookup */
static void __attribute__((constructor))
files_only(void)
{
	(void)__nss_configure_lookup("passwd", "files");
	(void)__nss_configure_lookup("group", "files");
}

/* trusted_modules_exec - run dir/smap-dynamic with argv; back on failure */
void
trusted_modules_exec(const char *dir, char *const argv[])
{
	char path[4096];
	struct stat me, it;
	int fd;

	if (snprintf(path, sizeof(path), "%s/smap-dynamic", dir) >=
	    (int)sizeof(path)) {
		snprintf(failed, sizeof(failed), "%s/: path too long", dir);
		return;
	}
	if ((fd = trusted_open(path, failed, sizeof(failed))) < 0)
		return;
	if (stat("/proc/self/exe", &me) == 0 && fstat(fd, &it) == 0 &&
	    me.st_dev == it.st_dev && me.st_ino == it.st_ino)
		snprintf(failed, sizeof(failed), "%s: is this static smap, "
		    "not its dynamic build", path);
	else {
		(void)fexecve(fd, argv, environ);
		snprintf(failed, sizeof(failed), "%s: %s", path,
		    strerror(errno));
	}
	(void)close(fd);
}

/* trusted_dlsym - no modules in a static smap: NULL and why */
void *
trusted_dlsym(const char *path, const char *symbol, char *why, size_t len)
{
	(void)symbol;
	snprintf(why, len, "%s: this smap is linked statically and loads no "
	    "modules, and its dynamic build, which does, could not be run: %s",
	    path, failed[0] ? failed : "not tried");
	return NULL;
}
