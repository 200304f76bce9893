/*
 * t_anvil.c - unit tests for smap/anvil.c: the per-client limits all
 * smap sessions share through one table file.
 *
 * Usage: t_anvil   (makes and removes a temp directory; prints TAP)
 *
 * Each session is a child process (anvil.c keeps the table open for
 * the life of one), run in a directory laid out like smap's chroot
 * (anvil/). Rates: the N+1st event of a client within the time unit is
 * refused with Postfix's reply and warning, another client is not, the
 * window starts again after anvil_rate_time_unit, exempt and unknown
 * clients are never counted. Concurrency: live sessions hold their
 * count, a killed one gives it back. The table: more clients than it
 * holds evict the oldest; a garbage, short or oversize file is rebuilt;
 * garbage entries behind a good magic cause no crash (run it under
 * SAN=1); a symbolic link, a FIFO or another user's file is never used;
 * a table someone keeps locked costs a session ANVIL_WAIT_MS tries,
 * then it goes on without limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../smap/anvil.h"
#include "conf.h"
#include "layout.h"
#include "log.h"
#include "tap.h"

#define TABLE_SIZE (16 + (512 + 256) * 40)	/* magic, rates, slots */

static struct conf cf;
static char dir[64] = "/tmp/t_anvil.XXXXXX", logpath[128];

struct kid {
	pid_t pid;
	int release;		/* write end: closing it ends the session */
};

/* now_ms - the monotonic clock in milliseconds */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* event - one session of client addr counts ev (held: it stays alive,
 * holding its count, until let_go); its reply, "" when let in */
