/*
 * t_sendmail.c - unit tests for smapd/sendmail.c, the sendmail transport.
 *
 * Usage: t_sendmail [golden-dir]   (the argument is not used)
 *
 * Works in a fresh directory made with mkdtemp(3) below /tmp: spool
 * files are written there with common/spool.c's writer (tmp/, new/) and
 * read back with spool_read_envelope(), as smapd reads them. The
 * "sendmail" is a /bin/sh script written there at run time: it records
 * its arguments (one a line) and its stdin in files and behaves as
 * control files next to it say (exit code, output, hang, die by a
 * signal, do not read stdin, print 100 KB first). Because a #! script
 * never sees its argv[0], one case runs this very program as sendmail
 * (argv[0] "sendmail": fake mode) to record argv[0], the environment
 * and the open descriptors. The directory is removed at the end.
 *
 * A real Postfix sendmail is not run here: that end-to-end test is done
 * elsewhere; this file only says why it is skipped.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
#define BIG_LINES	20000	/* about 1 MB of message */

#define SMALL_MSG	"Received: from client.example\r\nSubject: test\r\n" \
			"\r\nline one\r\n.dot line\r\n..\r\n.\r\nlast line\r\n"
#define SMALL_LF	"Received: from client.example\nSubject: test\n" \
			"\nline one\n.dot line\n..\n.\nlast line\n"

static const char script[] =
    "#!/bin/sh\n"
    "d=$(dirname \"$0\")\n"
    "printf '%s\\n' \"$@\" > \"$d/argv\"\n"
    "if [ -e \"$d/bigout\" ]; then head -c 100000 /dev/zero | tr '\\0' x; fi\n"
    "if [ ! -e \"$d/noread\" ]; then cat > \"$d/stdin\"; fi\n"
    "if [ -e \"$d/output\" ]; then cat \"$d/output\"; fi\n"
    "if [ -e \"$d/hang\" ]; then exec sleep 30; fi\n"
    "if [ -e \"$d/signal\" ]; then kill -9 $$; fi\n"
    "exit $(cat \"$d/exitcode\")\n";

static const char *const controls[] = {
	"argv", "stdin", "exitcode", "output", "noread", "hang", "signal",
	"bigout", "fake",
};

static char work[] = "/tmp/t_sendmail.XXXXXX";
static char fake_sh[PATH_LEN];	/* the script */
static char self[PATH_LEN];	/* this program */
static int made;

/* A spool file, read back. */
struct msg {
	int fd;
	struct envelope env;
	char *lf;		/* the message as sendmail should see it */
	size_t lflen;
};

static struct msg small, big, nullsender;
static struct conf cf;
static char relay[320];		/* d->relay of the last delivery */

static int	fake_sendmail(int, char **);
static void	cleanup(void);
static int	write_file(const char *, const char *, size_t, mode_t);
static void	reset(void);
static void	make_msg(struct msg *, const char *, const char *,
		    size_t, const char *);
static char	*big_message(size_t *, char **, size_t *);
static void	setup(const char *);
static void	set_path(const char *);
static void	deliver(const struct msg *, const size_t *, size_t,
		    struct rcpt_result *);
static void	test_argv_env(void);
static void	test_exact(void);
static void	test_null_sender(void);
static void	test_subset(void);
static void	test_exit_codes(void);
static void	test_enhanced(void);
static void	test_signal(void);
static void	test_timeout(void);
static void	test_noread(void);
static void	test_bigout(void);
static void	test_unsafe(void);
static void	test_missing(void);
static void	test_postfix(void);

/* fake_sendmail - run as "sendmail": record argv, environ, open fds */
static int
fake_sendmail(int argc, char **argv)
{
	extern char **environ;
	struct dirent *e;
	char buf[4096];
	FILE *fp;
	DIR *dp;
	int i;

	if ((fp = fopen("fake", "w")) == NULL)
		return 75;
	for (i = 0; i < argc; i++)
		fprintf(fp, "%s\n", argv[i]);
	for (i = 0; environ[i] != NULL; i++)
		fprintf(fp, "env %s\n", environ[i]);
	if ((dp = opendir("/proc/self/fd")) != NULL) {
		fputs("fds", fp);
		while ((e = readdir(dp)) != NULL)
			if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(dp) &&
			    atoi(e->d_name) != fileno(fp))
				fprintf(fp, " %s", e->d_name);
		fputs("\n", fp);
		closedir(dp);
	}
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return fclose(fp) == 0 ? 0 : 75;
}

