/*
 * jail.c - chroot, drop to an unprivileged user, clear capabilities.
 *
 * Trusts the configuration for the directory and the user name, and
 * root's /etc/nsswitch.conf and /etc/passwd for what the name stands
 * for (built with musl: /etc/passwd, then a running nscd for a name it
 * lacks). Each step is checked after it is taken; any failure is returned
 * with the step named, and the caller must exit without serving.
 *
 * Order matters: chroot needs CAP_SYS_CHROOT, shrinking the bounding set
 * needs CAP_SETPCAP, setgroups/setgid/setuid need CAP_SETGID/SETUID; all
 * of these are gone once the uid changes, so they come first.
 *
 * Capabilities are read and cleared with capget(2), capset(2) and
 * prctl(2) directly (no libcap: loading it cost each session more than
 * the calls it makes). The bounding set has no call that reads or
 * clears it whole: one pass drops capability 0, 1, ... until the kernel
 * answers EINVAL (no such capability), a second pass reads each one
 * back the same way. The ambient set needs no pass of its own: the
 * kernel keeps it a subset of permitted and inheritable
 * (capabilities(7)), so it is empty when they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "jail.h"

#define CAP_ANY 64		/* the sets are 64 bits: no kernel has more */
#define TEXT_MAX (4 << 20)	/* nsswitch.conf, passwd: larger ones go to NSS */

/* The three sets capget(2) reports, 64 bits each. */
struct caps {
	uint64_t eff, prm, inh;
};

/* say - format the failing step into why; returns -1 */
static int
say(char *why, size_t len, const char *step, int err)
{
	snprintf(why, len, "%s: %s", step, err ? strerror(err) : "did not hold");
	return -1;
}

/* caps_get - this process's effective, permitted and inheritable sets */
static int
caps_get(struct caps *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
	c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

/* caps_clear_sets - empty the effective, permitted and inheritable sets */
static int
caps_clear_sets(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	return (int)syscall(SYS_capset, &h, d);
}

/* A file read whole, and what it was when read (device, inode, size,
 * modification and change times: glibc's test for a changed
 * nsswitch.conf). */
struct text {
	struct stat id;
	char *buf;
	size_t len;
};

/* load - path into t (empty); 0 or -1 */
static int
load(const char *path, struct text *t)
{
	int fd;
	ssize_t n = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	if (fstat(fd, &t->id) == 0 && S_ISREG(t->id.st_mode) &&
	    t->id.st_size < TEXT_MAX &&
	    (t->buf = malloc((size_t)t->id.st_size + 1)) != NULL)
		n = read(fd, t->buf, (size_t)t->id.st_size + 1);
	(void)close(fd);
	if (n != (ssize_t)t->id.st_size) {	/* short, or grew: unsure */
		free(t->buf);
		t->buf = NULL;
		return -1;
	}
	t->len = (size_t)n;
	t->buf[n] = '\0';
	return 0;
}

/* next_line - the line at *p (without its LF) and its length; NULL at
 * the end */
static const char *
next_line(const struct text *t, size_t *off, size_t *len)
{
	const char *p = t->buf + *off, *nl;

	if (*off >= t->len)
		return NULL;
	nl = memchr(p, '\n', t->len - *off);
	*len = nl ? (size_t)(nl - p) : t->len - *off;
	*off += *len + 1;
	return p;
}

/* skip - past the characters of set, not beyond e */
static const char *
skip(const char *p, const char *e, const char *set)
{
	while (p < e && strchr(set, *p) != NULL)
		p++;
	return p;
}

/* files_first - does nsswitch.conf's passwd line (glibc: the last one)
 * start with files, with no [action] after it? Then the first valid
 * entry of /etc/passwd with the name is what NSS would return. */
static int
files_first(const struct text *nss)
{
	const char *p, *e, *w;
	size_t off = 0, len;
	int first = 0;

	while ((p = next_line(nss, &off, &len)) != NULL) {
		e = p + len;
		p = skip(p, e, " \t\r\f\v");
		if (e - p < 7 || memcmp(p, "passwd", 6) != 0 ||
		    strchr(" \t:", p[6]) == NULL)
			continue;
		w = skip(p + 6, e, " \t:");
		for (p = w; p < e && strchr(" \t\r#", *p) == NULL; p++)
			;
		first = p - w == 5 && memcmp(w, "files", 5) == 0;
		p = skip(p, e, " \t");
		if (p < e && *p == '[')
			first = 0;
	}
	return first;
}

/* entry - parse one candidate line, with its LF as in the file, with
 * the C library's passwd parser (fgetpwent over it: the parser its
 * getpwnam applies to /etc/passwd; musl's takes the line's last byte
 * for the LF): 1 and the ids when it is valid and names user */
static int
entry(const char *line, size_t len, const char *user, uid_t *uid, gid_t *gid)
{
	FILE *one = fmemopen((void *)line, len, "r");
	struct passwd *pw;
	int ok;

	if (one == NULL)
		return 0;
	pw = fgetpwent(one);
	ok = pw != NULL && strcmp(pw->pw_name, user) == 0;
	if (ok) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	fclose(one);
	return ok;
}

/* files_lookup - user's entry in /etc/passwd when nsswitch.conf makes
 * that NSS's answer: 1, else 0 */
static int
files_lookup(const char *user, uid_t *uid, gid_t *gid)
{
	struct text nss = { 0 }, pwd = { 0 };
	size_t ulen = strlen(user), off = 0, len;
	const char *p, *e;
	int found = 0;

	if (load("/etc/nsswitch.conf", &nss) == 0 && files_first(&nss) &&
	    load("/etc/passwd", &pwd) == 0)
		while (!found && (p = next_line(&pwd, &off, &len)) != NULL) {
			e = skip(p, p + len, " \t\r\f\v");
			len -= (size_t)(e - p);
			p = e;
			found = len > ulen && memcmp(p, user, ulen) == 0 &&
			    p[ulen] == ':' && entry(p, len + (p + len <
			    pwd.buf + pwd.len), user, uid, gid);	/* and its LF */
		}
	free(nss.buf);
	free(pwd.buf);
	return found;
}

/* jail_user - a user's ids, as getpwnam() would find them; see jail.h */
int
jail_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if (user[0] != '\0' && user[0] != '+' && user[0] != '-' &&
	    files_lookup(user, uid, gid))
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	endpwent();
	return 0;
}

