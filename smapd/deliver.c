/*
 * deliver.c - one message, one attempt (see deliver.h).
 *
 * A message in queue/ is delivered only under an exclusive flock that
 * is checked to still name the file; what is there is smapd's own copy
 * (or DSN): anything else was planted and is quarantined, never
 * followed or trusted. The envelope and state are read again with
 * their bounds; times from the future are taken as now. The state file
 * that will record the outcome is reserved before the attempt. Each
 * recipient's outcome is one Postfix-shaped line under the transport's
 * log identity (agent.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "agent.h"
#include "deliver.h"
#include "log.h"
#include "retry.h"

/* log_result - one Postfix-shaped delivery line */
static void
log_result(const struct delivery *d, size_t i, const double *t)
{
	const struct rcpt_result *r = &d->res[i];
	double setup = d->setup < t[3] - t[2] ? d->setup : t[3] - t[2];

	/* setup is timed on the monotonic clock, the rest on the wall
	 * clock: no part may come out longer than the attempt */
	log_info_as(d->ident, "%s: to=%s, relay=%s, delay=%.2f, "
	    "delays=%.2f/%.2f/%.2f/%.2f, dsn=%s, status=%s (%s)", d->env->id, d->env->rcpt[d->idx[i]],
	    d->relay, t[3] - t[0], t[1] - t[0], t[2] - t[1], setup,
	    t[3] - t[2] - setup, r->dsn, status_names[r->status], r->text);
}

/* times - Postfix's points of a delivery, in seconds: arrival (t[0]),
 * pickup (t[1]: when smapd made its copy in queue/), the attempt's start
 * (t[2]) and end (t[3]), each no earlier than the one before */
static void
times(const struct delivery *d, double *t)
{
	struct stat st;
	int k;

	t[0] = (double)d->env->arrival + d->env->arrival_us / 1e6;
	t[1] = fstat(d->fd, &st) == 0 ? (double)st.st_mtim.tv_sec +
	    st.st_mtim.tv_nsec / 1e9 : t[0];
	for (k = 1; k <= 3; k++)
		if (t[k] < t[k - 1])
			t[k] = t[k - 1];
}

/* now - wall clock time in seconds */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* attempt - hand the pending recipients to the transport, record results */
static void
attempt(struct qctx *q, struct delivery *d, struct state *st)
{
	const struct agent *a = agent_for(&q->t);
	double t[4];
	size_t i;

	t[2] = now();
	d->ident = a->ident;	/* what the transport logs is its own */
	if (q->down) {	/* as Postfix does behind a dead destination */
		snprintf(d->relay, sizeof(d->relay), "none");
		deliver_all(d, R_DEFER, "4.4.1", "%s", q->down_text);
	} else
		a->deliver(&q->t, q->cf, d);
	t[3] = now();
	times(d, t);
	/* Nobody answered: the rest of this run would only wait the same,
	 * so it is deferred with the same reason and no new attempt. */
	if (!q->down && d->n > 0 && d->res[0].status == R_DEFER &&
	    strncmp(d->res[0].dsn, "4.4.1", 5) == 0) {
		q->down = 1;
		snprintf(q->down_text, sizeof(q->down_text), "%s", d->res[0].text);
	}
	for (i = 0; i < d->n; i++) {
		struct rcpt_result *r = &st->r[d->idx[i]];

		*r = d->res[i];
		if (r->status == R_PENDING)	/* a transport bug: never lose it */
			r->status = R_DEFER;
		d->res[i].status = r->status;
		log_result(d, i, t);
		if (r->status == R_DEFER)
			r->status = R_PENDING;	/* stored as "deferred" with its text */
	}
}

/* deliver_pending - one attempt for every recipient still pending */
static void
deliver_pending(struct qctx *q, const struct envelope *e, int fd,
    struct state *st)
{
	struct delivery d;
	size_t i, n = 0;

	memset(&d, 0, sizeof(d));
	d.idx = calloc(e->nrcpt, sizeof(*d.idx));
	d.res = calloc(e->nrcpt, sizeof(*d.res));
	if (d.idx == NULL || d.res == NULL) {
		log_warn("%s: out of memory", e->id);
	} else {
		for (i = 0; i < e->nrcpt; i++)
			if (st->r[i].status == R_PENDING)
				((size_t *)d.idx)[n++] = i;
		d.env = e;
		d.fd = fd;
		d.n = n;
		if (n > 0)
			attempt(q, &d, st);
	}
	free((void *)d.idx);
	free(d.res);
}

/* clamp - times from the future (a hostile arrival, a damaged next) are
 * now: every message expires, and is retried, in its time */
static void
clamp(const struct qctx *q, struct envelope *e, struct state *st,
    long long now)
{
	if (e->arrival > now) {
		log_warn("%s: arrival time %lld is in the future: taken as now",
		    e->id, e->arrival);
		e->arrival = now;
	}
	if (st->next > now + q->cf->maximal_backoff_time)
		st->next = now;
}

/* attempt_due - the attempt for a message that is due, its outcome
 * recorded in a state file reserved first; the next time it is due */
static long long
attempt_due(struct qctx *q, const struct envelope *e, int fd,
    struct state *st)
{
	int rfd = state_reserve(&q->dirs, e->id, e->nrcpt);

	if (rfd < 0) {
		log_warn("%s: not delivered now: no room to record its progress "
		    "in %s/: %s", e->id, layout_name(L_STATE), strerror(errno));
		q->deferred++;
		return st->next;
	}
	deliver_pending(q, e, fd, st);
	conclude(q, e, fd, st, (long long)time(NULL), &rfd);
	state_unreserve(&q->dirs, e->id, &rfd);
	return st->next;
}

/* not_own - what is in queue/ is smapd's own copy (or DSN); anything
 * else came from outside; NULL when it is smapd's */
static const char *
not_own(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return strerror(errno);
	return st.st_uid == geteuid() ? NULL : "in queue/ but not smapd's own file";
}

/* deliver_one - lock queue/id, check it again, try the due recipients */
long long
deliver_one(struct qctx *q, const char *id, long long now)
{
	char why[256];
	struct envelope e;
	struct state st = { 0 };
	const char *bad = NULL;
	long long next = 0;
	int fd;

	if ((fd = layout_lock(&q->dirs, L_QUEUE, id)) < 0 ||
	    (bad = not_own(fd)) != NULL) {
		if (fd < 0 && (errno == ELOOP || errno == EINVAL || errno == EMLINK))
			bad = errno == ELOOP ? "symbolic link" : errno == EMLINK ?
			    "more than one hard link" : "not a regular file";
		if (bad != NULL)	/* planted: never followed, never trusted */
			quarantine(q, L_QUEUE, id, bad);
		if (fd >= 0)
			close(fd);
		return 0;	/* or gone, or another smapd has it */
	}
	if (spool_read_envelope(fd, &e, RCPT_LIMIT_MAX, why, sizeof(why)) < 0 ||
	    state_load(&q->dirs, id, e.nrcpt, &st, why, sizeof(why)) < 0) {
		quarantine(q, L_QUEUE, id, why);
	} else {
		clamp(q, &e, &st, now);
		if (!q->flush && st.next > now) {
			next = st.next;
			q->deferred++;
		} else
			next = attempt_due(q, &e, fd, &st);
	}
	state_free(&st);
	spool_free_envelope(&e);
	close(fd);
	return next;
}
