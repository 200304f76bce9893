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
 * smap -t, which asks libpsl (suffix.c) too, always runs smap-dynamic;
 * where it cannot, this file's suffix_public() leaves that check out,
 * with a warning.
 *
 * TRUST: what trusted_open() accepts. smap-dynamic is smap itself; one
 * that is not a dynamically linked program (a copy of this static build
 * would run itself again and again) is refused.
 */
#include <elf.h>
#include <errno.h>
#ifdef __GLIBC__
#include <nss.h>
#endif
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "suffix.h"
#include "trusted.h"

extern char **environ;

static char failed[4200];	/* why smap-dynamic was not run */

#ifdef __GLIBC__
/* files_only - passwd and group from the files NSS built into the C
 * library, never a module: before main, before any lookup. (musl, the
 * default static build's C library, has no NSS: it reads the files.) */
static void __attribute__((constructor))
files_only(void)
{
	static const char msg[] = "smap: cannot keep NSS to its files (out "
	    "of memory?): refusing to run\n";

	if (__nss_configure_lookup("passwd", "files") != 0 ||
	    __nss_configure_lookup("group", "files") != 0) {
		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
		_exit(71);	/* EX_OSERR, before anything is read */
	}
}
#endif

/* dynamic - is the program open on fd linked dynamically (an ELF file
 * with a PT_INTERP header)? A copy of this static smap is not, so it is
 * never run in a loop; nor is a script. */
static int
dynamic(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	unsigned i;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph) || eh.e_phnum > 64)
		return 0;
	for (i = 0; i < eh.e_phnum; i++)
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i *
		    sizeof(ph))) != (ssize_t)sizeof(ph))
			return 0;
		else if (ph.p_type == PT_INTERP)
			return 1;
	return 0;
}

/* trusted_modules_exec - run dir/smap-dynamic with argv; back on failure */
void
trusted_modules_exec(const char *dir, char *const argv[])
{
	char path[4096];
	int fd;

	if (snprintf(path, sizeof(path), "%s/smap-dynamic", dir) >=
	    (int)sizeof(path)) {
		snprintf(failed, sizeof(failed), "%s/: path too long", dir);
		return;
	}
	if ((fd = trusted_open(path, failed, sizeof(failed))) < 0)
		return;
	if (!dynamic(fd))
		snprintf(failed, sizeof(failed), "%s: not a dynamically "
		    "linked program (a copy of the static smap?)", path);
	else {
		(void)fexecve(fd, argv, environ);
		snprintf(failed, sizeof(failed), "%s: %s", path,
		    strerror(errno));
	}
	(void)close(fd);
}

/* suffix_public - nor libpsl (suffix.c): the check is left to
 * smap-dynamic, which smap -t runs; when it could not, -t warns */
int
suffix_public(const char *domain, char *err, size_t len)
{
	(void)domain;
	snprintf(err, len, "this smap is linked statically and loads no "
	    "libraries, and its dynamic build could not be run: %s",
	    failed[0] ? failed : "not tried");
	return -1;
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
