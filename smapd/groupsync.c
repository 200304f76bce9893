/*
 * groupsync.c - group commit for the processes of one queue run (see
 * groupsync.h): a flush begun after a process made its change covers
 * that change, so a process whose change a finished flush covers does
 * not flush again.
 *
 * WHY: each delivered message is two flushes, the journal's record and
 * the removal from queue/. Twenty workers flushing alone cost a flush
 * of the disk each (an fsync of an inode whose transaction is already
 * committed still flushes the disk's cache); one flush in turn, with
 * the others waiting for it, costs one for all who were waiting.
 *
 * HOW: one shared page (mmap MAP_SHARED, made by the run's parent
 * before it forks) holds a lane per kind of flush: a ticket counter,
 * the last ticket a successful flush covered and the file it flushed, a
 * count of flushes ended, and the flusher's role, a process-shared
 * robust mutex (a worker killed while it holds it blocks nobody: the
 * next one takes it over). A process takes a ticket after its change.
 * It is done once a successful flush of the same file covers the
 * ticket. Else it takes the flusher's role if it is free, reads the
 * last ticket taken, flushes, records that ticket as covered if the
 * flush worked, and wakes every waiter (futex); if the role is taken it
 * waits for that flush to end and looks again. A failed flush covers
 * nothing, nor does any later one for the tickets taken before it
 * failed: those processes flush their own descriptors and see their own
 * errors. A process that waits half a second and sees no flush end (the
 * flusher stopped) flushes alone for the rest of its run, so a stopped
 * worker costs the others at most that once.
 * The journal's lane and queue/'s are apart, so that their flushes can
 * share a commit of the file system's own journal.
 *
 * LATER: a worker does not wait for the fsync of queue/ that makes a
 * delivered message's removal durable (nothing it does next depends on
 * it; the removal's window is a crash before that fsync, as before).
 * It takes its ticket and flushes only if nobody is flushing; else a
 * later flush of queue/ by any process of the run (another removal,
 * pickup's next batch) covers it. Its process settles, waiting as
 * above for a flush that covers it, when its next delivery attempt is
 * over (before that attempt's journal record; deliver.c), before any
 * other groupsync(), before it waits for more work, and before it
 * ends; and the run fsyncs queue/ once its workers are gone (for one
 * that died). So every removal is durable by the end of the run, and
 * by the end of its process's next attempt: the window of a removal
 * grows by one delivery at most.
 *
 * TRUST: the page is this smapd's own, shared with its own forks only.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "groupsync.h"
#include "layout.h"
#include "log.h"

#define WAIT_NS 20000000L	/* 20 ms at most between two looks */
#define WAIT_STALL 25		/* looks with no flush ended: then alone */

#if defined(SYS_futex_time64)	/* 32-bit with a 64-bit time_t */
#define FUTEX_NR (sizeof(time_t) > sizeof(long) ? SYS_futex_time64 : SYS_futex)
#else
#define FUTEX_NR SYS_futex
#endif

struct lane {
	pthread_mutex_t flusher;	/* held by who flushes; robust */
	uint32_t taken;		/* the last ticket taken */
	uint32_t covered;	/* the last ticket a finished flush covers */
	uint32_t round;		/* flushes ended: what waiters wait on */
	uint32_t tainted;	/* tickets taken when a flush last failed */
	uint64_t ino, dev;	/* of the file the last good flush was of */
};

static struct lane *G;		/* GS_KINDS lanes, shared; NULL: no group */
static int alone;		/* this process met a stalled lane: flush alone */

/* What groupsync_later() left to be covered, per lane: this process's
 * tickets first..last, all changes to the file fd. */
struct later {
	int set, fd;
	ino_t ino;
	uint32_t first, last;
};
static struct later L[GS_KINDS];
static int deferring;		/* groupsync_later() may leave a flush */

