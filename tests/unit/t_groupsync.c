/*
 * t_groupsync.c - unit tests for smapd/groupsync.c, the group commit of
 * a queue run's processes.
 *
 * Usage: t_groupsync [golden-dir]   (the argument is not used)
 *
 * In a fresh directory below /tmp: outside a run groupsync is the plain
 * flush (its error included); inside one, a flush of one file never
 * counts for another (a pipe, which cannot be fsync'd, still fails
 * after a good flush of a file), alone or while other processes flush
 * a file in the same lane, and a failed flush covers nothing; 16
 * forked processes appending to one file, each followed by groupsync,
 * all succeed and lose no line; a process that dies holding the
 * flusher's role does not keep the next from flushing (the robust
 * mutex is taken over at once), and one that holds it and stops makes
 * the next wait half a second at most, once: its later flushes are its
 * own at once. groupsync_later flushes at once in a process that does
 * not defer, and in one that does while nobody flushes; while another
 * flushes it leaves the flush, which groupsync_settle makes (its error
 * reported) or finds made by another process's later flush (no flush
 * of its own), unless a flush failed after the first change it left
 * (then it flushes for itself); any other flush it makes, in any lane,
 * settles first, and groupsync_end settles what is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* the module itself, so that a test can hold a lane's flusher role */
#include "../../smapd/groupsync.c"
#include "tap.h"

#define PROCS 16
#define ROUNDS 50

static char work[] = "/tmp/t_groupsync.XXXXXX";

static void
cleanup(void)
{
	(void)tap_rmtree(work);
}

/* appender - ROUNDS lines into path, each followed by groupsync; exits 0
 * when every call succeeded */
static void
appender(const char *path, int n)
{
	char line[32];
	int fd = open(path, O_WRONLY | O_APPEND), i, bad = 0;

	for (i = 0; i < ROUNDS && fd >= 0; i++) {
		int len = snprintf(line, sizeof(line), "%02d %02d\n", n, i);

		bad |= write(fd, line, (size_t)len) != len ||
		    groupsync(GS_JOURNAL, fd) < 0;
	}
	_exit(fd < 0 || bad);
}

/* lines - LF-terminated lines in path */
static long
lines(const char *path)
{
	size_t len = 0, i;
	char *s = tap_slurp(path, &len);
	long n = 0;

	for (i = 0; s != NULL && i < len; i++)
		n += s[i] == '\n';
	free(s);
	return n;
}

static void
test_alone(const char *file)
{
	int fd = open(file, O_RDWR | O_CREAT, 0600), p[2];

	tap_ok(fd >= 0 && groupsync(GS_QUEUE, fd) == 0,
	    "outside a run: a file's fsync");
	tap_ok(groupsync(GS_QUEUE, -1) < 0 && errno == EBADF,
	    "outside a run: the flush's own error (EBADF)");
	groupsync_begin();
	tap_ok(groupsync(GS_QUEUE, fd) == 0, "in a run: a file's fsync");
	tap_ok(pipe(p) == 0 && groupsync(GS_QUEUE, p[0]) < 0 &&
	    errno == EINVAL, "in a run: a good flush of one file does not "
	    "count for another (a pipe's fsync still fails)");
	tap_ok(groupsync(GS_QUEUE, fd) == 0, "the file again: flushed");
	groupsync_end();
	(void)close(p[0]);
	(void)close(p[1]);
	(void)close(fd);
}

/* piper - ROUNDS groupsyncs of a pipe, which must each fail: exits 0
 * when every one did, whatever flushes of a file the others made */
static void
piper(int fd)
{
	int i, bad = 0;

	for (i = 0; i < ROUNDS * 4; i++)
		bad |= groupsync(GS_QUEUE, fd) == 0 || errno != EINVAL;
	_exit(bad);
}

