/*
 * sendmail.c - the sendmail transport: one run of sendmail_path
 * (normally Postfix's sendmail(1)) per delivery, as
 *
 *	execve(sendmail_path, {"sendmail", "-i", "-f", SENDER, "--",
 *	    RCPT, ..., NULL}, {"PATH=/usr/bin:/bin", NULL})
 *
 * No shell, never -t, no inherited environment, no descriptor but
 * stdin (the message, LF line ends, from msg_copy) and stdout+stderr
 * (one pipe). The null sender is passed as -f "": Postfix's sendmail
 * reads -f as an RFC 822 address, and pipe(8) recommends the empty
 * null_sender= form for commands that feed mail back into Postfix.
 *
 * END OF MESSAGE: sendmail -i reads end of file as the end of the
 * message, so its stdin is never written by smapd, whose death (kill
 * -9) would close the pipe and pass a cut-short message for a whole
 * one. smapd first counts the bytes the command is to read (one pass of
 * msg_copy over the queue file), then forks a guard (feed.c) that
 * starts the command, holds the write end of its stdin (with a holder
 * that outlives the guard's own SIGKILL only to kill the command), and
 * closes it only after exactly that many bytes followed by end of file
 * from smapd; on anything else it kills the command first. smapd sees
 * the guard as the
 * command: same exit status or signal, same process group.
 *
 * TRUST: the envelope passed spool_read_envelope(), but every address
 * is checked once more before it becomes an argument (angle brackets,
 * printable ASCII without space, no leading '-'); one that fails is
 * bounced (5.1.3), never passed. The command is not trusted: its
 * output is kept up to OUT_MAX bytes (the rest is read and dropped),
 * it runs under a hard deadline (smtp_data_done_timeout) after which
 * its process group is killed, and its status is mapped as Postfix
 * pipe(8) maps it: sysexits.h codes, a leading 4.X.X or 5.X.X code in
 * the output overriding a non-zero exit, signals temporary.
 *
 * For the length of a delivery SIGPIPE is ignored (EPIPE is handled)
 * and SIGCHLD has its default action; smapd must not reap children it
 * did not start.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "clock.h"
#include "feed.h"
#include "log.h"
#include "transport.h"

#define OUT_MAX		4096	/* bytes of command output kept */
#define OUT_BURST	65536	/* bytes read before looking at the clock */
#define SLICE_MS	100	/* wake-up interval while the child runs */
#define FIXED_ARGS	5	/* sendmail -i -f SENDER -- */

/* One run of the command. */
struct child {
	pid_t pid;
	int in;			/* message pipe, write end, or -1 */
	int out;		/* output pipe, read end, or -1 */
	long long deadline;	/* CLOCK_MONOTONIC, milliseconds */
	long long size;		/* bytes of message the command must read */
	int status;		/* from waitpid */
	int killed;		/* by us, at the deadline or on error */
	int timedout;		/* the deadline passed */
	int epipe;		/* the command stopped reading the message */
	int werr;		/* other errno writing the message */
	int rerr;		/* errno reading the queue file */
	int lost;		/* errno of waitpid */
	size_t len;
	char buf[OUT_MAX + 1];
};

/* Exit statuses of sysexits.h other than 0; EX_TEMPFAIL and EX_OSERR
 * are temporary as in Postfix (sys_exits.c), the rest permanent. */
static const struct {
	int code;
	enum rstatus st;
	const char *dsn;
} sysexits[] = {
	{ EX_USAGE, R_BOUNCE, "5.3.0" },	{ EX_DATAERR, R_BOUNCE, "5.6.0" },
	{ EX_NOINPUT, R_BOUNCE, "5.3.0" },	{ EX_NOUSER, R_BOUNCE, "5.1.1" },
	{ EX_NOHOST, R_BOUNCE, "5.1.2" },	{ EX_UNAVAILABLE, R_BOUNCE, "5.5.0" },
	{ EX_SOFTWARE, R_BOUNCE, "5.3.0" },	{ EX_OSERR, R_DEFER, "4.3.0" },
	{ EX_OSFILE, R_BOUNCE, "5.3.0" },	{ EX_CANTCREAT, R_BOUNCE, "5.2.0" },
	{ EX_IOERR, R_BOUNCE, "5.3.0" },	{ EX_TEMPFAIL, R_DEFER, "4.3.0" },
	{ EX_PROTOCOL, R_BOUNCE, "5.5.0" },	{ EX_NOPERM, R_BOUNCE, "5.7.0" },
	{ EX_CONFIG, R_BOUNCE, "5.3.5" },
};

