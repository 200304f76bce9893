/*
 * queue.c - one queue run (see queue.h): what is in new/, and for a full
 * run every message in queue/, shared out over up to
 * default_destination_concurrency_limit processes.
 *
 * A worker is a fork that picks up every step-th name in new/ and
 * delivers what it picked up, then every step-th id in queue/, and
 * reports its counts through a pipe; it dies with smapd
 * (PR_SET_PDEATHSIG). Two workers, or two smapd processes, never pick
 * up one file (pickup.c claims it) or deliver one message at once
 * (deliver.c takes the message's lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "agent.h"
#include "deliver.h"
#include "log.h"
#include "pickup.h"
#include "queue.h"

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

/* A run's work, shared out: the names scanned in new/ (each share picks
 * up and delivers its part, so that the copying and its syncs run in
 * every process at once), and for a full run the ids in queue/. */
struct run {
	char **fresh, **ids;
	size_t nfresh, nids;
	long long now;
	int full;
};

/* leftovers - the names in new/ that are in queue/'s listing too (a
 * crash between a copy's naming and its original's removal) are picked
 * up here, before any process of the run delivers from queue/: each
 * meets its copy and is quarantined as a duplicate, where a share that
 * came to it after the copy was delivered and removed would queue it
 * again. r->fresh keeps the others. */
static void
leftovers(struct qctx *q, struct run *r)
{
	char **dup = malloc((r->nfresh + 1) * sizeof(*dup)), **got;
	size_t i, k = 0, m = 0, n = 0;

	for (i = 0; i < r->nfresh; i++)
		if (dup != NULL && layout_listed(r->ids, r->nids, r->fresh[i]))
			dup[k++] = r->fresh[i];
		else
			r->fresh[m++] = r->fresh[i];
	r->nfresh = m;
	if (dup == NULL) {	/* no memory to sort them out: none this run */
		log_warn("pickup: %s: new/ waits for the next run",
		    strerror(errno));
		layout_free_list(r->fresh, r->nfresh);
		r->fresh = NULL;
		r->nfresh = 0;
		return;
	}
	got = k > 0 ? pickup(q, dup, k, 0, 1, &n) : NULL;
	layout_free_list(got, n);	/* queued anyway: in r->ids, delivered there */
	layout_free_list(dup, k);
}

/* deliver_each - ids[first], ids[first + step], ... and the DSNs they
 * made; *wait lowered to when the first of them is due again */
static void
deliver_each(struct qctx *q, char *const *ids, size_t n, size_t first,
    size_t step, long long now, long long *wait)
{
	long long next;
	size_t i;

	for (i = first; i < n && !*q->stop; i += step) {
		next = deliver_one(q, ids[i], now);
		if (next > now && next - now < *wait)
			*wait = next - now;
		while (q->nmade > 0 && !*q->stop)	/* the DSNs it made */
			if (q->ndown == 0)	/* else they wait for the next run */
				(void)deliver_one(q, q->made[--q->nmade], now);
			else
				q->nmade = 0;
	}
}

/* deliver_share - share `first` of `step` of the run: its part of new/
 * picked up and delivered, then its part of queue/; the seconds until
 * the first of them is due again */
static long long
deliver_share(struct qctx *q, const struct run *r, size_t first, size_t step)
{
	long long wait = q->cf->queue_run_delay;
	size_t n = 0;
	char **mine = first < r->nfresh ?
	    pickup(q, r->fresh, r->nfresh, first, step, &n) : NULL;

	if (r->full)
		q->active += (long long)n;
	deliver_each(q, mine, n, 0, 1, r->now, &wait);
	layout_free_list(mine, n);
	deliver_each(q, r->ids, r->nids, first, step, r->now, &wait);
	agent_close_all();
	return wait;
}

/* The result a worker reports to the run that started it. */
struct share {
	long long wait, deferred, picked;
};

/* spawn - a worker for share `first` of `step`; it writes its result to
 * fd and exits. Its pid, or -1 (then the run does that share itself). */
static pid_t
spawn(struct qctx *q, const struct run *run, size_t first, size_t step, int fd)
{
	struct share r;
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	/* A worker outlives no smapd: SIGTERM ends it after its delivery. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(1);
	q->deferred = q->active = 0;
	r.wait = deliver_share(q, run, first, step);
	r.deferred = q->deferred;
	r.picked = q->active;
	_exit(write(fd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
}

/* gather - wait for the workers, forwarding a stop; fold in their results */
static long long
gather(struct qctx *q, const pid_t *pid, size_t nw, int fd, long long wait)
{
	struct share r;
	size_t i;
	int status;

	for (i = 0; i < nw; i++) {
		if (*q->stop)
			(void)kill(pid[i], SIGTERM);	/* finish the delivery, stop */
		while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
			if (*q->stop)
				(void)kill(pid[i], SIGTERM);
	}
	while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		q->deferred += r.deferred;
		q->active += r.picked;
		if (r.wait < wait)
			wait = r.wait;
	}
	return wait;
}

/* deliver_run - the run's work, over up to
 * default_destination_concurrency_limit processes (flock keeps any two
 * from delivering one message; each takes every step-th name and id) */
static long long
deliver_run(struct qctx *q, const struct run *r)
{
	pid_t pid[CONCURRENCY_MAX];
	size_t step = (size_t)q->cf->default_destination_concurrency_limit;
	size_t n = r->nfresh > r->nids ? r->nfresh : r->nids, nw = 0, i;
	long long wait, w;
	int p[2] = { -1, -1 };

	if (step > n)
		step = n > 0 ? n : 1;
	if (step > 1 && pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		step = 1;
	for (i = 1; i < step; i++) {
		if ((pid[nw] = spawn(q, r, i, step, p[1])) < 0)
			break;
		nw++;
	}
	if (p[1] >= 0)
		close(p[1]);
	wait = deliver_share(q, r, 0, step);
	for (; i < step; i++)	/* shares no worker could be forked for */
		if ((w = deliver_share(q, r, i, step)) < wait)
			wait = w;
	wait = gather(q, pid, nw, p[0], wait);
	if (p[0] >= 0)
		close(p[0]);
	return wait;
}

/* queue_run - what is in new/ picked up and delivered, and (full) every
 * message in queue/ that is due, listed before the pickups begin */
long long
queue_run(struct qctx *q, int full)
{
	struct run r = { .now = (long long)time(NULL), .full = full };
	long long wait;

	if (full) {
		r.ids = list_queue(q, &r.nids);
		q->active = (long long)r.nids;	/* and what is picked up */
		q->deferred = 0;
	}
	r.fresh = pickup_scan(q, &r.nfresh);
	if (r.nids > 0 && r.nfresh > 0)
		leftovers(q, &r);
	q->ndown = 0;
	wait = deliver_run(q, &r);
	layout_free_list(r.fresh, r.nfresh);
	layout_free_list(r.ids, r.nids);
	return wait;
}
