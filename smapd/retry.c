/*
 * retry.c - after an attempt (see retry.h): backoff, expiry after
 * maximal_queue_lifetime, the non-delivery and delay notifications
 * (bounce.c makes them, queued as messages of their own and tried in
 * the same run), the removal of a finished message.
 *
 * The outcome is recorded before anything follows from it: a crash
 * never re-sends to a recipient that accepted the message. When even
 * that record cannot be written the message is held, never retried.
 * Undeliverable mail from the null sender is never bounced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "bounce.h"
#include "journal_event.h"
#include "log.h"
#include "retry.h"

/* expire - past maximal_queue_lifetime: every pending recipient fails */
static void
expire(const struct qctx *q, struct state *st, long long now,
    const struct envelope *e)
{
	size_t i;

	for (i = 0; i < st->n; i++) {
		struct rcpt_result *r = &st->r[i];
		char last[sizeof(r->text)];

		if (r->status != R_PENDING)
			continue;
		snprintf(last, sizeof(last), "%s", r->text[0] ? r->text : "not tried");
		r->status = R_BOUNCE;
		snprintf(r->dsn, sizeof(r->dsn), "4.4.7");
		snprintf(r->text, sizeof(r->text), "message expired after %lld "
		    "seconds in the queue: %.400s", now - e->arrival, last);
		log_info("%s: to=%s, status=expired, returned to sender (%s)",
		    e->id, e->rcpt[i], r->text);
		journal_expired(e, i, r);
	}
	(void)q;
}

/* backoff - seconds until the next attempt after this many */
static long long
backoff(const struct conf *cf, long long attempts)
{
	long long wait = cf->minimal_backoff_time;

	while (--attempts > 0 && wait < cf->maximal_backoff_time)
		wait *= 2;
	return wait < cf->maximal_backoff_time ? wait : cf->maximal_backoff_time;
}

/* remove_message - the message is done: delete it and its state; 0,
 * or -1 (errno set) when it is still there */
static int
remove_message(const struct qctx *q, const char *id)
{
	struct stat st;
	int err;

	if (unlinkat(q->dirs.fd[L_QUEUE], id, 0) < 0) {
		err = errno;
		log_warn("%s: cannot remove: %s", id, strerror(err));
		errno = err;
		return -1;
	}
	/* A state file (an earlier attempt's progress) goes only once the
	 * removal is durable: a crash must never bring back the message
	 * without the record of who has it. Without one, the fsync is left
	 * to the run's next flush (sync_removal). */
	if (fstatat(q->dirs.fd[L_STATE], id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (sync_dir(q, L_QUEUE) == 0)
			state_remove(&q->dirs, id);
	} else
		sync_removal(q);
	log_info("%s: removed", id);
	return 0;
}

/* made - remember a notification just queued, to be tried in this run */
static void
made(struct qctx *q, const char *id)
{
	if (q->nmade < MADE_MAX)
		snprintf(q->made[q->nmade++], sizeof(q->made[0]), "%s", id);
}

/* warn_delay - once, after delay_warning_time, tell the sender; 1 when
 * it did (st changed) */
static int
warn_delay(struct qctx *q, const struct envelope *e, int fd,
    struct state *st, long long now)
{
	char bid[SPOOL_ID_MAX + 1];

	if (q->cf->delay_warning_time == 0 || st->warned ||
	    now - e->arrival < q->cf->delay_warning_time ||
	    strcmp(e->sender, "<>") == 0)
		return 0;
	if (bounce_delay(&q->dirs, q->cf, e, fd, st, bid, sizeof(bid)) < 0) {
		log_warn("%s: cannot create the delay notification: %s", e->id,
		    strerror(errno));
		return 0;
	}
	st->warned = 1;
	made(q, bid);
	log_info_as("smap/bounce", "%s: sender delay notification: %s",
	    e->id, bid);
	return 1;
}

/* return_failed - the DSN for recipients that failed since the last one;
 * sent at once, even while others are still being retried; 1 when it
 * was made (st changed) */
static int
return_failed(struct qctx *q, const struct envelope *e, int fd,
    struct state *st)
{
	char bid[SPOOL_ID_MAX + 1];
	size_t i, n = 0;

	for (i = 0; i < st->n; i++)
		n += st->r[i].status == R_BOUNCE && !st->r[i].notified;
	if (n == 0 || strcmp(e->sender, "<>") == 0)
		return 0;
	if (bounce_create(&q->dirs, q->cf, e, fd, st, bid, sizeof(bid)) < 0) {
		log_warn("%s: cannot create the non-delivery notification: %s",
		    e->id, strerror(errno));
		return 0;
	}
	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE)
			st->r[i].notified = 1;
	made(q, bid);
	log_info_as("smap/bounce", "%s: sender non-delivery notification: "
	    "%s", e->id, bid);
	return 1;
}