/* cleanup - close the spool files, remove the temp directory */
static void
cleanup(void)
{
	if (!made)
		return;
	made = 0;
	if (chdir("/") < 0 || tap_rmtree(work) < 0)
		tap_diag("cannot remove %s: %s", work, strerror(errno));
}

/* write_file - create or replace path with n bytes of s */
static int
write_file(const char *path, const char *s, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int rc;

	if (fd < 0)
		return -1;
	rc = spool_write(fd, s, n);
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* reset - remove every control and record file, exit code 0 */
static void
reset(void)
{
	size_t i;

	for (i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
		(void)unlink(controls[i]);
	if (write_file("exitcode", "0\n", 2, 0600) < 0)
		tap_fatal("exitcode");
	set_path(fake_sh);
	cf.smtp_data_done_timeout = 20;
}

/* make_msg - write a committed spool file, open and read it back */
static void
make_msg(struct msg *m, const char *sender, const char *body, size_t len,
    const char *lf)
{
	m->fd = fx_spool_file(sender, body, len, &m->env);
	m->lflen = strlen(lf);
	if ((m->lf = strdup(lf)) == NULL)
		tap_fatal("strdup");
}

/* big_message - about 1 MB, CRLF, with dot lines; its LF form too */
static char *
big_message(size_t *len, char **lf, size_t *lflen)
{
	char *crlf = NULL, *l = NULL;
	size_t n1 = 0, n2 = 0, i;
	FILE *f1 = open_memstream(&crlf, &n1), *f2 = open_memstream(&l, &n2);

	if (f1 == NULL || f2 == NULL)
		tap_fatal("open_memstream");
	fputs("Subject: big\r\n\r\n", f1);
	fputs("Subject: big\n\n", f2);
	for (i = 0; i < BIG_LINES; i++) {
		fprintf(f1, "%s%05zu the quick brown fox jumps over the dog\r\n",
		    i % 100 == 0 ? "." : "", i);
		fprintf(f2, "%s%05zu the quick brown fox jumps over the dog\n",
		    i % 100 == 0 ? "." : "", i);
	}
	if (fclose(f1) != 0 || fclose(f2) != 0)
		tap_fatal("memstream");
	*len = n1;
	*lf = l;
	*lflen = n2;
	return crlf;
}

/* setup - temp dir as cwd, spool dirs, the script, three messages */
static void
setup(const char *argv0)
{
	char *crlf, *lf;
	size_t len, lflen;

	if (realpath(argv0, self) == NULL)
		tap_fatal("realpath argv[0]");
	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	made = 1;
	if (chdir(work) < 0 || mkdir(LAYOUT_TMP, 0700) < 0 ||
	    mkdir(LAYOUT_NEW, 0700) < 0)
		tap_fatal("spool directory");
	snprintf(fake_sh, sizeof(fake_sh), "%s/fake.sh", work);
	if (write_file(fake_sh, script, strlen(script), 0700) < 0)
		tap_fatal("fake.sh");
	if (conf_defaults(&cf) != 0)
		tap_fatal("conf_defaults");
	make_msg(&small, "<a@b.example>", SMALL_MSG, strlen(SMALL_MSG),
	    SMALL_LF);
	make_msg(&nullsender, "<>", SMALL_MSG, strlen(SMALL_MSG), SMALL_LF);
	crlf = big_message(&len, &lf, &lflen);
	make_msg(&big, "<a@b.example>", crlf, len, lf);
	free(crlf);
	free(lf);
}

/* set_path - sendmail_path = path */
static void
set_path(const char *path)
{
	free(cf.sendmail_path);
	if ((cf.sendmail_path = strdup(path)) == NULL)
		tap_fatal("strdup");
}

/* deliver - run the transport for the recipients idx[0..n) of m */
static void
deliver(const struct msg *m, const size_t *idx, size_t n,
    struct rcpt_result *res)
{
	fx_deliver("sendmail", &cf, &m->env, m->fd, idx, n, res, relay,
	    sizeof(relay));
}

/* test_argv_env - exact argv[0..], environment and descriptors */
static void
test_argv_env(void)
{
	static const size_t idx[] = { 0, 1, 2 };
	struct rcpt_result res[3];
	char *got;

	reset();
	set_path(self);
	deliver(&small, idx, 3, res);
	got = tap_slurp("fake", NULL);
	tap_is(got, "sendmail\n-i\n-f\na@b.example\n--\nc@d.example\n"
	    "e@f.example\npostmaster\nenv PATH=/usr/bin:/bin\nfds 0 1 2\n",
	    "argv, environment and open descriptors of the command");
	free(got);
	fx_check(&res[0], R_SENT, "2.0.0", "delivered via sendmail", "first");
	fx_check(&res[2], R_SENT, "2.0.0", "delivered via sendmail", "third");
}

/* test_exact - argv and stdin bytes as the script sees them */
static void
test_exact(void)
{
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];
	char *got;
	size_t len = 0;

	reset();
	deliver(&small, idx, 2, res);
	got = tap_slurp("argv", NULL);
	tap_is(got, "-i\n-f\na@b.example\n--\nc@d.example\ne@f.example\n",
	    "arguments after argv[0]");
	free(got);
	got = tap_slurp("stdin", &len);
	tap_ok(got != NULL && len == small.lflen &&
	    memcmp(got, small.lf, len) == 0,
	    "stdin: the message with LF line ends, dot lines as they are");
	free(got);
	fx_check(&res[0], R_SENT, "2.0.0", "delivered via sendmail", "exit 0");
	fx_check(&res[1], R_SENT, "2.0.0", "delivered via sendmail", "exit 0");
	tap_is(relay, "sendmail", "relay is sendmail");
	tap_ok(signal(SIGPIPE, SIG_DFL) == SIG_DFL,
	    "SIGPIPE disposition restored after the delivery");
}

/* test_null_sender - "<>" is passed as -f "" */
static void
test_null_sender(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	char *got;

	reset();
	deliver(&nullsender, idx, 1, res);
	got = tap_slurp("argv", NULL);
	tap_is(got, "-i\n-f\n\n--\nc@d.example\n", "null sender is -f \"\"");
	free(got);
	fx_check(&res[0], R_SENT, "2.0.0", NULL, "null sender delivered");
}

/* test_subset - only the recipients in idx are passed */
static void
test_subset(void)
{
	static const size_t idx[] = { 2, 0 };
	struct rcpt_result res[2];
	char *got;

	reset();
	deliver(&small, idx, 2, res);
	got = tap_slurp("argv", NULL);
	tap_is(got, "-i\n-f\na@b.example\n--\npostmaster\nc@d.example\n",
	    "recipients of idx only, in idx order");
	free(got);
}

/* test_exit_codes - every sysexits code and a few others */
static void
test_exit_codes(void)
{
	static const struct {
		int code;
		enum rstatus st;
		const char *dsn;
	} t[] = {
		{ 1, R_BOUNCE, "5.3.0" }, { 64, R_BOUNCE, "5.3.0" },
		{ 65, R_BOUNCE, "5.6.0" }, { 66, R_BOUNCE, "5.3.0" },
		{ 67, R_BOUNCE, "5.1.1" }, { 68, R_BOUNCE, "5.1.2" },
		{ 69, R_BOUNCE, "5.5.0" }, { 70, R_BOUNCE, "5.3.0" },
		{ 71, R_DEFER, "4.3.0" }, { 72, R_BOUNCE, "5.3.0" },
		{ 73, R_BOUNCE, "5.2.0" }, { 74, R_BOUNCE, "5.3.0" },
		{ 75, R_DEFER, "4.3.0" }, { 76, R_BOUNCE, "5.5.0" },
		{ 77, R_BOUNCE, "5.7.0" }, { 78, R_BOUNCE, "5.3.5" },
		{ 100, R_BOUNCE, "5.3.0" }, { 255, R_BOUNCE, "5.3.0" },
	};
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];
	char buf[64], name[32];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		reset();
		snprintf(buf, sizeof(buf), "%d\n", t[i].code);
		if (write_file("exitcode", buf, strlen(buf), 0600) < 0)
			tap_fatal("exitcode");
		deliver(&small, idx, 2, res);
		snprintf(buf, sizeof(buf), "Command died with status %d",
		    t[i].code);
		snprintf(name, sizeof(name), "exit %d", t[i].code);
		fx_check(&res[0], t[i].st, t[i].dsn, buf, name);
		fx_check(&res[1], t[i].st, t[i].dsn, buf, name);
	}
}

