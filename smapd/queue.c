/*
 * queue.c - one queue run (see queue.h): pickup, then the messages
 * picked up or, for a full run, every one in queue/, shared out over
 * up to default_destination_concurrency_limit processes.
 *
 * A worker is a fork that delivers every step-th id and reports its
 * counts through a pipe; it dies with smapd (PR_SET_PDEATHSIG). Two
 * workers, or two smapd processes, never deliver one message at once:
 * deliver.c takes the message's lock.
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
#include "groupsync.h"
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

/* deliver_share - ids[first], ids[first + step], ...: one worker's part
 * of a run; the seconds until the first of them is due again */
static long long
deliver_share(struct qctx *q, char **ids, size_t n, size_t first,
    size_t step, long long now)
{
	long long wait = q->cf->queue_run_delay, next;
	size_t i;

	for (i = first; i < n && !*q->stop; i += step) {
		next = deliver_one(q, ids[i], now);
		if (next > now && next - now < wait)
			wait = next - now;
		while (q->nmade > 0 && !*q->stop)	/* the DSNs it made */
			if (q->ndown == 0)	/* else they wait for the next run */
				(void)deliver_one(q, q->made[--q->nmade], now);
			else
				q->nmade = 0;
	}
	agent_close_all();
	return wait;
}

/* The result a worker reports to the run that started it. */
struct share {
	long long wait, deferred;
};

/* spawn - a worker for share `first` of `step`; it writes its result to
 * fd and exits. Its pid, or -1 (then the run does that share itself). */
static pid_t
spawn(struct qctx *q, char **ids, size_t n, size_t first, size_t step,
    long long now, int fd)
{
	struct share r;
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	/* A worker outlives no smapd: SIGTERM ends it after its delivery. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(1);
	q->deferred = 0;
	r.wait = deliver_share(q, ids, n, first, step, now);
	r.deferred = q->deferred;
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
		if (r.wait < wait)
			wait = r.wait;
	}
	return wait;
}

/* deliver_ids - the run's messages, over up to
 * default_destination_concurrency_limit processes (flock keeps any two
 * from delivering one message; each worker takes every step-th id) */
static long long
deliver_ids(struct qctx *q, char **ids, size_t n, long long now)
{
	pid_t pid[CONCURRENCY_MAX];
	size_t step = (size_t)q->cf->default_destination_concurrency_limit;
	size_t nw = 0, i;
	long long wait, w;
	int p[2] = { -1, -1 };

	if (step > n)
		step = n > 0 ? n : 1;
	if (step > 1 && pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		step = 1;
	if (step > 1)
		groupsync_begin();
	for (i = 1; i < step; i++) {
		if ((pid[nw] = spawn(q, ids, n, i, step, now, p[1])) < 0)
			break;
		nw++;
	}
	if (p[1] >= 0)
		close(p[1]);
	wait = deliver_share(q, ids, n, 0, step, now);
	for (; i < step; i++)	/* shares no worker could be forked for */
		if ((w = deliver_share(q, ids, n, i, step, now)) < wait)
			wait = w;
	wait = gather(q, pid, nw, p[0], wait);
	groupsync_end();
	if (p[0] >= 0)
		close(p[0]);
	return wait;
}

/* queue_run - pick up; deliver what was picked up, or (full) all that is due */
long long
queue_run(struct qctx *q, int full)
{
	long long now = (long long)time(NULL), wait;
	size_t i, n;
	char **ids = pickup(q, &n);

	if (full) {
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		ids = list_queue(q, &n);
		q->active = (long long)n;
		q->deferred = 0;
	}
	q->ndown = 0;
	wait = deliver_ids(q, ids, n, now);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return wait;
}