/* hold_unsaved - the outcome of an attempt could not be saved: hold the
 * message (no retry may go to a recipient that accepted it) until the
 * admin releases it; if even that fails, stop delivering */
static void
hold_unsaved(struct qctx *q, const char *id, int err)
{
	log_msg(LOG_ERR, "error: %s: cannot save the progress of this delivery "
	    "in %s/%s: %s", id, layout_name(L_STATE), id, strerror(err));
	if (layout_rename(&q->dirs, L_QUEUE, L_HOLD, id) == 0) {
		log_msg(LOG_ERR, "error: %s: placed on hold so that no recipient "
		    "gets it twice: fix the cause, then smapq release %s", id, id);
		journal_held(id, strerror(err));
		(void)layout_write_why(&q->dirs, L_HOLD, id, "the progress of a "
		    "delivery could not be saved (see the log); a release may "
		    "send it again to recipients that already have it");
		return;
	}
	log_msg(LOG_CRIT, "fatal: %s: cannot hold it either (%s): stopping, so "
	    "that nothing is delivered twice", id, strerror(errno));
	*q->stop = 1;
}

/* double_bounce - undeliverable mail from <>: never bounced (there is
 * nobody to tell); as Postfix does, logged and discarded, or kept in
 * quarantine/ (expiring with quarantine_lifetime) when asked */
static void
double_bounce(struct qctx *q, const struct envelope *e, const struct state *st)
{
	const char *why = "undeliverable";
	size_t i;

	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE && st->r[i].text[0] != '\0')
			why = st->r[i].text;
	if (q->cf->quarantine_double_bounces) {
		/* its state goes only once it is out of queue/ for good */
		if (quarantine(q, L_QUEUE, e->id, "undeliverable, and the "
		    "sender is the null sender (never bounced)") == 0)
			state_remove(&q->dirs, e->id);
		return;
	}
	log_info("%s: undeliverable mail from the null sender discarded "
	    "(a double bounce): %s", e->id, why);
	(void)remove_message(q, e->id);	/* its state is saved: no retry */
}

/* finish - nothing is pending: remove the message, unless a DSN is owed;
 * a message that cannot be removed keeps a state that says so (in *rfd,
 * the reservation, when it is unused), or is held */
static void
finish(struct qctx *q, const struct envelope *e, const struct state *st,
    size_t bounced, int *rfd)
{
	size_t i;

	if (bounced > 0 && strcmp(e->sender, "<>") == 0) {
		double_bounce(q, e, st);
		return;
	}
	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE && !st->r[i].notified)
			return;	/* the DSN could not be made: keep it, try later */
	if (remove_message(q, e->id) < 0 &&
	    state_save(&q->dirs, e->id, st, rfd) < 0)
		hold_unsaved(q, e->id, errno);
}

/* conclude - after an attempt: done, bounce, or wait for the next one;
 * *rfd is the state file reserved for its outcome */
void
conclude(struct qctx *q, const struct envelope *e, int fd, struct state *st,
    long long now, int *rfd)
{
	size_t i, pending = 0, bounced = 0;

	for (i = 0; i < st->n; i++) {
		pending += st->r[i].status == R_PENDING;
		bounced += st->r[i].status == R_BOUNCE;
	}
	if (pending > 0 && now - e->arrival >= q->cf->maximal_queue_lifetime) {
		expire(q, st, now, e);
		bounced += pending;
		pending = 0;
	}
	if (pending > 0) {
		st->attempts++;
		st->next = now + backoff(q->cf, st->attempts);
	}
	/* Record the outcome first, in one state file that is complete when
	 * it appears (written into the file reserved before the attempt): a
	 * crash from here on never re-sends. When every recipient has been
	 * sent, removing the file (and fsyncing queue/) is that record, so
	 * no state file is written, unless the file cannot be removed: then
	 * the state is saved after all (finish). The DSNs made next are
	 * recorded by a second save (a crash between the two may repeat a
	 * DSN, never a delivery). */
	if ((pending > 0 || bounced > 0) &&
	    state_save(&q->dirs, e->id, st, rfd) < 0) {
		hold_unsaved(q, e->id, errno);
		return;
	}
	if ((return_failed(q, e, fd, st) | (pending > 0 &&
	    warn_delay(q, e, fd, st, now))) &&
	    state_save(&q->dirs, e->id, st, NULL) < 0)
		log_warn("%s: cannot save that its DSN was sent: %s", e->id,
		    strerror(errno));
	if (pending == 0) {
		finish(q, e, st, bounced, rfd);
		return;
	}
	log_info("%s: deferred after attempt %lld, next attempt in %llds",
	    e->id, st->attempts, st->next - now);
	q->deferred++;
}