/* enter_root - chroot and chdir, then check that "/" is the directory */
static int
enter_root(const char *root, char *why, size_t len)
{
	struct stat want, got;

	if (stat(root, &want) < 0)
		return say(why, len, root, errno);
	if (!S_ISDIR(want.st_mode))
		return say(why, len, root, ENOTDIR);
	if (chroot(root) < 0)
		return say(why, len, "chroot", errno);
	if (chdir("/") < 0)
		return say(why, len, "chdir /", errno);
	if (stat("/", &got) < 0 || got.st_dev != want.st_dev ||
	    got.st_ino != want.st_ino)
		return say(why, len, "chroot check", 0);
	return 0;
}

/* drop_bounding - one pass over the bounding set, when the process may
 * shrink it (CAP_SETPCAP); it ends where the kernel's capabilities do */
static int
drop_bounding(char *why, size_t len)
{
	struct caps now;
	int c;

	if (caps_get(&now) < 0)
		return say(why, len, "capget", errno);
	if (!(now.eff & (1ULL << CAP_SETPCAP)))
		return 0;	/* unprivileged start: see jail.h */
	for (c = 0; c < CAP_ANY; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return errno == EINVAL && c > 0 ? 0 :
			    say(why, len, "drop from the bounding set", errno);
	return 0;
}

/* bounding_empty - the second pass: no capability left in it */
static int
bounding_empty(void)
{
	int c, r;

	for (c = 0; c < CAP_ANY; c++)
		if ((r = prctl(PR_CAPBSET_READ, c, 0, 0, 0)) != 0)
			return r < 0 && errno == EINVAL && c > 0;
	return 1;
}

/* become - the user's uid and gid, groups = its primary group only */
static int
become(uid_t uid, gid_t gid, char *why, size_t len)
{
	if (getuid() != 0 || geteuid() != 0) {
		/* Started as the user itself (systemd User=): nothing to change. */
		if (getuid() != uid || geteuid() != uid)
			return say(why, len, "not root and not mail_owner", EPERM);
		return 0;
	}
	if (setgroups(1, &gid) < 0)
		return say(why, len, "setgroups", errno);
	if (setresgid(gid, gid, gid) < 0)
		return say(why, len, "setresgid", errno);
	if (setresuid(uid, uid, uid) < 0)
		return say(why, len, "setresuid", errno);
	return 0;
}

/* clear_caps - empty every capability set; no_new_privs unless told not
 * to. A process that holds none already (smapd as systemd starts it,
 * smap after setresuid from root) makes no capset call, so its unit may
 * forbid that call. */
static int
clear_caps(int flags, char *why, size_t len)
{
	struct caps now;

	if (caps_get(&now) < 0)
		return say(why, len, "capget", errno);
	if ((now.eff | now.prm | now.inh) != 0 && caps_clear_sets() < 0)
		return say(why, len, "capset", errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return say(why, len, "clear ambient capabilities", errno);
	if (!(flags & JAIL_ALLOW_SETGID) &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return say(why, len, "no_new_privs", errno);
	return 0;
}

/* verify - check that the drop held */
static int
verify(uid_t uid, gid_t gid, int was_root, int flags, char *why, size_t len)
{
	struct caps now;
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[2];
	int n;

	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
		return say(why, len, "uid check", 0);
	if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
		return say(why, len, "gid check", 0);
	n = getgroups(2, groups);
	if (was_root && (n != 1 || groups[0] != gid))
		return say(why, len, "supplementary groups check", 0);
	if (setuid(0) == 0 || seteuid(0) == 0)
		return say(why, len, "setuid(0) check", 0);
	if (caps_get(&now) < 0 || (now.eff | now.prm | now.inh) != 0)
		return say(why, len, "capability check", 0);
	if (was_root && !bounding_empty())
		return say(why, len, "bounding set check", 0);
	if (!(flags & JAIL_ALLOW_SETGID) && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return say(why, len, "no_new_privs check", 0);
	return 0;
}

/* jail_enter - the whole sequence; see jail.h */
int
jail_enter(const char *root, const char *user, int flags, char *why, size_t len)
{
	int was_root = getuid() == 0 && geteuid() == 0;
	uid_t uid;
	gid_t gid;

	if (jail_user(user, &uid, &gid) < 0)
		return say(why, len, "unknown mail_owner", errno ? errno : ENOENT);
	if (uid == 0 || gid == 0)
		return say(why, len, "mail_owner must not be root", EPERM);
	if (root != NULL && enter_root(root, why, len) < 0)
		return -1;
	if (drop_bounding(why, len) < 0 || become(uid, gid, why, len) < 0 ||
	    clear_caps(flags, why, len) < 0)
		return -1;
	return verify(uid, gid, was_root, flags, why, len);
}