/* addr_arg - "<a@b>" without brackets into buf; -1 when unsafe */
static int
addr_arg(const char *a, int null_ok, char *buf, size_t len)
{
	size_t n = strlen(a), i;

	if (n < 2 || a[0] != '<' || a[n - 1] != '>' || n - 2 >= len)
		return -1;
	memcpy(buf, a + 1, n - 2);
	buf[n - 2] = '\0';
	if (buf[0] == '\0')
		return null_ok ? 0 : -1;
	if (buf[0] == '-')
		return -1;
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] >= 0x7f)
			return -1;
	return 0;
}

/* free_argv - the recipients of build_argv, then the array */
static void
free_argv(char **argv)
{
	size_t i;

	for (i = FIXED_ARGS; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* build_argv - the command's argv; unsafe recipients are bounced */
static char **
build_argv(struct delivery *d, char *sender)
{
	char **argv, *s;
	const char *a;
	size_t i, k = 0;

	if ((argv = calloc(d->n + FIXED_ARGS + 1, sizeof(*argv))) == NULL)
		return NULL;
	argv[k++] = "sendmail";
	argv[k++] = "-i";
	argv[k++] = "-f";
	argv[k++] = sender;
	argv[k++] = "--";
	for (i = 0; i < d->n; i++) {
		a = d->env->rcpt[d->idx[i]];
		if ((s = malloc(strlen(a) + 1)) == NULL) {
			free_argv(argv);
			return NULL;
		}
		if (addr_arg(a, 0, s, strlen(a) + 1) < 0) {
			free(s);
			result_set(&d->res[i], R_BOUNCE, "5.1.3",
			    "unsafe address");
			continue;
		}
		argv[k++] = s;
	}
	return argv;
}

/* signals_set - SIGPIPE ignored, SIGCHLD default, for one delivery */
static void
signals_set(struct sigaction *oldpipe, struct sigaction *oldchld)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, oldpipe);
	sa.sa_handler = SIG_DFL;
	(void)sigaction(SIGCHLD, &sa, oldchld);
}

/* signals_restore - undo signals_set */
static void
signals_restore(const struct sigaction *oldpipe,
    const struct sigaction *oldchld)
{
	(void)sigaction(SIGPIPE, oldpipe, NULL);
	(void)sigaction(SIGCHLD, oldchld, NULL);
}

/* run_child - in the child: pipes to 0, 1, 2, nothing else; the guard */
static void __attribute__((noreturn))
run_child(const char *path, char **argv, int in, int out, int maxfd,
    const struct child *c)
{
	int fd;

	/* Move both above 2 first so that no dup2 clobbers the other. */
	if ((in = fcntl(in, F_DUPFD, 3)) < 0 ||
	    (out = fcntl(out, F_DUPFD, 3)) < 0 ||
	    dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(EX_TEMPFAIL);
	if (close_range(3, ~0U, 0) < 0)
		for (fd = 3; fd < maxfd; fd++)
			(void)close(fd);
	feed_guard(path, argv, c->size, c->deadline);
}

/* spawn - fork the guard (feed.c) with its message and output pipes */
static int
spawn(const char *path, char **argv, struct child *c)
{
	long maxfd = sysconf(_SC_OPEN_MAX);
	int in[2], out[2], e;

	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		e = errno;
		(void)close(in[0]);
		(void)close(in[1]);
		return (errno = e, -1);
	}
	if ((c->pid = fork()) == 0)
		run_child(path, argv, in[0], out[1], (int)maxfd, c);
	e = errno;
	(void)close(in[0]);
	(void)close(out[1]);
	if (c->pid < 0) {
		(void)close(in[1]);
		(void)close(out[0]);
		return (errno = e, -1);
	}
	c->in = in[1];
	c->out = out[0];
	(void)fcntl(c->in, F_SETFL, O_NONBLOCK);
	(void)fcntl(c->out, F_SETFL, O_NONBLOCK);
	return 0;
}

/* ms_left - milliseconds until the deadline, 0 when it has passed */
static int
ms_left(const struct child *c)
{
	long long left = c->deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > 86400000LL ? 86400000 : (int)left;
}