/* test_enhanced - a leading enhanced status code in the output */
static void
test_enhanced(void)
{
	static const struct {
		const char *exit, *out;
		enum rstatus st;
		const char *dsn, *text;
	} t[] = {
		{ "1", "4.2.2 mailbox full\n", R_DEFER, "4.2.2", "mailbox full" },
		{ "67", "5.1.1 <c@d>: no such user\nmore\n", R_BOUNCE, "5.1.1",
		    "<c@d>: no such user" },
		{ "75", "5.7.1 denied\n", R_BOUNCE, "5.7.1", "denied" },
		{ "1", "2.0.0 fine\n", R_BOUNCE, "5.3.0", "2.0.0 fine" },
		{ "1", "4.2.2222 bad\n", R_BOUNCE, "5.3.0", "4.2.2222 bad" },
		{ "1", "4.2.x bad\n", R_BOUNCE, "5.3.0", "4.2.x bad" },
		{ "1", "5.7.123 ok\n", R_BOUNCE, "5.7.123", "ok" },
		{ "1", "4.4.7\n", R_DEFER, "4.4.7", "Command died with status 1" },
		{ "0", "4.2.2 not examined\n", R_SENT, "2.0.0",
		    "4.2.2 not examined" },
		{ "1", "tab\there\001\n", R_BOUNCE, "5.3.0", "tab\\x09here\\x01" },
		{ "69", "", R_BOUNCE, "5.5.0", "Command died with status 69" },
	};
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		reset();
		if (write_file("exitcode", t[i].exit, strlen(t[i].exit),
		    0600) < 0 || write_file("output", t[i].out,
		    strlen(t[i].out), 0600) < 0)
			tap_fatal("control file");
		deliver(&small, idx, 1, res);
		snprintf(name, sizeof(name), "exit %s, output %.*s", t[i].exit,
		    (int)strcspn(t[i].out, "\t\n"), t[i].out);
		fx_check(&res[0], t[i].st, t[i].dsn, t[i].text, name);
	}
}

