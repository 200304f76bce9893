/*
 * t_maildir.c - unit tests for smapd/maildir.c, the maildir transport.
 *
 * Usage: t_maildir [golden-dir]   (the argument is not used)
 *
 * Works in a fresh directory made with mkdtemp(3) below /tmp: spool
 * files are written there with common/spool.c's writer (tmp/, new/),
 * read back with spool_read_envelope() and delivered into Maildirs
 * below it. Checks the bytes, the name and the mode of the delivered
 * file, that tmp/ is left empty, that a symlinked Maildir or tmp/ and
 * a missing parent are deferred, and, on a 16 KiB tmpfs filled up
 * (skipped when mount(2) is not permitted), that ENOSPC defers and
 * cleans up. Everything is unmounted and removed at the end.
 */
#include <sys/mount.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "layout.h"
#include "spool.h"
#include "../../smapd/transport.h"
#include "fixture.h"
#include "tap.h"

#define PATH_LEN	4096
#define BIG_LEN		(64 * 1024)

#define MSG		"Received: from client.example\r\nSubject: test\r\n" \
			"\r\nline one\r\n.dot line\r\n..\r\nlast line\r\n"
#define MSG_LF		"Received: from client.example\nSubject: test\n" \
			"\nline one\n.dot line\n..\nlast line\n"
#define UNSAFE_HEAD	"Return-Path: <a@b.example>\nDelivered-To: e@f.example\n"
#define HOST		"mx/a:b.example"
#define NAME_RE		"^[0-9]+\\.M[0-9]+P[0-9]+Q[0-9]+\\.mx\\\\057a\\\\072b\\.example$"

static char work[] = "/tmp/t_maildir.XXXXXX";
static char full[PATH_LEN];	/* the tmpfs mount point */
static int made, mounted;

/* A spool file, read back. */
struct msg {
	int fd;
	struct envelope env;
};

static struct msg small, nullsender, big;
static struct conf cf;
static char relay[320];

static void	cleanup(void);
static void	make_msg(struct msg *, const char *, const char *, size_t);
static void	setup(void);
static void	wpath(char *, size_t, const char *);
static void	deliver(const char *, const struct msg *, const size_t *,
		    size_t, struct rcpt_result *);
static int	entries(const char *, char *, size_t);
static char	*delivered(const char *, const char *);
static void	test_deliver(void);
static void	test_second(void);
static void	test_null_subset(void);
static void	test_unsafe(void);
static void	test_symlink(void);
static void	test_missing_parent(void);
static int	fill(const char *);
static void	test_full(void);

/* cleanup - unmount the tmpfs, remove the temp tree */
static void
cleanup(void)
{
	if (mounted && umount2(full, MNT_DETACH) < 0)
		tap_diag("umount %s: %s", full, strerror(errno));
	mounted = 0;
	if (!made)
		return;
	made = 0;
	if (chdir("/") < 0 || tap_rmtree(work) < 0)
		tap_diag("cannot remove %s: %s", work, strerror(errno));
}

/* make_msg - write a committed spool file, open and read it back */
static void
make_msg(struct msg *m, const char *sender, const char *body, size_t len)
{
	m->fd = fx_spool_file(sender, body, len, &m->env);
}

/* setup - temp dir as cwd, spool dirs, the messages, the conf */
static void
setup(void)
{
	char *body;
	size_t i;

	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	made = 1;
	if (chdir(work) < 0 || mkdir(LAYOUT_TMP, 0700) < 0 ||
	    mkdir(LAYOUT_NEW, 0700) < 0 || mkdir("mail", 0755) < 0)
		tap_fatal("directories");
	if (conf_defaults(&cf) != 0)
		tap_fatal("conf_defaults");
	free(cf.myhostname);
	if ((cf.myhostname = strdup(HOST)) == NULL)
		tap_fatal("strdup");
	make_msg(&small, "<a@b.example>", MSG, strlen(MSG));
	make_msg(&nullsender, "<>", MSG, strlen(MSG));
	if ((body = malloc(BIG_LEN)) == NULL)
		tap_fatal("malloc");
	for (i = 0; i < BIG_LEN; i++)
		body[i] = i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' : 'x';
	make_msg(&big, "<a@b.example>", body, BIG_LEN);
	free(body);
}

/* wpath - <work>/rel into buf */
static void
wpath(char *buf, size_t len, const char *rel)
{
	if (snprintf(buf, len, "%s/%s", work, rel) >= (int)len) {
		errno = ENAMETOOLONG;
		tap_fatal("path");
	}
}

/* deliver - run the transport for "maildir:<work>/<rel>" */
static void
deliver(const char *rel, const struct msg *m, const size_t *idx, size_t n,
    struct rcpt_result *res)
{
	char spec[PATH_LEN + 16];