/* file_flusher - ROUNDS * 4 groupsyncs of a file just written to */
static void
file_flusher(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND), i, bad = 0;

	for (i = 0; i < ROUNDS * 4 && fd >= 0; i++)
		bad |= write(fd, "x", 1) != 1 || groupsync(GS_QUEUE, fd) < 0;
	_exit(fd < 0 || bad);
}

static void
test_mixed(const char *file)
{
	pid_t pid[4];
	int i, p[2], status, good = 0;

	if (pipe(p) < 0)
		tap_fatal("pipe");
	groupsync_begin();
	fflush(stdout);
	for (i = 0; i < 4; i++)
		if ((pid[i] = fork()) == 0) {
			if (i % 2)
				piper(p[0]);
			file_flusher(file);
		}
	for (i = 0; i < 4; i++)
		good += pid[i] > 0 && waitpid(pid[i], &status, 0) == pid[i] &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0;
	groupsync_end();
	(void)close(p[0]);
	(void)close(p[1]);
	tap_ok(good == 4, "two processes flushing a file, two a pipe, in one "
	    "lane: every file flush worked, no pipe's flush was taken as "
	    "done (%d of 4)", good);
}

static void
test_many(const char *file)
{
	pid_t pid[PROCS];
	int i, status, good = 0, fd = open(file, O_WRONLY | O_CREAT | O_TRUNC,
	    0600);

	(void)close(fd);
	groupsync_begin();
	fflush(stdout);
	for (i = 0; i < PROCS; i++)
		if ((pid[i] = fork()) == 0)
			appender(file, i);
	for (i = 0; i < PROCS; i++)
		good += pid[i] > 0 && waitpid(pid[i], &status, 0) == pid[i] &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0;
	groupsync_end();
	tap_ok(good == PROCS, "%d processes, %d appends and groupsyncs "
	    "each: all succeeded (%d)", PROCS, ROUNDS, good);
	tap_ok(lines(file) == PROCS * ROUNDS, "no line lost (%ld of %d)",
	    lines(file), PROCS * ROUNDS);
}

/* holder - a child that takes the queue lane's flusher role and then
 * dies (stay 0) or stays (pause); its pid once it holds the role */
static pid_t
holder(int stay)
{
	int p[2];
	char c;
	pid_t pid;

	fflush(stdout);	/* a child must not print what is buffered */
	if (pipe(p) < 0 || (pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0) {
		c = flusher(&G[GS_QUEUE]) ? 'y' : 'n';
		if (write(p[1], &c, 1) != 1)
			_exit(1);
		if (stay)
			pause();
		_exit(0);
	}
	(void)close(p[1]);
	if (read(p[0], &c, 1) != 1 || c != 'y')
		tap_fatal("the child could not take the flusher's role");
	(void)close(p[0]);
	return pid;
}

/* took - seconds that groupsync(GS_QUEUE, fd) took; its result in *rc */
static double
took(int fd, int *rc)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	*rc = groupsync(GS_QUEUE, fd);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}

static void
test_holders(const char *file)
{
	int fd = open(file, O_WRONLY | O_APPEND), rc, status;
	double t;
	pid_t pid;

	groupsync_begin();
	pid = holder(0);
	(void)waitpid(pid, &status, 0);
	t = took(fd, &rc);
	tap_ok(rc == 0 && t < 0.2, "the role of a process that died holding it "
	    "is taken over: flushed in %.3f s", t);
	pid = holder(1);
	t = took(fd, &rc);
	tap_ok(rc == 0 && t >= 0.4 && t < 5, "a stopped holder: the next "
	    "waits about half a second, then flushes alone (%.3f s)", t);
	t = took(fd, &rc);
	tap_ok(rc == 0 && t < 0.2, "and flushes alone at once from then on "
	    "(%.3f s)", t);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	groupsync_end();
	(void)close(fd);
}

/* lane_round - flushes ended in the queue lane */
static uint32_t
lane_round(void)
{
	return __atomic_load_n(&G[GS_QUEUE].round, __ATOMIC_SEQ_CST);
}

/* held_later - groupsync_later(GS_QUEUE, fd) while this process holds
 * the flusher's role: 0 when it returned 0 and no flush ended */
