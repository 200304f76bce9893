/*
 * queue.c - one queue run (see queue.h): pickup, then the messages
 * picked up or, for a full run, every one in queue/, shared out over
 * up to default_destination_concurrency_limit processes.
 *
 * The run hands each id out as soon as pickup has made it durable and
 * released it, so that delivery overlaps the pickup of the next batch.
 * Workers are forks, started as the run finds work (up to the limit,
 * never more than there are messages); each reads ids from one pipe,
 * a fixed-size record at a time, and reports its counts through
 * another at its end; it dies with smapd (PR_SET_PDEATHSIG). While the
 * run has no worker it delivers itself; once pickup is done it reads
 * the pipe with its workers. Two workers, or two smapd processes, never
 * deliver one message at once: deliver.c takes the message's lock.
 * The records come from this process only; each is checked to be a
 * queue id all the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "agent.h"
#include "deliver.h"
#include "groupsync.h"
#include "log.h"
#include "pickup.h"
#include "queue.h"
#include "state.h"

#define REC (SPOOL_ID_MAX + 1)	/* one id in the pipe, NUL-padded */

/* A run's deliveries: ids to its nw workers through ids[], their
 * results back through res[]; wait the seconds until a message is due
 * again. */
struct run {
	struct qctx *q;
	long long now, wait;
	int ids[2], res[2];
	pid_t pid[CONCURRENCY_MAX];
	size_t nw, limit;
};

/* The result a worker reports to the run that started it. */
struct share {
	long long wait, deferred;
	int stop;	/* it stopped the run (nothing may be delivered twice) */
};

/* list_queue - the ids in queue/, sorted, malloc'd */
static char **
list_queue(const struct qctx *q, size_t *n)
{
	char **v;

	if (layout_list(&q->dirs, L_QUEUE, SCAN_MAX, &v, n) < 0) {
		log_warn("open %s: %s", layout_name(L_QUEUE), strerror(errno));
		*n = 0;
		return NULL;
	}
	return v;
}

/* deliver_id - one message, then the DSNs it made; the run's wait
 * (seconds until the first message is due again) lowered to its own */
static void
deliver_id(struct qctx *q, const char *id, long long now, long long *wait)
{
	long long next = deliver_one(q, id, now);

	if (next > now && next - now < *wait)
		*wait = next - now;
	while (q->nmade > 0 && !*q->stop)	/* the DSNs it made */
		if (q->ndown == 0)	/* else they wait for the next run */
			(void)deliver_one(q, q->made[--q->nmade], now);
		else
			q->nmade = 0;
}

/* take_ids - deliver what arrives on fd (non-blocking) until its end
 * (or a stop); a record that is not a queue id ends it */
static void
take_ids(struct qctx *q, int fd, long long now, long long *wait)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char rec[REC];
	ssize_t n;

	while (!*q->stop) {
		n = read(fd, rec, sizeof(rec));
		if (n < 0 && errno == EAGAIN) {	/* before it waits */
			settle_removals();
			(void)poll(&p, 1, -1);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(rec) || rec[REC - 1] != '\0' ||
		    !qid_ok(rec))
			break;
		deliver_id(q, rec, now, wait);
	}
	settle_removals();
}

/* spawn - one more worker for r; its pid, or -1. The run closes its
 * agents first: a worker must not inherit a connection it is using. */