	snprintf(spec, sizeof(spec), "maildir:%s/%s", work, rel);
	fx_deliver(spec, &cf, &m->env, m->fd, idx, n, res, relay, sizeof(relay));
}

/* entries - names in <work>/rel (-1: none such); the last one to name */
static int
entries(const char *rel, char *name, size_t len)
{
	char path[PATH_LEN];
	struct dirent *e;
	DIR *dp;
	int n = 0;

	wpath(path, sizeof(path), rel);
	if ((dp = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(dp)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			n++;
			if (name != NULL)
				snprintf(name, len, "%s", e->d_name);
		}
	closedir(dp);
	return n;
}

/* delivered - the bytes of <work>/rel/name, malloc'd */
static char *
delivered(const char *rel, const char *name)
{
	char path[PATH_LEN * 2];

	snprintf(path, sizeof(path), "%s/%s/%s", work, rel, name);
	return tap_slurp(path, NULL);
}

/* test_deliver - a new Maildir: made, one file in new/, exact bytes */
static void
test_deliver(void)
{
	static const size_t idx[] = { 0, 1, 2 };
	struct rcpt_result res[3];
	char name[256] = "", path[PATH_LEN], *got;
	struct stat st;
	regex_t re;

	deliver("mail/Maildir/", &small, idx, 3, res);
	tap_is(relay, "local", "relay is local");
	fx_check(&res[0], R_SENT, "2.0.0", "delivered to maildir", "first");
	fx_check(&res[2], R_SENT, "2.0.0", "delivered to maildir", "third");
	tap_ok(entries("mail/Maildir/new", name, sizeof(name)) == 1 &&
	    entries("mail/Maildir/tmp", NULL, 0) == 0 &&
	    entries("mail/Maildir/cur", NULL, 0) == 0,
	    "one file in new/, tmp/ and cur/ empty");
	got = delivered("mail/Maildir/new", name);
	tap_is(got, "Return-Path: <a@b.example>\nDelivered-To: c@d.example\n"
	    MSG_LF, "bytes: Return-Path, Delivered-To, message with LF");
	free(got);
	if (regcomp(&re, NAME_RE, REG_EXTENDED | REG_NOSUB) != 0)
		tap_fatal("regcomp");
	tap_ok(regexec(&re, name, 0, NULL, 0) == 0,
	    "name <sec>.M<usec>P<pid>Q<n>.<host>, / and : escaped: %s", name);
	regfree(&re);
	snprintf(path, sizeof(path), "%s/mail/Maildir/new/%s", work, name);
	tap_ok(lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600, "regular file, mode 0600");
	wpath(path, sizeof(path), "mail/Maildir/tmp");
	tap_ok(lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700, "tmp/ made with mode 0700");
	wpath(path, sizeof(path), "mail/Maildir");
	tap_ok(lstat(path, &st) == 0 && (st.st_mode & 07777) == 0700,
	    "Maildir made with mode 0700");
}

/* test_second - a second delivery: another name, nothing replaced */
static void
test_second(void)
{
	static const size_t idx[] = { 1 };
	struct rcpt_result res[1];

	deliver("mail/Maildir", &small, idx, 1, res);
	fx_check(&res[0], R_SENT, "2.0.0", "delivered to maildir", "second");
	tap_ok(entries("mail/Maildir/new", NULL, 0) == 2,
	    "two files in new/ after two deliveries");
}

/* test_null_subset - "<>" sender; Delivered-To is the first of idx */
static void
test_null_subset(void)
{
	static const size_t idx[] = { 2, 0 };
	struct rcpt_result res[2];
	char name[256] = "", *got;

	deliver("mail/Null/", &nullsender, idx, 2, res);
	fx_check(&res[0], R_SENT, "2.0.0", NULL, "null sender");
	fx_check(&res[1], R_SENT, "2.0.0", NULL, "null sender");
	entries("mail/Null/new", name, sizeof(name));
	got = delivered("mail/Null/new", name);
	tap_is(got, "Return-Path: <>\nDelivered-To: postmaster\n" MSG_LF,
	    "null sender: Return-Path: <>, Delivered-To the first of idx");
	free(got);
}

/* test_unsafe - nothing unprintable goes into a header */
static void
test_unsafe(void)
{
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];
	char *saved = small.env.rcpt[0], name[256] = "", *got;

	small.env.rcpt[0] = "<x\nBcc: y@z.example>";
	deliver("mail/Unsafe/", &small, idx, 2, res);
	small.env.rcpt[0] = saved;
	fx_check(&res[0], R_BOUNCE, "5.1.3", "unsafe address", "LF in address");
	fx_check(&res[1], R_SENT, "2.0.0", NULL, "the safe recipient");
	entries("mail/Unsafe/new", name, sizeof(name));
	got = delivered("mail/Unsafe/new", name);
	tap_ok(got != NULL && strncmp(got, UNSAFE_HEAD,
	    strlen(UNSAFE_HEAD)) == 0,
	    "Delivered-To is the first safe recipient");
	free(got);
}

