/*
 * jail.c - chroot, drop to an unprivileged user, clear capabilities.
 *
 * Trusts the configuration for the directory and the user name. Each
 * step is checked after it is taken; any failure is returned with the
 * step named, and the caller must exit without serving.
 *
 * Order matters: chroot needs CAP_SYS_CHROOT, shrinking the bounding set
 * needs CAP_SETPCAP, setgroups/setgid/setuid need CAP_SETGID/SETUID; all
 * of these are gone once the uid changes, so they come first.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/capability.h>

#include "jail.h"

/* say - format the failing step into why; returns -1 */
static int
say(char *why, size_t len, const char *step, int err)
{
	snprintf(why, len, "%s: %s", step, err ? strerror(err) : "did not hold");
	return -1;
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

/* drop_bounding - empty the bounding set when the process may */
static int
drop_bounding(char *why, size_t len)
{
	cap_value_t c;

	if (!CAP_IS_SUPPORTED(CAP_SETPCAP))
		return 0;
	if (prctl(PR_CAPBSET_READ, CAP_SETPCAP) != 1)
		return 0;	/* already outside our bounding set */
	{
		cap_t now = cap_get_proc();
		cap_flag_value_t eff = CAP_CLEAR;

		if (now == NULL)
			return say(why, len, "cap_get_proc", errno);
		cap_get_flag(now, CAP_SETPCAP, CAP_EFFECTIVE, &eff);
		cap_free(now);
		if (eff != CAP_SET)
			return 0;	/* unprivileged start: see jail.h */
	}
	for (c = 0; c <= CAP_LAST_CAP; c++)
		if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) < 0)
			return say(why, len, "cap_drop_bound", errno);
	return 0;
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

/* caps_empty - no capability in any set (bounding too, when asked) */
static int
caps_empty(int bounding)
{
	cap_t now = cap_get_proc(), none = cap_init();
	int same = now && none && cap_compare(now, none) == 0;
	cap_value_t c;

	cap_free(now);
	cap_free(none);
	for (c = 0; same && c <= CAP_LAST_CAP; c++) {
		if (!CAP_IS_SUPPORTED(c))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) > 0)
			same = 0;
		if (bounding && prctl(PR_CAPBSET_READ, c) > 0)
			same = 0;
	}
	return same;
}

/* clear_caps - empty every capability set; no_new_privs unless told not
 * to. A process that holds none already (smapd as systemd starts it)
 * makes no capset call, so its unit may forbid that call. */
static int
clear_caps(int flags, char *why, size_t len)
{
	cap_t none = cap_init();
	int rc;

	if (none == NULL)
		return say(why, len, "cap_init", errno);
	rc = caps_empty(0) ? 0 : cap_set_proc(none);
	cap_free(none);
	if (rc < 0)
		return say(why, len, "cap_set_proc", errno);
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
	if (!caps_empty(was_root))
		return say(why, len, "capability check", 0);
	if (!(flags & JAIL_ALLOW_SETGID) && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return say(why, len, "no_new_privs check", 0);
	return 0;
}

/* jail_enter - the whole sequence; see jail.h */
int
jail_enter(const char *root, const char *user, int flags, char *why, size_t len)
{
	struct passwd *pw;
	int was_root = getuid() == 0 && geteuid() == 0;
	uid_t uid;
	gid_t gid;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		return say(why, len, "unknown mail_owner", errno ? errno : ENOENT);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0 || gid == 0)
		return say(why, len, "mail_owner must not be root", EPERM);
	endpwent();
	if (root != NULL && enter_root(root, why, len) < 0)
		return -1;
	if (drop_bounding(why, len) < 0 || become(uid, gid, why, len) < 0 ||
	    clear_caps(flags, why, len) < 0)
		return -1;
	return verify(uid, gid, was_root, flags, why, len);
}