static pid_t
spawn(struct run *r)
{
	struct share sh;
	pid_t parent = getpid(), pid;

	agent_close_all();
	if ((pid = fork()) != 0)
		return pid;
	/* A worker outlives no smapd: SIGTERM ends it after its delivery. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(1);
	close(r->ids[1]);
	close(r->res[0]);
	r->q->deferred = 0;
	groupsync_deferring(1);
	state_spare(&r->q->dirs, 1);
	memset(&sh, 0, sizeof(sh));
	sh.wait = r->q->cf->queue_run_delay;
	take_ids(r->q, r->ids[0], r->now, &sh.wait);
	state_spare(&r->q->dirs, 0);
	agent_close_all();
	sh.deferred = r->q->deferred;
	sh.stop = *r->q->stop != 0;
	_exit(write(r->res[1], &sh, sizeof(sh)) == (ssize_t)sizeof(sh) ? 0 : 1);
}

/* open_pipes - the pipes of r's first worker, and the run's group
 * commit: 0, or -1 with errno. Both ends of ids are non-blocking: the
 * run's writes must not block, and a worker settles what it left
 * before it waits for the next id (take_ids). */
static int
open_pipes(struct run *r)
{
	int err;

	if (pipe2(r->ids, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(r->ids[1], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(r->ids[0], F_SETFL, O_NONBLOCK) < 0 ||
	    pipe2(r->res, O_CLOEXEC | O_NONBLOCK) < 0) {
		err = errno;
		close(r->ids[0]);
		close(r->ids[1]);
		errno = err;
		return -1;
	}
	groupsync_begin();
	return 0;
}

/* unpipe - no worker after all: the pipes closed, the group commit
 * ended */
static void
unpipe(struct run *r)
{
	close(r->ids[0]);
	close(r->ids[1]);
	close(r->res[0]);
	close(r->res[1]);
	groupsync_end();
}

/* grow - workers for r up to want processes in all (the run counts as
 * one, the limit bounds them); the first one opens the pipes and the
 * run's group commit */
static void
grow(struct run *r, size_t want)
{
	pid_t pid;

	if (want > r->limit)
		want = r->limit;
	while (1 + r->nw < want && !*r->q->stop) {
		if (r->nw == 0 && open_pipes(r) < 0) {
			log_warn("pipe: %s: the run delivers alone",
			    strerror(errno));
			return;
		}
		if ((pid = spawn(r)) < 0) {
			log_warn("fork: %s", strerror(errno));
			if (r->nw == 0)
				unpipe(r);
			return;
		}
		r->pid[r->nw++] = pid;
	}
}

/* reap - r's workers that have exited, waited for (their pid made 0);
 * how many are left */
static size_t
reap(struct run *r)
{
	size_t i, left = 0;
	int status;

	for (i = 0; i < r->nw; i++) {
		if (r->pid[i] > 0 && waitpid(r->pid[i], &status, WNOHANG) ==
		    r->pid[i])
			r->pid[i] = 0;
		left += r->pid[i] > 0;
	}
	return left;
}

/* collect - the end of r's workers: the run takes its share of what is
 * left in the pipe, waits for them (forwarding a stop), and folds in
 * their results; then it has none */
static void
collect(struct run *r)
{
	struct share sh;
	size_t i;
	int status;

	close(r->ids[1]);
	take_ids(r->q, r->ids[0], r->now, &r->wait);
	close(r->ids[0]);
	for (i = 0; i < r->nw; i++) {
		if (r->pid[i] <= 0)
			continue;
		if (*r->q->stop)
			(void)kill(r->pid[i], SIGTERM);	/* finish the delivery, stop */
		while (waitpid(r->pid[i], &status, 0) < 0 && errno == EINTR)
			if (*r->q->stop)
				(void)kill(r->pid[i], SIGTERM);
	}
	close(r->res[1]);
	while (read(r->res[0], &sh, sizeof(sh)) == (ssize_t)sizeof(sh)) {
		r->q->deferred += sh.deferred;
		if (sh.wait < r->wait)
			r->wait = sh.wait;
		if (sh.stop)
			*r->q->stop = 1;
	}
	close(r->res[0]);
	(void)sync_dir(r->q, L_QUEUE);	/* removals a dead worker left */
	groupsync_end();
	r->nw = 0;
}

/* put - one record to r's workers: 0, or -1 when it is not sent (a
 * stop; or no worker is left to read it, and then the run has none) */
static int
put(struct run *r, const char *rec)
{
	struct pollfd pfd = { r->ids[1], POLLOUT, 0 };
	ssize_t w;

	while (!*r->q->stop) {
		if ((w = write(r->ids[1], rec, REC)) == REC)
			return 0;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN && reap(r) > 0) {
			(void)poll(&pfd, 1, 100);	/* the pipe is full */
			continue;
		}
		log_warn("the run's delivery processes are gone: it delivers "
		    "alone");
		collect(r);
		return -1;
	}
	return -1;
}

/* hand_out - ids to r's workers (more of them if hint, the messages the
 * run has in all so far, calls for them), or delivered here while there
 * are none */
static void
hand_out(struct run *r, char **ids, size_t n, size_t hint)
{
	char rec[REC];
	size_t i;

	if (n == 0)
		return;
	grow(r, hint);
	for (i = 0; i < n && !*r->q->stop; i++) {
		memset(rec, 0, sizeof(rec));
		strncpy(rec, ids[i], sizeof(rec) - 1);
		if ((r->nw == 0 || put(r, rec) < 0) && !*r->q->stop)
			deliver_id(r->q, ids[i], r->now, &r->wait);
	}
}

/* finish - the end of the run's ids */
static void
finish(struct run *r)
{
	if (r->nw > 0)
		collect(r);
}

/* queue_run - what is in queue/ listed (a full run), then pickup, each
 * batch handed out as it is queued, then the listed; the seconds until
 * a message is due again. After a failed fsync of new/ nothing is
 * delivered until one succeeds: a crash could bring back the original
 * of a copy that was delivered. */
long long
queue_run(struct qctx *q, int full)
{
	struct run r = { q, (long long)time(NULL), q->cf->queue_run_delay,
		{ -1, -1 }, { -1, -1 }, { 0 }, 0,
		(size_t)q->cf->default_destination_concurrency_limit };
	struct pickup pk;
	char **batch, **picked, **listed = NULL;
	size_t i, m, np, nl = 0;

	q->ndown = 0;
	if (q->new_unsynced) {
		if (sync_dir(q, L_NEW) < 0) {
			log_warn("%s is not durable: nothing is delivered until "
			    "it is", layout_name(L_NEW));
			return r.wait;
		}
		q->new_unsynced = 0;
	}
	if (full) {
		q->deferred = 0;
		listed = list_queue(q, &nl);
	}
	if (pickup_begin(q, &pk) == 0)
		while (pickup_next(q, &pk, &batch, &m))
			hand_out(&r, batch, m, pk.k + nl);
	picked = pickup_end(&pk, &np);
	if (full) {
		q->active = (long long)nl + (long long)np;
		hand_out(&r, listed, nl, np + nl);
	}
	finish(&r);
	agent_close_all();
	for (i = 0; i < np; i++)
		free(picked[i]);
	free(picked);
	for (i = 0; i < nl; i++)
		free(listed[i]);
	free(listed);
	return r.wait;
}
