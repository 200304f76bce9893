/*
 * t_jail.c - jail_user() (common/jail.c) gives getpwnam()'s answer.
 *
 * Usage: t_jail   (as root: it needs a mount namespace of its own)
 *
 * In a private mount namespace a fresh directory is bound over /etc,
 * holding only nsswitch.conf and passwd, written per case. For each
 * case and name, jail_user() must say what getpwnam() says (found or
 * not, uid, gid): files first, files after another source, [actions],
 * two passwd lines, leading blanks, invalid and comment lines before the
 * real entry, "+name" lines, CRLF, an overlong line, a missing file.
 * Then the two answers kept for a session must follow a change at
 * once: passwd replaced by rename (as shadow-utils, vipw and
 * systemd-sysusers write it), passwd rewritten in place with the same
 * size, nsswitch.conf changed to a source without the user.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "jail.h"
#include "tap.h"

static char dir[64];

/* put - write a file of the fake /etc, by rename like the real tools */
static void
put(const char *name, const char *text)
{
	char tmp[128], to[128];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s/.%s.new", dir, name);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	if ((fp = fopen(tmp, "w")) == NULL || fputs(text, fp) < 0 ||
	    fclose(fp) != 0 || rename(tmp, to) < 0)
		tap_fatal(to);
}

/* agree - jail_user(name) says what getpwnam(name) says */
static void
agree(const char *what, const char *name)
{
	struct passwd *pw;
	uid_t uid = 0;
	gid_t gid = 0;
	int rc = jail_user(name, &uid, &gid);

	pw = getpwnam(name);
	endpwent();
	if (pw == NULL)
		tap_ok(rc < 0, "%s: %s unknown to both", what, name);
	else if (!tap_ok(rc == 0 && uid == pw->pw_uid && gid == pw->pw_gid,
	    "%s: %s is %u:%u for both", what, name, (unsigned)pw->pw_uid,
	    (unsigned)pw->pw_gid))
		tap_diag("jail_user: rc %d, %u:%u", rc, (unsigned)uid,
		    (unsigned)gid);
}

static const char base[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "smt1:x:4101:4201::/:/usr/sbin/nologin\n"
    "smt2:x:4102:4202::/:/usr/sbin/nologin\n";

/* cases - nsswitch.conf and passwd variants, each name compared */
static void
cases(void)
{
	static const struct {
		const char *what, *nss;
	} nss[] = {
		{ "files", "passwd: files\n" },
		{ "files systemd", "# comment\npasswd:         files systemd\n" },
		{ "no colon", "passwd files\n" },
		{ "no space", "passwd:files\n" },
		{ "systemd files", "passwd: systemd files\n" },
		{ "compat", "passwd: compat\n" },
		{ "action", "passwd: files [SUCCESS=continue] systemd\n" },
		{ "two lines, last wins", "passwd: compat\npasswd: files\n" },
		{ "two lines, last is not files", "passwd: files\npasswd: systemd\n" },
		{ "leading blanks", "   passwd: files\n" },
		{ "other databases only", "group: files\nhosts: files dns\n" },
	};
	static const char *const names[] = { "smt1", "smt2", "smt3", "root",
	    "+smt1", "" };
	size_t i, j;

	put("passwd", base);
	for (i = 0; i < sizeof(nss) / sizeof(nss[0]); i++) {
		put("nsswitch.conf", nss[i].nss);
		for (j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			agree(nss[i].what, names[j]);
	}
}

/* lines - passwd files glibc reads line by line its own way */
static void
lines(void)
{
	char longline[3000];

	put("nsswitch.conf", "passwd: files\n");
	put("passwd", "  smt1:x:4111:4211::/:/bin/sh\n\n#smt2:x:1:1::/:/bin/sh\n"
	    "smt2:x:bad:4212::/:/bin/sh\nsmt2:x:4112:4212::/:/bin/sh\n"
	    "+smt3:x:4113:4213::/:/bin/sh\nsmt3:x:4123:4223::/:/bin/sh\r\n");
	agree("leading blanks", "smt1");
	agree("comment, then an invalid line, then the entry", "smt2");
	agree("a +name line, then CRLF", "smt3");
	snprintf(longline, sizeof(longline), "smt1:x:4131:4231:%02000d:/:/bin/sh\n"
	    "smt2:x:4132:4232::/:/bin/sh\n", 0);
	put("passwd", longline);
	agree("an entry longer than jail_user's buffer", "smt1");
	agree("after an overlong line", "smt2");
	put("passwd", "smt1:x:4141:4241\nsmt2:x:4142\n");
	agree("fields missing at the end", "smt1");
	agree("too few fields", "smt2");
}

/* changes - kept answers follow a changed file at once */
static void
changes(void)
{
	char path[128];
	uid_t uid = 0;
	gid_t gid = 0;
	int fd;

	put("nsswitch.conf", "passwd: files\n");
	put("passwd", base);
	agree("before the changes", "smt1");
	agree("before the changes", "smt2");
	put("passwd", "smt1:x:4151:4251::/:/bin/sh\n");
	agree("passwd replaced by rename", "smt1");
	agree("passwd replaced by rename", "smt2");
	snprintf(path, sizeof(path), "%s/passwd", dir);
	if ((fd = open(path, O_WRONLY)) < 0 ||
	    pwrite(fd, "smt1:x:4152:4252", 16, 0) != 16 || close(fd) < 0)
		tap_fatal(path);
	agree("passwd rewritten in place, same size", "smt1");
	tap_ok(jail_user("smt1", &uid, &gid) == 0 && uid == 4152,
	    "the in-place change is seen (uid %u)", (unsigned)uid);
	put("nsswitch.conf", "passwd: compat\n");
	agree("nsswitch.conf changed", "smt1");
	unlink(path);
	put("nsswitch.conf", "passwd: files\n");
	agree("passwd missing", "smt1");
}

/* cleanup - the directory, when a test cannot go on */
static void
cleanup(void)
{
	(void)tap_rmtree(dir);
}

int
main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root (a mount namespace)\n");
		return 0;
	}
	snprintf(dir, sizeof(dir), "/tmp/t_jail.XXXXXX");
	if (mkdtemp(dir) == NULL)
		tap_fatal("mkdtemp");
	tap_on_fatal(cleanup);
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(dir, "/etc", NULL, MS_BIND, NULL) < 0)
		tap_fatal("private /etc");
	cases();
	lines();
	changes();
	(void)umount2("/etc", MNT_DETACH);
	cleanup();
	return tap_done();
}