/* read_out - take the command's output: keep OUT_MAX bytes, drop the rest */
static void
read_out(struct child *c)
{
	char junk[4096];
	size_t total = 0;
	ssize_t r;

	while (c->out >= 0 && total < OUT_BURST) {
		if (c->len < OUT_MAX)
			r = read(c->out, c->buf + c->len, OUT_MAX - c->len);
		else
			r = read(c->out, junk, sizeof(junk));
		if (r > 0) {
			if (c->len < OUT_MAX)
				c->len += (size_t)r;
			total += (size_t)r;
		} else if (r < 0 && errno == EINTR)
			continue;
		else if (r < 0 && errno == EAGAIN)
			return;
		else {
			(void)close(c->out);	/* end of output, or error */
			c->out = -1;
		}
	}
}

/* count_msg - msg_copy's output, counted only: the size for the guard */
static int
count_msg(void *ctx, const char *p, size_t n)
{
	struct child *c = ctx;

	(void)p;
	c->size += (long long)n;
	return 0;
}

/* put_msg - msg_copy's output: write to the command, reading its output */
static int
put_msg(void *ctx, const char *p, size_t n)
{
	struct child *c = ctx;
	struct pollfd pfd[2];
	ssize_t w;
	int left;

	while (n > 0) {
		if ((left = ms_left(c)) == 0) {
			c->timedout = 1;
			return -1;
		}
		pfd[0] = (struct pollfd){ .fd = c->in, .events = POLLOUT };
		pfd[1] = (struct pollfd){ .fd = c->out, .events = POLLIN };
		if (poll(pfd, 2, left) < 0 && errno != EINTR) {
			c->werr = errno;
			return -1;
		}
		if (pfd[1].revents != 0)
			read_out(c);
		if (pfd[0].revents == 0)
			continue;
		if ((w = write(c->in, p, n)) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EPIPE)
				c->epipe = 1;
			else
				c->werr = errno;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* kill_child - SIGKILL to the command's process group, then reap it */
static void
kill_child(struct child *c)
{
	(void)kill(-c->pid, SIGKILL);
	(void)kill(c->pid, SIGKILL);
	while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
		;
	c->killed = 1;
}

/* wait_child - reap the command, reading its output, until the deadline */
static void
wait_child(struct child *c)
{
	struct pollfd pfd;
	pid_t r;
	int left;

	for (;;) {
		if ((r = waitpid(c->pid, &c->status, WNOHANG)) == c->pid) {
			read_out(c);	/* what is there; a grandchild may
					 * hold the pipe open: no EOF wait */
			return;
		}
		if (r < 0 && errno != EINTR) {
			c->lost = errno;
			return;
		}
		if ((left = ms_left(c)) == 0) {
			c->timedout = 1;
			kill_child(c);
			return;
		}
		/* After end of output, check for the exit every 5 ms. */
		left = left > SLICE_MS ? SLICE_MS : left;
		left = c->out < 0 && left > 5 ? 5 : left;
		pfd = (struct pollfd){ .fd = c->out, .events = POLLIN };
		if (poll(&pfd, c->out >= 0, left) > 0)
			read_out(c);
	}
}

/* dsn_prefix - length of a leading "D.DDD.DDD " code (copied to dsn), or 0 */
static size_t
dsn_prefix(const char *s, char *dsn, size_t len)
{
	size_t i = 1, part, digits;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	for (part = 0; part < 2; part++) {
		if (s[i++] != '.')
			return 0;
		for (digits = 0; s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
	}
	if (s[i] != ' ' && s[i] != '\0')
		return 0;
	snprintf(dsn, len, "%.*s", (int)i, s);
	while (s[i] == ' ')
		i++;
	return i;
}

/* exit_verdict - a non-zero exit: the output's 4.X.X/5.X.X, or sysexits */
static void
exit_verdict(int code, const char *line, struct rcpt_result *v)
{
	const char *text = line, *dsn = "5.3.0";
	enum rstatus st = R_BOUNCE;
	char odsn[16];
	size_t i, n;

	/* A 2.X.X code cannot make a failed exit a success: ignored. */
	if ((n = dsn_prefix(line, odsn, sizeof(odsn))) > 0 && odsn[0] != '2') {
		text = line + n;
		dsn = odsn;
		st = odsn[0] == '4' ? R_DEFER : R_BOUNCE;
	} else {
		for (i = 0; i < sizeof(sysexits) / sizeof(sysexits[0]); i++)
			if (sysexits[i].code == code) {
				st = sysexits[i].st;
				dsn = sysexits[i].dsn;
			}
	}
	if (*text != '\0')
		result_set(v, st, dsn, "%s", text);
	else
		result_set(v, st, dsn, "Command died with status %d", code);
}

/* judge - the command's end as one status, code and text */
static void
judge(const struct child *c, const struct conf *cf, struct rcpt_result *v)
{
	char line[sizeof(v->text)];
	size_t n = 0;

	while (n < c->len && c->buf[n] != '\n' && c->buf[n] != '\r')
		n++;
	log_esc(line, sizeof(line), c->buf, n);
	if (c->rerr)
		result_set(v, R_DEFER, "4.3.0", "cannot read the queue file: %s",
		    strerror(c->rerr));
	else if (c->timedout)
		result_set(v, R_DEFER, "4.3.0", "Command time limit exceeded "
		    "(%llds), killed", cf->smtp_data_done_timeout);
	else if (c->werr)
		result_set(v, R_DEFER, "4.3.0", "cannot write to the command: %s",
		    strerror(c->werr));
	else if (c->lost)
		result_set(v, R_DEFER, "4.3.0", "cannot wait for the command: %s",
		    strerror(c->lost));
	else if (WIFSIGNALED(c->status))
		result_set(v, R_DEFER, "4.3.0", "Command died with signal %d",
		    WTERMSIG(c->status));
	else if (!WIFEXITED(c->status))
		result_set(v, R_DEFER, "4.3.0", "Command ended oddly (%#x)",
		    (unsigned)c->status);
	else if (WEXITSTATUS(c->status) == 0 && c->epipe)
		result_set(v, R_DEFER, "4.3.0", "Command exited before reading "
		    "the whole message");
	else if (WEXITSTATUS(c->status) == 0)
		result_set(v, R_SENT, "2.0.0", "%s", line[0] ? line :
		    "delivered via sendmail");
	else
		exit_verdict(WEXITSTATUS(c->status), line, v);
}

/* run - start the command, feed it the message, judge its end */
static void
run(const struct conf *cf, char **argv, struct delivery *d,
    struct rcpt_result *v)
{
	static struct child c;	/* 4 KiB of output: not on the stack */
	int rc, e;

	memset(&c, 0, sizeof(c));
	c.in = c.out = -1;
	c.deadline = now_ms() + cf->smtp_data_done_timeout * 1000;
	if (msg_copy(d, MSG_LF, count_msg, &c) < 0) {
		result_set(v, R_DEFER, "4.3.0", "cannot read the queue file: %s",
		    strerror(errno));
		return;
	}
	if (spawn(cf->sendmail_path, argv, &c) < 0) {
		result_set(v, R_DEFER, "4.3.0", "cannot start %s: %s",
		    cf->sendmail_path, strerror(errno));
		return;
	}
	rc = msg_copy(d, MSG_LF, put_msg, &c);
	e = errno;
	if (rc < 0 && e != 0)
		c.rerr = e;
	/* Kill before closing stdin: EOF would let a cut-short message
	 * pass for a whole one (the guard would see it short and kill the
	 * command too; this way the verdict says why). */
	if (c.rerr || c.timedout || c.werr)
		kill_child(&c);
	(void)close(c.in);
	if (!c.killed)
		wait_child(&c);
	if (c.out >= 0)
		(void)close(c.out);
	judge(&c, cf, v);
}

/* deliver_sendmail - hand the message to sendmail_path; see transport.h */
void
deliver_sendmail(const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	char sender[ADDR_PATH_MAX + 3], **argv;
	struct sigaction oldpipe, oldchld;
	struct rcpt_result v;
	size_t i;

	(void)t;
	snprintf(d->relay, sizeof(d->relay), "sendmail");
	for (i = 0; i < d->n; i++)
		d->res[i].status = R_PENDING;
	if (addr_arg(d->env->sender, 1, sender, sizeof(sender)) < 0) {
		deliver_all(d, R_BOUNCE, "5.1.3", "unsafe sender address");
		return;
	}
	if ((argv = build_argv(d, sender)) == NULL) {
		deliver_all(d, R_DEFER, "4.3.0", "out of memory");
		return;
	}
	if (argv[FIXED_ARGS] == NULL)
		;		/* every recipient was unsafe and bounced */
	else if (access(cf->sendmail_path, X_OK) < 0) {
		result_set(&v, R_DEFER, "4.3.0", "cannot execute %s: %s",
		    cf->sendmail_path, strerror(errno));
		deliver_set(d, SET_UNDECIDED, v.status, v.dsn, "%s", v.text);
	} else {
		signals_set(&oldpipe, &oldchld);
		run(cf, argv, d, &v);
		signals_restore(&oldpipe, &oldchld);
		deliver_set(d, SET_UNDECIDED, v.status, v.dsn, "%s", v.text);
	}
	free_argv(argv);
}