/* test_signal - a command killed by a signal is a temporary failure */
static void
test_signal(void)
{
	static const size_t idx[] = { 0, 1 };
	struct rcpt_result res[2];

	reset();
	if (write_file("signal", "", 0, 0600) < 0)
		tap_fatal("signal");
	deliver(&small, idx, 2, res);
	fx_check(&res[0], R_DEFER, "4.3.0", "Command died with signal 9",
	    "death by signal");
	fx_check(&res[1], R_DEFER, "4.3.0", NULL, "death by signal");
}

/* test_timeout - a hung command is killed at the deadline */
static void
test_timeout(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	struct timespec t0, t1;
	double secs;

	reset();
	cf.smtp_data_done_timeout = 2;
	if (write_file("hang", "", 0, 0600) < 0)
		tap_fatal("hang");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deliver(&small, idx, 1, res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fx_check(&res[0], R_DEFER, "4.3.0", "Command time limit exceeded (2s), "
	    "killed", "hung command");
	tap_ok(secs >= 1.9 && secs < 6, "killed after %.1f s (limit 2 s)",
	    secs);
}

/* test_noread - a command that exits without reading its stdin */
static void
test_noread(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];

	reset();
	if (write_file("noread", "", 0, 0600) < 0 ||
	    write_file("exitcode", "67\n", 3, 0600) < 0)
		tap_fatal("noread");
	deliver(&big, idx, 1, res);
	fx_check(&res[0], R_BOUNCE, "5.1.1", "Command died with status 67",
	    "exit 67 without reading 1 MB (EPIPE)");
	if (write_file("exitcode", "0\n", 2, 0600) < 0)
		tap_fatal("exitcode");
	deliver(&big, idx, 1, res);
	fx_check(&res[0], R_DEFER, "4.3.0", "Command exited before reading the "
	    "whole message", "exit 0 without reading 1 MB (EPIPE)");
}

