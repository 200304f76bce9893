/*
 * deliver.c - one message, one attempt (see deliver.h).
 *
 * A message in queue/ is delivered only under an exclusive flock that
 * is checked to still name the file; what is there is smapd's own copy
 * (or DSN): anything else was planted and is quarantined, never
 * followed or trusted. The envelope and state are read again with
 * their bounds; times from the future are taken as now. The state file
 * that will record the outcome is reserved before the attempt. The
 * pending recipients go one next hop at a time (hop.c), the progress
 * saved after each. Each recipient's outcome is one Postfix-shaped line
 * under the transport's log identity (agent.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "deliver.h"
#include "hop.h"
#include "journal_event.h"
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

/* record - one group's results into the state, each logged */
static void
record(struct delivery *d, struct state *st, double *t)
{
	size_t i;

	times(d, t);
	for (i = 0; i < d->n; i++) {
		struct rcpt_result *r = &st->r[d->idx[i]];

		*r = d->res[i];
		if (r->status == R_PENDING)	/* a transport bug: never lose it */
			r->status = R_DEFER;
		snprintf(r->relay, sizeof(r->relay), "%s", d->relay);
		d->res[i].status = r->status;
		log_result(d, i, t);
		if (r->status == R_DEFER)
			r->status = R_PENDING;	/* stored as "deferred" with its text */
	}
}

/* attempt - one group of recipients (one next hop) to the transport,
 * or deferred when their next hop cannot be told */
static void
attempt(struct qctx *q, struct delivery *d, struct state *st,
    const struct transport *hop, const char *why)
{
	double t[4];

	memset(d->res, 0, d->n * sizeof(*d->res));
	d->setup = 0;
	t[2] = now();
	if (why[0] != '\0') {	/* never delivered elsewhere: deferred */
		log_warn("%s: %s", d->env->id, why);
		d->ident = NULL;
		snprintf(d->relay, sizeof(d->relay), "none");
		deliver_all(d, R_DEFER, "4.3.5", "%s", why);
	} else
		hop_deliver(q, hop, d);
	settle_removals();	/* the last one's removal, before this record */
	t[3] = now();
	record(d, st, t);
	journal_attempt(d, why[0] == '\0' && (hop->kind == T_SMTP ||
	    hop->kind == T_LMTP));
}

/* by_hop - the pending recipients idx[0..n), one next hop at a time;
 * the progress is saved after each but the last, into the file
 * reserved for it (*rfd), and a new one reserved for the next (a crash
 * then never sends again what a next hop took); a save or reservation
 * that fails leaves the rest for the next attempt */
static void
by_hop(struct qctx *q, struct delivery *all, struct state *st, int *rfd)
{
	static struct transport hop;
	struct delivery d;
	char why[1024];
	size_t off = 0, k;

	while (off < all->n) {
		d = *all;
		k = hop_group(&q->routes, all->env, (size_t *)all->idx + off,
		    all->n - off, &hop, why, sizeof(why));
		d.idx = all->idx + off;
		d.res = all->res + off;
		d.n = k;
		attempt(q, &d, st, &hop, why);
		off += k;
		if (off < all->n && (state_save(&q->dirs, all->env->id, st,
		    rfd) < 0 || (*rfd = state_reserve(&q->dirs, all->env->id,
		    all->env->nrcpt)) < 0)) {
			log_warn("%s: cannot save its progress, the other next "
			    "hops wait: %s", all->env->id, strerror(errno));
			break;
		}
	}
}

/* deliver_pending - one attempt for every recipient still pending */
static void
deliver_pending(struct qctx *q, const struct envelope *e, int fd,
    struct state *st, int *rfd)
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
			by_hop(q, &d, st, rfd);
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
	deliver_pending(q, e, fd, st, &rfd);
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