static const char *
event(const char *addr, enum anvil_event ev, struct kid *held)
{
	static char out[512];
	int res[2], rel[2], st;
	struct peer p;
	const char *r;
	ssize_t n;
	pid_t pid;
	char c;

	(void)fflush(stdout);	/* valgrind's exit flushes the child's copy */
	if (pipe(res) < 0 || pipe(rel) < 0 || (pid = fork()) < 0)
		tap_fatal("pipe/fork");
	if (pid == 0) {
		close(res[0]);
		close(rel[1]);
		memset(&p, 0, sizeof(p));
		(void)peer_set(&p, addr, 4711, &cf.mynetworks);
		r = anvil_event(&cf, &p, ev);
		(void)!write(res[1], r ? r : "", r ? strlen(r) : 0);
		close(res[1]);
		if (held)
			(void)!read(rel[0], &c, 1);	/* until let go */
		_exit(0);
	}
	close(res[1]);
	close(rel[0]);
	n = read(res[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(res[0]);
	if (held) {
		held->pid = pid;
		held->release = rel[1];
		return out;
	}
	close(rel[1]);
	(void)waitpid(pid, &st, 0);
	return out;
}

/* let_go - end a held session: SIGTERM, or SIGKILL (killed) */
static void
let_go(struct kid *k, int killed)
{
	int st;

	(void)kill(k->pid, killed ? SIGKILL : SIGTERM);
	close(k->release);
	(void)waitpid(k->pid, &st, 0);
}

/* logged - does the log hold text? */
static int
logged(const char *text)
{
	char *s = tap_slurp(logpath, NULL);
	int found = s != NULL && strstr(s, text) != NULL;

	free(s);
	return found;
}

/* clear_log - an empty log (it is written in append mode) */
static void
clear_log(void)
{
	if (truncate(logpath, 0) < 0)
		tap_fatal(logpath);
}

/* limits - the four limits and the time unit */
static void
limits(long long count, long long conn, long long mail, long long rcpt,
    long long unit)
{
	cf.smtpd_client_connection_count_limit = count;
	cf.smtpd_client_connection_rate_limit = conn;
	cf.smtpd_client_message_rate_limit = mail;
	cf.smtpd_client_recipient_rate_limit = rcpt;
	cf.anvil_rate_time_unit = unit;
}

/* fresh - no table: the next session makes an empty one */
static void
fresh(void)
{
	(void)unlink(ANVIL_TABLE);
}

/* test_rates - N let in, the N+1st refused, others unaffected */
static void
test_rates(void)
{
	const char *r;
	int i, ok = 1;

	fresh();
	limits(0, 3, 2, 4, 60);
	for (i = 0; i < 3; i++)
		ok &= *event("192.0.2.1", ANVIL_CONN, NULL) == '\0';
	tap_ok(ok, "connection rate 3: three connections let in");
	tap_is(event("192.0.2.1", ANVIL_CONN, NULL), "421 4.7.0 mx.test.example "
	    "Error: too many connections from 192.0.2.1", "the fourth: 421 4.7.0");
	tap_ok(logged("warning: Connection rate limit exceeded: 4 from "
	    "unknown[192.0.2.1] for service smtp"), "Postfix's warning logged");
	tap_is(event("192.0.2.1", ANVIL_CONN, NULL), "421 4.7.0 mx.test.example "
	    "Error: too many connections from 192.0.2.1", "the fifth too");
	tap_is(event("192.0.2.2", ANVIL_CONN, NULL), "", "another client: let in");
	tap_is(event("2001:db8::1", ANVIL_CONN, NULL), "", "an IPv6 client: let in");
	for (i = 0, ok = 1; i < 2; i++)
		ok &= *event("192.0.2.1", ANVIL_MAIL, NULL) == '\0';
	r = event("192.0.2.1", ANVIL_MAIL, NULL);
	tap_ok(ok && strcmp(r, "450 4.7.1 Error: too much mail from 192.0.2.1")
	    == 0, "message rate 2: the third MAIL gets \"%s\"", r);
	for (i = 0, ok = 1; i < 4; i++)
		ok &= *event("2001:db8::1", ANVIL_RCPT, NULL) == '\0';
	r = event("2001:db8::1", ANVIL_RCPT, NULL);
	tap_ok(ok && strcmp(r, "450 4.7.1 Error: too many recipients from "
	    "2001:db8::1") == 0, "recipient rate 4: the fifth gets \"%s\"", r);
	tap_ok(logged("warning: Recipient address rate limit exceeded: 5 from "
	    "unknown[2001:db8::1] for service smtp") && logged("warning: "
	    "Message delivery request rate limit exceeded: 3 from "
	    "unknown[192.0.2.1] for service smtp"), "their warnings logged");
}

/* test_exempt - exceptions and unknown clients are never counted */
static void
test_exempt(void)
{
	int i, ok = 1;

	fresh();
	limits(1, 1, 1, 1, 60);
	for (i = 0; i < 5; i++)
		ok &= *event("127.0.0.1", ANVIL_CONN, NULL) == '\0' &&
		    *event("::1", ANVIL_RCPT, NULL) == '\0' &&
		    *event("", ANVIL_MAIL, NULL) == '\0';
	tap_ok(ok, "$mynetworks (exceptions) and unknown clients: never limited");
	tap_ok(access(ANVIL_TABLE, F_OK) < 0, "... and the table not even made");
}

/* test_window - counts start again after anvil_rate_time_unit */
static void
test_window(void)
{
	long long t0, took;
	int again = 0;

	fresh();
	limits(0, 1, 0, 0, 1);
	(void)event("192.0.2.3", ANVIL_CONN, NULL);
	t0 = now_ms();
	tap_ok(*event("192.0.2.3", ANVIL_CONN, NULL) != '\0',
	    "time unit 1s: the second connection refused");
	while (!again && now_ms() - t0 < 3000) {
		usleep(50000);
		again = *event("192.0.2.3", ANVIL_CONN, NULL) == '\0';
	}
	took = now_ms() - t0;
	tap_ok(again && took <= 2100, "let in again after the unit (%lld ms)",
	    took);
}

/* test_concurrency - live sessions count, a killed one gives its back */
static void
test_concurrency(void)
{
	struct kid a, b, c;

	fresh();
	limits(2, 0, 0, 0, 60);
	tap_ok(*event("192.0.2.4", ANVIL_CONN, &a) == '\0' &&
	    *event("192.0.2.4", ANVIL_CONN, &b) == '\0',
	    "count limit 2: two sessions at once let in");
	tap_is(event("192.0.2.4", ANVIL_CONN, NULL), "421 4.7.0 mx.test.example "
	    "Error: too many connections from 192.0.2.4", "a third: 421 4.7.0");
	tap_ok(logged("warning: Connection concurrency limit exceeded: 3 from "
	    "unknown[192.0.2.4] for service smtp"), "Postfix's warning logged");
	tap_is(event("192.0.2.5", ANVIL_CONN, NULL), "", "another client: let in");
	let_go(&a, 1);
	tap_is(event("192.0.2.4", ANVIL_CONN, &c), "",
	    "one killed (SIGKILL): its count is free again");
	tap_is(event("192.0.2.4", ANVIL_CONN, NULL), "421 4.7.0 mx.test.example "
	    "Error: too many connections from 192.0.2.4", "... and taken");
	let_go(&b, 0);
	let_go(&c, 0);
	tap_is(event("192.0.2.4", ANVIL_CONN, NULL), "", "both ended: let in");
}

/* test_evict - a client more than the table holds evicts the oldest */
static void
test_evict(void)
{
	char addr[64];
	time_t t0;
	int i, ok = 1;

	fresh();
	limits(0, 1, 0, 0, 3600);
	(void)event("198.51.100.1", ANVIL_CONN, NULL);
	for (t0 = time(NULL); time(NULL) == t0;)	/* the oldest by a second */
		usleep(20000);
	for (i = 0; i < 512; i++) {
		snprintf(addr, sizeof(addr), "10.9.%d.%d", i / 256, i % 256);
		ok &= *event(addr, ANVIL_CONN, NULL) == '\0';
	}
	tap_ok(ok, "512 more clients, one connection each, let in");
	tap_is(event("198.51.100.1", ANVIL_CONN, NULL), "",
	    "the oldest was evicted: its count starts again");
	tap_ok(*event("10.9.1.255", ANVIL_CONN, NULL) != '\0',
	    "a recent client is still counted");
}

/* write_file - the table replaced by n bytes of what fill makes */
static void
write_file(size_t n, int magic)
{
	unsigned char *b = malloc(n + 1);
	size_t i;
	int fd;

	if (b == NULL)
		tap_fatal("malloc");
	for (i = 0; i < n; i++)
		b[i] = (unsigned char)random();
	if (magic && n >= 16)
		memcpy(b, "smap anvil 1\n", 14);
	fresh();
	if ((fd = open(ANVIL_TABLE, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    write(fd, b, n) != (ssize_t)n || close(fd) < 0)
		tap_fatal(ANVIL_TABLE);
	free(b);
}

/* size - the table's size in bytes, -1 when it is not there */
static long long
size(void)
{
	struct stat st;

	return lstat(ANVIL_TABLE, &st) < 0 ? -1 : (long long)st.st_size;
}

/* test_garbage - a table that is none is rebuilt, garbage never crashes */
static void
test_garbage(void)
{
	static const size_t sizes[] = { 5, TABLE_SIZE, 100000 };
	char addr[64];
	const char *r;
	size_t i;
	int k, ok = 1;

	limits(10, 5, 5, 5, 60);
	for (i = 0; i < 3; i++) {
		write_file(sizes[i], 0);
		clear_log();
		ok = *event("192.0.2.6", ANVIL_CONN, NULL) == '\0' &&
		    logged(ANVIL_TABLE ": not a table of client counts: rebuilt");
		tap_ok(ok && size() == TABLE_SIZE, "%zu bytes of garbage: rebuilt, "
		    "%lld bytes", sizes[i], size());
		ok = 1;
	}
	for (k = 0; k < 20; k++) {
		write_file(TABLE_SIZE, 1);
		snprintf(addr, sizeof(addr), "192.0.2.%d", k);
		r = event(addr, k % 3 == 0 ? ANVIL_CONN : k % 3 == 1 ? ANVIL_MAIL :
		    ANVIL_RCPT, NULL);
		ok &= *r == '\0' || strncmp(r, "4", 1) == 0;
	}
	tap_ok(ok, "20 tables of garbage behind a good magic: each event is "
	    "let in or refused, nothing else (no crash)");
}

/* test_unusable - a link, a FIFO, another user's file: never used */
static void
test_unusable(void)
{
	int i, ok;

	limits(0, 1, 0, 0, 60);
	fresh();
	if (symlink("../victim", ANVIL_TABLE) < 0)
		tap_fatal("symlink");
	for (i = 0, ok = 1; i < 3; i++)
		ok &= *event("192.0.2.7", ANVIL_CONN, NULL) == '\0';
	tap_ok(ok && access("../victim", F_OK) < 0 &&
	    logged(ANVIL_TABLE ": Too many levels of symbolic links"),
	    "a symbolic link: not followed, no limits, warned");
	fresh();
	if (mkfifo(ANVIL_TABLE, 0600) < 0)
		tap_fatal("mkfifo");
	clear_log();
	tap_ok(*event("192.0.2.7", ANVIL_CONN, NULL) == '\0' &&
	    logged(ANVIL_TABLE ": not a plain file of smap's"),
	    "a FIFO: not used, warned");
	write_file(0, 0);
	if (geteuid() == 0 && chown(ANVIL_TABLE, 65534, 65534) == 0) {
		clear_log();
		tap_ok(*event("192.0.2.7", ANVIL_CONN, NULL) == '\0' &&
		    logged(ANVIL_TABLE ": not a plain file of smap's") && size() == 0,
		    "another user's file: not used, not changed");
	} else
		tap_ok(1, "# SKIP another user's file: needs root");
}

/* test_busy - a table locked by another: a bounded wait, then no limits */
static void
test_busy(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 0, .l_len = 1 };
	long long t0, took;
	int fd;

	fresh();
	limits(0, 1, 0, 0, 60);
	(void)event("192.0.2.8", ANVIL_CONN, NULL);
	if ((fd = open(ANVIL_TABLE, O_RDWR)) < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0)
		tap_fatal("lock the table");
	clear_log();
	t0 = now_ms();
	tap_ok(*event("192.0.2.8", ANVIL_CONN, NULL) == '\0' &&
	    logged(ANVIL_TABLE ": busy; no client limits this time"),
	    "a table kept locked: the session goes on, warned");
	took = now_ms() - t0;
	tap_ok(took >= ANVIL_WAIT_MS && took < 5 * ANVIL_WAIT_MS,
	    "... after waiting %lld ms (%d tries, 1 ms apart)", took,
	    ANVIL_WAIT_MS);
	close(fd);
	tap_ok(*event("192.0.2.8", ANVIL_CONN, NULL) != '\0',
	    "unlocked: counted again");
}

/* cleanup - remove the temp directory */
static void
cleanup(void)
{
	if (chdir("/") == 0)
		(void)tap_rmtree(dir);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL || chdir(dir) < 0 || mkdir("jail", 0755) < 0 ||
	    chdir("jail") < 0 || mkdir(LAYOUT_ANVIL, 0700) < 0)
		tap_fatal("temp directory");
	tap_on_fatal(cleanup);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	if (conf_defaults(&cf) != 0 || log_open("t_anvil", "mail", logpath) < 0)
		tap_fatal("conf_defaults/log_open");
	free(cf.myhostname);
	cf.myhostname = strdup("mx.test.example");
	srandom(4711);
	test_rates();
	test_exempt();
	test_window();
	test_concurrency();
	test_evict();
	test_garbage();
	test_unusable();
	test_busy();
	conf_free(&cf);
	cleanup();
	return tap_done();
}