/* groupsync_begin - see groupsync.h */
void
groupsync_begin(void)
{
	pthread_mutexattr_t a;
	void *p = mmap(NULL, sizeof(struct lane) * GS_KINDS, PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int k, bad;

	alone = 0;
	if (p == MAP_FAILED)
		return;
	G = p;
	bad = pthread_mutexattr_init(&a) != 0 ||
	    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0;
	for (k = 0; k < GS_KINDS && !bad; k++)
		bad = pthread_mutex_init(&G[k].flusher, &a) != 0;
	(void)pthread_mutexattr_destroy(&a);
	if (bad)
		groupsync_end();
}

/* groupsync_end - see groupsync.h */
void
groupsync_end(void)
{
	(void)groupsync_settle();
	if (G != NULL)
		(void)munmap(G, sizeof(struct lane) * GS_KINDS);
	G = NULL;
}

/* flush - fdatasync, or a directory's fsync as layout.c makes it */
static int
flush(int fd, enum gs_kind k)
{
	return k == GS_JOURNAL ? fdatasync(fd) : layout_sync(fd);
}

/* flusher - the lane's flusher role, if free; a dead owner's is taken
 * over (it flushed or not: what it leaves is consistent either way) */
static int
flusher(struct lane *l)
{
	int rc = pthread_mutex_trylock(&l->flusher);

	if (rc == EOWNERDEAD)
		rc = pthread_mutex_consistent(&l->flusher);
	return rc == 0;
}

/* covers - has a finished flush of the file st covered the tickets
 * first..last? Not when a flush failed after first was taken: the
 * change may have been in the writeback that failed, whose error a later
 * flush of another descriptor no longer sees, so its process flushes its
 * own. */
static int
covers(const struct lane *l, uint32_t first, uint32_t last,
    const struct stat *st)
{
	uint32_t c = __atomic_load_n(&l->covered, __ATOMIC_SEQ_CST);
	uint32_t t = __atomic_load_n(&l->tainted, __ATOMIC_SEQ_CST);

	return (int32_t)(c - last) >= 0 && (int32_t)(first - t) > 0 &&
	    __atomic_load_n(&l->ino, __ATOMIC_SEQ_CST) == (uint64_t)st->st_ino &&
	    __atomic_load_n(&l->dev, __ATOMIC_SEQ_CST) == (uint64_t)st->st_dev;
}

/* wait_round - until the flush under way ends (or a while: its process
 * may have died) */
static void
wait_round(struct lane *l, uint32_t r)
{
	struct timespec t = { 0, WAIT_NS };

	(void)syscall(FUTEX_NR, &l->round, FUTEX_WAIT, r, &t, NULL, 0);
}

/* release - the flusher's role given up, and every waiter woken to look
 * again (after the unlock, so that one of them can take it) */
static void
release(struct lane *l)
{
	(void)pthread_mutex_unlock(&l->flusher);
	__atomic_add_fetch(&l->round, 1, __ATOMIC_SEQ_CST);
	(void)syscall(FUTEX_NR, &l->round, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* flush_all - as the flusher: flush what every ticket taken so far asks
 * for, record it if it worked, wake the waiters */
static int
flush_all(struct lane *l, enum gs_kind k, int fd, const struct stat *st)
{
	uint32_t upto = __atomic_load_n(&l->taken, __ATOMIC_SEQ_CST);
	int rc = flush(fd, k), err = errno;

	if (rc == 0) {
		__atomic_store_n(&l->ino, (uint64_t)st->st_ino, __ATOMIC_SEQ_CST);
		__atomic_store_n(&l->dev, (uint64_t)st->st_dev, __ATOMIC_SEQ_CST);
		__atomic_store_n(&l->covered, upto, __ATOMIC_SEQ_CST);
	} else
		__atomic_store_n(&l->tainted, __atomic_load_n(&l->taken,
		    __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
	release(l);
	errno = err;
	return rc;
}

/* settle - until a flush of fd covers the tickets first..last: as the
 * flusher if the role is free, else waiting for the one under way */
static int
settle(struct lane *l, enum gs_kind k, int fd, const struct stat *st,
    uint32_t first, uint32_t last)
{
	uint32_t r, seen = __atomic_load_n(&l->round, __ATOMIC_SEQ_CST);
	int stalled = 0;

	while (stalled < WAIT_STALL && !alone) {
		r = __atomic_load_n(&l->round, __ATOMIC_SEQ_CST);
		if (covers(l, first, last, st))
			return 0;
		if (flusher(l)) {
			if (!covers(l, first, last, st))
				return flush_all(l, k, fd, st);
			release(l);
			return 0;
		}
		wait_round(l, r);
		stalled = __atomic_load_n(&l->round, __ATOMIC_SEQ_CST) == seen ?
		    stalled + 1 : 0;
		seen = __atomic_load_n(&l->round, __ATOMIC_SEQ_CST);
	}
	alone = 1;	/* the flusher stopped (SIGSTOP?) for half a second */
	return flush(fd, k);
}

/* settle_later - what lane k was left: covered, or flushed here (a
 * descriptor that can no longer be looked at is simply flushed) */
static int
settle_later(enum gs_kind k)
{
	struct later *p = &L[k];
	struct stat st;

	p->set = 0;
	if (G == NULL || fstat(p->fd, &st) < 0)
		return flush(p->fd, k);
	return settle(&G[k], k, p->fd, &st, p->first, p->last);
}

/* groupsync_settle - see groupsync.h */
int
groupsync_settle(void)
{
	int k, rc = 0, err = 0;

	for (k = 0; k < GS_KINDS; k++)
		if (L[k].set && settle_later((enum gs_kind)k) < 0) {
			rc = -1;
			err = errno;
		}
	errno = err;
	return rc;
}

/* groupsync - see groupsync.h */
int
groupsync(enum gs_kind k, int fd)
{
	struct lane *l = G != NULL ? &G[k] : NULL;
	struct stat st;
	uint32_t mine;

	if (deferring && groupsync_settle() < 0)	/* what it left comes first */
		log_warn("fsync of a directory after a change left to a later "
		    "flush: %s", strerror(errno));
	if (l == NULL || alone || fstat(fd, &st) < 0)
		return flush(fd, k);
	mine = __atomic_add_fetch(&l->taken, 1, __ATOMIC_SEQ_CST);
	return settle(l, k, fd, &st, mine, mine);
}

/* groupsync_later - see groupsync.h */
int
groupsync_later(enum gs_kind k, int fd)
{
	struct lane *l = G != NULL ? &G[k] : NULL;
	struct later *p = &L[k];
	struct stat st;
	uint32_t mine;

	if (l == NULL || alone || !deferring || fstat(fd, &st) < 0 ||
	    (p->set && (p->fd != fd || p->ino != st.st_ino)))
		return groupsync(k, fd);
	mine = __atomic_add_fetch(&l->taken, 1, __ATOMIC_SEQ_CST);
	if (!p->set) {
		p->set = 1;
		p->fd = fd;
		p->ino = st.st_ino;
		p->first = mine;
	}
	p->last = mine;
	if (!flusher(l))
		return 0;	/* a flush is under way: the next one covers it */
	p->set = 0;	/* this process is the flusher now */
	if (covers(l, p->first, p->last, &st)) {
		release(l);
		return 0;
	}
	return flush_all(l, k, fd, &st);
}

/* groupsync_deferring - see groupsync.h */
void
groupsync_deferring(int on)
{
	deferring = on;
}
