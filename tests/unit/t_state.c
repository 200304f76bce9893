/*
 * t_state.c - unit tests for smapd/state.c's reservations: a delivery
 * process's unused reservation kept as its spare and renamed for the
 * next message, grown when that one has more recipients, used up by a
 * save (which reads back whole), removed when the spare is given up, and
 * a spare inherited from another process closed, never removed.
 *
 * Usage: t_state [golden-dir]   (the argument is not used)
 *
 * In a fresh directory below /tmp, standing in for state/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../smapd/state.h"
#include "tap.h"

#define NEED(n) (STATE_HEAD_MAX + (off_t)(n) * STATE_LINE_MAX)

static char work[] = "/tmp/t_state.XXXXXX";

static void
cleanup(void)
{
	(void)tap_rmtree(work);
}

/* there - does state/NAME exist? */
static int
there(const struct spooldirs *d, const char *name)
{
	struct stat st;

	return fstatat(d->fd[L_STATE], name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* room - is fd at least need bytes long, and allocated? */
static int
room(int fd, off_t need)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_size >= need &&
	    (off_t)st.st_blocks * 512 >= need;
}

static void
test_spare(struct spooldirs *d)
{
	struct rcpt_result r[3];
	struct state st = { 1, 0, 0, 3, r }, back = { 0 };
	struct stat a, b;
	char why[128];
	int fd, kept;
	size_t i;

	state_spare(d, 1);
	fd = state_reserve(d, "AAAA1", 1);
	tap_ok(fd >= 0 && room(fd, NEED(1)), "a reservation for one recipient");
	kept = fd;
	state_unreserve(d, "AAAA1", &fd);
	tap_ok(fd == -1 && there(d, "AAAA1.tmp"), "unused: kept as the spare");
	fd = state_reserve(d, "BBBB2", 3);
	tap_ok(fd == kept && !there(d, "AAAA1.tmp") && there(d, "BBBB2.tmp"),
	    "the next message's reservation is the spare, renamed");
	tap_ok(fd >= 0 && room(fd, NEED(3)), "grown, allocated, for three "
	    "recipients");
	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++) {
		r[i].status = i == 1 ? R_PENDING : R_SENT;
		snprintf(r[i].dsn, sizeof(r[i].dsn), i == 1 ? "4.2.0" : "2.0.0");
		snprintf(r[i].text, sizeof(r[i].text), "reply %zu", i);
	}
	tap_ok(state_save(d, "BBBB2", &st, &fd) == 0 && fd == -1 &&
	    there(d, "BBBB2") && !there(d, "BBBB2.tmp"), "a save uses it up: "
	    "state/BBBB2");
	tap_ok(state_load(d, "BBBB2", 3, &back, why, sizeof(why)) == 0 &&
	    back.attempts == 1 && back.r[0].status == R_SENT &&
	    back.r[1].status == R_PENDING && strcmp(back.r[1].dsn, "4.2.0") == 0,
	    "and it reads back whole");
	state_free(&back);
	fd = state_reserve(d, "CCCC3", 1);
	tap_ok(fd >= 0 && fstat(fd, &a) == 0 && fstatat(d->fd[L_STATE], "BBBB2",
	    &b, 0) == 0 && a.st_ino != b.st_ino && there(d, "CCCC3.tmp"),
	    "no spare left: a new reservation, not the file saved");
	state_unreserve(d, "CCCC3", &fd);
	state_spare(d, 0);
	tap_ok(!there(d, "CCCC3.tmp"), "the spare given up: removed");
	fd = state_reserve(d, "DDDD4", 1);
	state_unreserve(d, "DDDD4", &fd);
	tap_ok(!there(d, "DDDD4.tmp"), "not keeping one: an unused "
	    "reservation is removed");
}

static void
test_inherited(struct spooldirs *d)
{
	int fd, status;
	pid_t pid;

	state_spare(d, 1);
	fd = state_reserve(d, "EEEE5", 1);
	state_unreserve(d, "EEEE5", &fd);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		int mine = state_reserve(d, "FFFF6", 1);

		_exit(mine < 0 || !there(d, "EEEE5.tmp"));
	}
	tap_ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0 && there(d, "EEEE5.tmp"), "a spare "
	    "inherited from another process is not used or removed");
	state_spare(d, 0);
	tap_ok(!there(d, "EEEE5.tmp"), "its own process removes it");
}

int
main(void)
{
	struct spooldirs d;
	int i;

	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	tap_on_fatal(cleanup);
	for (i = 0; i < L_NDIRS; i++) {
		d.fd[i] = -1;
		d.err[i] = ENOENT;
	}
	if ((d.fd[L_STATE] = open(work, O_RDONLY | O_DIRECTORY)) < 0)
		tap_fatal("open");
	d.err[L_STATE] = 0;
	test_spare(&d);
	test_inherited(&d);
	cleanup();
	return tap_done();
}