static int
held_later(int fd)
{
	uint32_t r;
	int rc;

	if (!flusher(&G[GS_QUEUE]))
		tap_fatal("the flusher's role is taken");
	r = lane_round();
	rc = groupsync_later(GS_QUEUE, fd);
	rc = rc != 0 || lane_round() != r;
	release(&G[GS_QUEUE]);
	return rc;
}

/* other_flush - a forked process's groupsync of path: 0 when it worked */
static int
other_flush(const char *path)
{
	int status;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		int fd = open(path, O_WRONLY | O_APPEND);

		_exit(fd < 0 || groupsync(GS_QUEUE, fd) < 0);
	}
	return pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

/* other_fail - a forked process's groupsync of a pipe, which fails: 0
 * when it did (EINVAL) */
static int
other_fail(int pfd)
{
	int status;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		groupsync_deferring(0);
		_exit(groupsync(GS_QUEUE, pfd) == 0 || errno != EINVAL);
	}
	return pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static void
test_later(const char *file)
{
	int fd = open(file, O_WRONLY | O_APPEND), p[2];
	uint32_t r;

	if (fd < 0 || pipe(p) < 0)
		tap_fatal("open");
	groupsync_begin();
	tap_ok(groupsync_later(GS_QUEUE, p[0]) < 0 && errno == EINVAL,
	    "later, not deferring: flushed at once (the pipe's error)");
	groupsync_deferring(1);
	tap_ok(groupsync_later(GS_QUEUE, p[0]) < 0 && errno == EINVAL,
	    "later, deferring, nobody flushing: flushed at once");
	tap_ok(groupsync_settle() == 0, "and nothing left to settle");
	tap_ok(held_later(p[0]) == 0, "later while another flushes: left, "
	    "no flush made");
	tap_ok(groupsync_settle() < 0 && errno == EINVAL, "settle makes the "
	    "flush left (the pipe's error)");
	tap_ok(groupsync_settle() == 0, "and nothing is left after it");
	tap_ok(held_later(fd) == 0, "a file's change left while another "
	    "flushes");
	tap_ok(other_flush(file) == 0, "another process flushes that file");
	r = lane_round();
	tap_ok(groupsync_settle() == 0 && lane_round() == r, "settle: its "
	    "flush covers the change left, no flush of its own");
	tap_ok(held_later(fd) == 0 && other_fail(p[0]) == 0 &&
	    held_later(fd) == 0 && other_flush(file) == 0, "a change left, a "
	    "failed flush by another, a second change left, a good flush by "
	    "another");
	r = lane_round();
	tap_ok(groupsync_settle() == 0 && lane_round() != r, "settle: that "
	    "flush covers the second change, not the first (the failure came "
	    "after it): it flushes for itself");
	tap_ok(held_later(fd) == 0 && groupsync_later(GS_QUEUE, p[0]) < 0 &&
	    errno == EINVAL && !L[GS_QUEUE].set, "a second descriptor while "
	    "one is left: the one left settled first, the second flushed at "
	    "once");
	r = lane_round();
	tap_ok(held_later(fd) == 0 && groupsync(GS_JOURNAL, fd) == 0 &&
	    !L[GS_QUEUE].set && lane_round() != r, "a flush in another lane "
	    "settles what was left first");
	tap_ok(held_later(fd) == 0 && L[GS_QUEUE].set, "one more left");
	groupsync_end();
	tap_ok(!L[GS_QUEUE].set, "groupsync_end settles what was left");
	groupsync_deferring(0);
	(void)close(p[0]);
	(void)close(p[1]);
	(void)close(fd);
}

int
main(void)
{
	char file[sizeof(work) + 16];

	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	tap_on_fatal(cleanup);
	snprintf(file, sizeof(file), "%s/f", work);
	test_alone(file);
	test_mixed(file);
	test_many(file);
	test_holders(file);
	test_later(file);
	cleanup();
	return tap_done();
}