/* test_bigout - 100 KB of output before reading a 1 MB message */
static void
test_bigout(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	size_t len = 0, n;
	char *got;

	reset();
	if (write_file("bigout", "", 0, 0600) < 0 ||
	    write_file("exitcode", "1\n", 2, 0600) < 0)
		tap_fatal("bigout");
	deliver(&big, idx, 1, res);
	n = strlen(res[0].text);
	fx_check(&res[0], R_BOUNCE, "5.3.0", NULL, "100 KB of output, exit 1");
	tap_ok(n > 400 && n < sizeof(res[0].text) && res[0].text[0] == 'x' &&
	    strcmp(res[0].text + n - 3, "...") == 0,
	    "text: the output cut short (%zu bytes)", n);
	got = tap_slurp("stdin", &len);
	tap_ok(got != NULL && len == big.lflen && memcmp(got, big.lf, len) == 0,
	    "the whole 1 MB message still reached stdin (%zu bytes)", len);
	free(got);
}

/* test_unsafe - the last line of defence against option smuggling */
static void
test_unsafe(void)
{
	static const size_t idx[] = { 0, 1, 2 };
	struct rcpt_result res[3];
	char *saved1 = small.env.rcpt[1], *saved2 = small.env.rcpt[2], *got;
	char sender[sizeof(small.env.sender)];

	reset();
	small.env.rcpt[1] = "<-oQ/tmp/x@e.example>";
	small.env.rcpt[2] = "<a b@e.example>";
	deliver(&small, idx, 3, res);
	got = tap_slurp("argv", NULL);
	tap_is(got, "-i\n-f\na@b.example\n--\nc@d.example\n",
	    "unsafe recipients are not passed");
	free(got);
	fx_check(&res[0], R_SENT, "2.0.0", NULL, "the safe recipient");
	fx_check(&res[1], R_BOUNCE, "5.1.3", "unsafe address", "leading '-'");
	fx_check(&res[2], R_BOUNCE, "5.1.3", "unsafe address", "space");
	small.env.rcpt[1] = saved1;
	small.env.rcpt[2] = saved2;
	reset();
	memcpy(sender, small.env.sender, sizeof(sender));
	snprintf(small.env.sender, sizeof(small.env.sender), "<-bi@x.example>");
	deliver(&small, idx, 3, res);
	fx_check(&res[0], R_BOUNCE, "5.1.3", "unsafe sender address", "sender");
	fx_check(&res[2], R_BOUNCE, "5.1.3", "unsafe sender address", "sender");
	tap_ok(access("argv", F_OK) < 0, "command not run for a bad sender");
	memcpy(small.env.sender, sender, sizeof(sender));
}

/* test_missing - no command at sendmail_path */
static void
test_missing(void)
{
	static const size_t idx[] = { 0 };
	struct rcpt_result res[1];
	char path[PATH_LEN];

	reset();
	snprintf(path, sizeof(path), "%s/nonexistent", work);
	set_path(path);
	deliver(&small, idx, 1, res);
	fx_check(&res[0], R_DEFER, "4.3.0", NULL, "missing sendmail_path");
	tap_ok(strstr(res[0].text, "cannot execute") != NULL,
	    "reason: %s", res[0].text);
}

/* test_postfix - the real thing is tested elsewhere: say why not here */
static void
test_postfix(void)
{
	if (access("/usr/sbin/sendmail", X_OK) < 0)
		tap_ok(1, "# skip no /usr/sbin/sendmail");
	else if (access("/etc/postfix/main.cf", F_OK) < 0)
		tap_ok(1, "# skip /usr/sbin/sendmail exists but no Postfix "
		    "instance is configured (no /etc/postfix/main.cf); the "
		    "end-to-end test with Postfix runs elsewhere");
	else
		tap_ok(1, "# skip Postfix is configured; the end-to-end test "
		    "with Postfix's sendmail runs elsewhere");
}

int
main(int argc, char **argv)
{
	tap_on_fatal(cleanup);
	if (argc > 0 && strcmp(argv[0], "sendmail") == 0)
		return fake_sendmail(argc, argv);
	setup(argv[0]);
	test_argv_env();
	test_exact();
	test_null_sender();
	test_subset();
	test_exit_codes();
	test_enhanced();
	test_signal();
	test_timeout();
	test_noread();
	test_bigout();
	test_unsafe();
	test_missing();
	test_postfix();
	close(small.fd);
	close(big.fd);
	close(nullsender.fd);
	spool_free_envelope(&small.env);
	spool_free_envelope(&big.env);
	spool_free_envelope(&nullsender.env);
	free(small.lf);
	free(big.lf);
	free(nullsender.lf);
	conf_free(&cf);
	cleanup();
	return tap_done();
}
