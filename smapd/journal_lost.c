/*
 * journal_lost.c - records that could not be written, counted where
 * the next writer finds them (journal.h): journal/lost holds one fixed
 * line per lost record, the time it was lost, so that the gap record
 * is written by whichever process next appends, not only by the one
 * that lost them (a delivery worker exits at the end of its message).
 * Also the bounded flock every journal writer takes.
 *
 * LOCKING: journal/lost has its own flock, taken for one write by a
 * process that lost a record (it may not hold journal/'s: that may be
 * why it lost it) and, under journal/'s, by the writer that turns the
 * count into a gap record and empties the file.
 *
 * TRUST: journal/ is smapd's (mode 0700); journal/lost is never
 * followed, its count is its size (nothing in it is parsed but the
 * first line's time, read with a cap).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "clock.h"
#include "journal.h"

#define LOCK_POLL_NS 50000L	/* 50 us after the first try, */
#define LOCK_POLL_MAX_NS 5000000L	/* doubling up to 5 ms */
#define LOST_LINE 21		/* "%020lld\n": the time of one lost record */

/* journal_flock - an exclusive flock on fd within wait_ms: 0, or -1
 * with errno (ETIMEDOUT: another process holds it). A record is held
 * for tens of microseconds, so the pauses start short: twenty delivery
 * workers sleeping 5 ms each time they met a lock spent more time so
 * than flushing. */
int
journal_flock(int fd, long wait_ms)
{
	struct timespec pause = { 0, LOCK_POLL_NS };
	long long until = now_ms() + wait_ms;

	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (now_ms() >= until) {
			errno = ETIMEDOUT;
			return -1;
		}
		(void)nanosleep(&pause, NULL);
		pause.tv_nsec = pause.tv_nsec * 2 < LOCK_POLL_MAX_NS ?
		    pause.tv_nsec * 2 : LOCK_POLL_MAX_NS;
	}
	return 0;
}

/* journal_lost_note - one more record lost at when, in journal/lost
 * (dfd is journal/): 0, or -1 with errno */
int
journal_lost_note(int dfd, long long when)
{
	char line[LOST_LINE + 1];
	int fd = openat(dfd, JOURNAL_LOST, O_WRONLY | O_CREAT | O_APPEND |
	    O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600), err;
	ssize_t n = -1;

	if (fd < 0)
		return -1;
	snprintf(line, sizeof(line), "%020lld\n", when);
	if (journal_flock(fd, JOURNAL_LOCK_MS) == 0)
		n = write(fd, line, LOST_LINE);
	err = n == LOST_LINE ? 0 : n < 0 ? errno : EIO;
	(void)close(fd);
	errno = err;
	return err == 0 ? 0 : -1;
}

/* journal_lost_take - the records journal/lost counts (*n, the first
 * lost at *since), its fd locked for journal_lost_done(); -1 with
 * *n = 0 when there are none (or it cannot be read) */
int
journal_lost_take(int dfd, long *n, long long *since)
{
	char buf[LOST_LINE + 1];
	struct stat st;
	int fd;

	*n = 0;
	if (fstatat(dfd, JOURNAL_LOST, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_size == 0 || !S_ISREG(st.st_mode))
		return -1;	/* the usual case: one system call */
	fd = openat(dfd, JOURNAL_LOST, O_RDWR | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY);
	if (fd < 0 || journal_flock(fd, JOURNAL_LOCK_MS) < 0 ||
	    fstat(fd, &st) < 0 || st.st_size == 0) {
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	*n = (long)((st.st_size + LOST_LINE - 1) / LOST_LINE);
	memset(buf, 0, sizeof(buf));
	*since = pread(fd, buf, LOST_LINE, 0) > 0 ? strtoll(buf, NULL, 10) : 0;
	return fd;
}

/* journal_lost_done - journal/lost let go, emptied when its gap record
 * was written: 0, or -1 with errno (it could not be emptied) */
int
journal_lost_done(int fd, int written)
{
	int rc = written ? ftruncate(fd, 0) : 0, err = errno;

	(void)close(fd);
	errno = err;
	return rc;
}