/* test_symlink - a symlinked Maildir or tmp/ is refused */
static void
test_symlink(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	char target[PATH_LEN], link[PATH_LEN];

	wpath(target, sizeof(target), "mail/Maildir");
	wpath(link, sizeof(link), "mail/Link");
	if (symlink(target, link) < 0)
		tap_fatal("symlink");
	deliver("mail/Link/", &small, idx, 1, res);
	fx_check(&res[0], R_DEFER, "4.3.0", NULL, "symlinked Maildir");
	tap_ok(strstr(res[0].text, "symbolic link") != NULL, "reason: %s",
	    res[0].text);
	tap_ok(entries("mail/Maildir/new", NULL, 0) == 2 &&
	    entries("mail/Maildir/tmp", NULL, 0) == 0,
	    "nothing written through the symlink");
	if (mkdir("mail/Tmplink", 0700) < 0 || mkdir("mail/elsewhere", 0700) < 0 ||
	    symlink("../elsewhere", "mail/Tmplink/tmp") < 0)
		tap_fatal("symlinked tmp/");
	deliver("mail/Tmplink/", &small, idx, 1, res);
	fx_check(&res[0], R_DEFER, "4.3.0", NULL, "symlinked tmp/");
	tap_ok(entries("mail/elsewhere", NULL, 0) == 0,
	    "nothing written through tmp -> ../elsewhere");
}

/* test_missing_parent - the parent is never created */
static void
test_missing_parent(void)
{
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];

	deliver("nope/Maildir/", &small, idx, 2, res);
	fx_check(&res[0], R_DEFER, "4.3.0", NULL, "missing parent");
	fx_check(&res[1], R_DEFER, "4.3.0", NULL, "missing parent");
	tap_ok(strstr(res[0].text, "No such file or directory") != NULL,
	    "reason: %s", res[0].text);
	tap_ok(entries("nope", NULL, 0) == -1, "parent not created");
}

/* fill - write to <dir>/filler until the file system is full */
static int
fill(const char *dir)
{
	char buf[4096], path[PATH_LEN];
	int fd, rc = -1;

	memset(buf, 'f', sizeof(buf));
	if (snprintf(path, sizeof(path), "%s/filler", dir) >= (int)sizeof(path))
		return -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		return -1;
	for (;;)
		if (write(fd, buf, sizeof(buf)) < 0) {
			rc = errno == ENOSPC ? 0 : -1;
			break;
		}
	(void)close(fd);
	return rc;
}

/* test_full - ENOSPC on a full 16 KiB tmpfs: deferred, tmp/ cleaned */
static void
test_full(void)
{
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];

	wpath(full, sizeof(full), "full");
	if (mkdir(full, 0700) < 0)
		tap_fatal("mkdir full");
	if (mount("tmpfs", full, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=16k,mode=0700") < 0) {
		tap_ok(1, "# skip cannot mount a tmpfs: %s", strerror(errno));
		return;
	}
	mounted = 1;
	deliver("full/Maildir/", &small, idx, 1, res);
	fx_check(&res[0], R_SENT, "2.0.0", NULL, "first delivery on the tmpfs");
	tap_ok(fill(full) == 0, "tmpfs filled up (ENOSPC)");
	deliver("full/Maildir/", &big, idx, 2, res);
	fx_check(&res[0], R_DEFER, "4.3.0", NULL, "full file system");
	fx_check(&res[1], R_DEFER, "4.3.0", NULL, "full file system");
	tap_ok(strstr(res[0].text, "No space left on device") != NULL,
	    "reason: %s", res[0].text);
	tap_ok(entries("full/Maildir/tmp", NULL, 0) == 0 &&
	    entries("full/Maildir/new", NULL, 0) == 1,
	    "tmp/ cleaned up, new/ holds only the first message");
	if (umount2(full, 0) < 0)
		tap_diag("umount %s: %s", full, strerror(errno));
	else
		mounted = 0;
}

int
main(void)
{
	tap_on_fatal(cleanup);
	setup();
	test_deliver();
	test_second();
	test_null_subset();
	test_unsafe();
	test_symlink();
	test_missing_parent();
	test_full();
	close(small.fd);
	close(nullsender.fd);
	close(big.fd);
	spool_free_envelope(&small.env);
	spool_free_envelope(&nullsender.env);
	spool_free_envelope(&big.env);
	conf_free(&cf);
	cleanup();
	return tap_done();
}
