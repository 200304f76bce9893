/*
 * queue.c - pick up, deliver, retry, bounce, quarantine (see queue.h).
 *
 * Every file in new/ is hostile: it is opened with O_NOFOLLOW and
 * O_NONBLOCK, must be a regular file with one link owned by mail_owner,
 * must parse with spool_read_envelope(), must carry its own name as its
 * id, and must pass the relay policy again (relay.h): smap may have
 * been made to write anything. Anything else is moved to quarantine/
 * with the reason beside it. Every path is relative to the directories
 * layout_queue.c opened, never through a link. Two smapd processes may
 * run at once: a move out of new/ succeeds for one of them only, and a
 * message in queue/ is delivered only under an exclusive flock that is
 * checked to still name the file.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "addr.h"
#include "bounce.h"
#include "layout_queue.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "spool.h"
#include "state.h"
#include "tls.h"

#define PICK_MAX 256		/* files copied in before queue/ is fsync'd */

/* A file being picked up: the original in new/ (open, claimed with
 * flock) and smapd's copy in queue/. */
struct picked {
	int fd, copy;
	struct stat st;
};

/* sync_dir - fsync one of the spool directories, saying so if it fails */
static void
sync_dir(const struct qctx *q, enum ldir w)
{
	if (layout_sync(q->dirs.fd[w]) < 0)
		log_warn("fsync %s: %s", layout_name(w), strerror(errno));
}

/* quarantine - move w/name aside, the reason beside it and in the log */
static void
quarantine(const struct qctx *q, enum ldir w, const char *name,
    const char *why)
{
	char esc[300], to[80];
	int rc = layout_quarantine(&q->dirs, w, name, why, to, sizeof(to));

	log_esc(esc, sizeof(esc), name, strlen(name));
	if (rc < 0) {
		log_warn("cannot quarantine %s/%s: %s", layout_name(w), esc,
		    strerror(errno));
		return;
	}
	if (rc > 0)
		log_warn("quarantine/%s.why: cannot write the reason: %s", to,
		    strerror(errno));
	if (strcmp(to, name) == 0)
		log_warn("%s: quarantined: %s", esc, why);
	else
		log_warn("%s: quarantined: %s (as quarantine/%s)", esc, why, to);
}

/* trusted_client - may the client recorded in e relay (mynetworks, or a
 * certificate listed in relay_clientcerts)? */
static int
trusted_client(const struct conf *cf, const struct envelope *e)
{
	unsigned char bin[16];
	char fp[TLS_FP_LEN];
	int fam;

	if (net_addr_parse(e->client, &fam, bin) == 0 &&
	    net_match(&cf->mynetworks, fam, bin))
		return 1;
	if (e->ccert[0] == '\0')
		return 0;
	snprintf(fp, sizeof(fp), "%.*s", (int)strcspn(e->ccert, " "), e->ccert);
	return tls_fp_listed(fp, cf->relay_clientcerts);
}

/* relay_recheck - the relay policy once more; NULL when it holds */
static const char *
relay_recheck(const struct conf *cf, const struct envelope *e, char *why,
    size_t len)
{
	int trusted = trusted_client(cf, e);
	const char *bad;
	struct addr a;
	size_t i;

	for (i = 0; i < e->nrcpt; i++) {
		if (addr_check_stored(e->rcpt[i], ADDR_RECIPIENT, &a, &bad) < 0)
			return bad;
		if (relay_allowed(cf, &a, trusted))
			continue;
		snprintf(why, len, "relay policy: recipient %.300s is outside "
		    "relay_domains and client %s is not in mynetworks",
		    e->rcpt[i], e->client);
		return why;
	}
	return NULL;
}

/* check_src - the checks of the open file in new/; NULL when it may be
 * copied in */
static const char *
check_src(const struct qctx *q, int fd, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return strerror(errno);
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_nlink != 1)
		return "more than one hard link";
	if (st->st_uid != q->spool_uid)
		return "wrong owner";
	if (st->st_size > q->cf->message_size_limit + 65536LL + SPOOL_LINE_MAX *
	    (long long)(q->cf->smtpd_recipient_limit + 16))
		return "file too large";
	return NULL;
}

/* check_copy - the checks of smapd's own copy; NULL when it may be queued
 * (e is then filled in) */
static const char *
check_copy(const struct qctx *q, int fd, const char *name, struct envelope *e,
    char *why, size_t len)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return strerror(errno);
	if (spool_read_envelope(fd, e, (size_t)q->cf->smtpd_recipient_limit,
	    why, len) < 0)
		return why;
	if (strcmp(e->id, name) != 0) {
		spool_free_envelope(e);
		return "id record does not match the file name";
	}
	if (relay_recheck(q->cf, e, why, len) != NULL) {
		spool_free_envelope(e);
		return why;
	}
	return NULL;
}

/* what_is - the name's kind, owner and links as lstat sees them: a
 * reason even for a file smapd may not open; NULL when it looks right.
 * The checks of the open file (check_file) are the ones that count. */
static const char *
what_is(const struct qctx *q, const char *name, int *dir)
{
	struct stat ls;

	*dir = 0;
	if (fstatat(q->dirs.fd[L_NEW], name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? "" : strerror(errno);
	if (S_ISLNK(ls.st_mode))
		return "symbolic link";
	if (S_ISDIR(ls.st_mode))
		return (*dir = 1), "not a regular file: a directory";
	if (!S_ISREG(ls.st_mode))
		return "not a regular file";
	if (ls.st_nlink != 1)
		return "more than one hard link";
	return ls.st_uid != q->spool_uid ? "wrong owner" : NULL;
}

/* copy_in - size bytes of the open file into queue/ID.tmp, a file of
 * smapd's own (smap keeps no hold on it, whatever descriptors it kept);
 * its fd, or -1 with errno */
static int
copy_in(const struct qctx *q, int src, const char *id, off_t size)
{
	static char buf[65536];
	off_t off = 0;
	ssize_t n = 0;
	int fd = layout_create_own(&q->dirs, L_QUEUE, id);

	while (fd >= 0 && off < size) {
		n = pread(src, buf, size - off < (off_t)sizeof(buf) ?
		    (size_t)(size - off) : sizeof(buf), off);
		if (n <= 0 || spool_write(fd, buf, (size_t)n) < 0)
			break;
		off += n;
	}
	if (fd >= 0 && off < size) {	/* made durable when it is queued */
		if (n == 0)
			errno = EIO;	/* the file shrank under us */
		layout_discard(&q->dirs, L_QUEUE, fd, id);
		return -1;
	}
	return fd;
}

/* claim - new/name opened and locked by this smapd alone (another smapd,
 * or smap, holding its lock means: not now), still that name: fd, or -1
 * with why ("" to leave it) */
static int
claim(struct qctx *q, const char *name, const char **why)
{
	int fd = layout_open_file(&q->dirs, L_NEW, name);

	if (fd < 0) {
		*why = errno == ENOENT ? "" : errno == ELOOP ? "symbolic link" :
		    errno == EINVAL ? "not a regular file" : strerror(errno);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 ||
	    !layout_still_named(&q->dirs, L_NEW, fd, name)) {
		*why = "";	/* another smapd is taking it, or took it */
		close(fd);
		return -1;
	}
	return fd;
}

/* check_new - claim new/name, copy it in, check the copy; NULL when it
 * may be queued (p: the original, still claimed, and the copy), "" when
 * it is to stay where it is for now, else why it is refused */
static const char *
check_new(struct qctx *q, const char *name, struct envelope *e, int *dir,
    struct picked *p)
{
	static char why[512];
	const char *bad;

	p->fd = p->copy = -1;
	if (!qid_ok(name))
		return "file name is not a queue id";
	if ((bad = what_is(q, name, dir)) != NULL ||
	    (p->fd = claim(q, name, &bad)) < 0)
		return bad;
	if ((bad = check_src(q, p->fd, &p->st)) == NULL &&
	    (p->copy = copy_in(q, p->fd, name, p->st.st_size)) < 0) {
		log_warn("%s: cannot copy into %s/, left for later: %s", name,
		    layout_name(L_QUEUE), strerror(errno));
		bad = "";
	}
	if (bad == NULL && (bad = check_copy(q, p->copy, name, e, why,
	    sizeof(why))) != NULL)
		layout_discard(&q->dirs, L_QUEUE, p->copy, name);
	if (bad != NULL) {
		close(p->fd);
		p->fd = -1;
	}
	return bad;
}

/* refuse - quarantine what pickup refused; a directory (which smapd may
 * not move: it is smap's) is removed if empty, else left and named */
static void
refuse(struct qctx *q, const char *name, const char *why, int dir)
{
	char esc[300];

	if (!dir) {
		quarantine(q, L_NEW, name, why);
		return;
	}
	log_esc(esc, sizeof(esc), name, strlen(name));
	if (unlinkat(q->dirs.fd[L_NEW], name, AT_REMOVEDIR) == 0)
		log_warn("%s: removed from %s: an empty directory", esc,
		    layout_name(L_NEW));
	else
		log_warn("%s/%s: a directory that smapd may not move: %s (remove "
		    "it as root)", layout_name(L_NEW), esc, strerror(errno));
}

/* pick_one - new/name copied to queue/name, or moved to quarantine/;
 * 1 when queued (p: the original, removed once queue/ is durable) */
static int
pick_one(struct qctx *q, const char *name, struct picked *p)
{
	struct envelope e = { 0 };
	int dir = 0;
	const char *bad = check_new(q, name, &e, &dir, p);

	if (bad != NULL) {
		if (*bad != '\0')
			refuse(q, name, bad, dir);
		return 0;
	}
	if (layout_publish(&q->dirs, L_QUEUE, p->copy, name, PUB_NOSYNC) < 0) {
		if (errno == EEXIST)
			quarantine(q, L_NEW, name, "duplicate queue id");
		else
			log_warn("%s: cannot queue: %s", name, strerror(errno));
		close(p->fd);
		spool_free_envelope(&e);
		return 0;
	}
	log_ident("smap/qmgr");
	log_info("%s: from=%s, size=%lld, nrcpt=%zu (queue active)", name,
	    e.sender, e.size, e.nrcpt);
	spool_free_envelope(&e);
	return 1;
}

/* unlink_picked - the originals of what was copied in, now that queue/
 * is durable; only if the name is still the file that was copied; their
 * claims end */
static void
unlink_picked(struct qctx *q, char **v, struct picked *p, size_t n)
{
	struct stat now;
	size_t i;

	for (i = 0; i < n; i++) {
		if (fstatat(q->dirs.fd[L_NEW], v[i], &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == p[i].st.st_dev && now.st_ino == p[i].st.st_ino)
			(void)unlinkat(q->dirs.fd[L_NEW], v[i], 0);
		close(p[i].fd);
	}
}

/* pickup - copy what smap committed to queue/, PICK_MAX at a time (each
 * original stays claimed until queue/ is durable); the ids queued */
static char **
pickup(struct qctx *q, size_t *n)
{
	static struct picked p[PICK_MAX];
	char **names, **v;
	size_t i, k = 0, all, done = 0;

	*n = 0;
	if (layout_scan(&q->dirs, L_NEW, SCAN_MAX, layout_any_name, &names, &all) < 0) {
		log_warn("open %s: %s", layout_name(L_NEW), strerror(errno));
		return NULL;
	}
	v = names;
	for (i = 0; i < all; i++) {
		if (!*q->stop && pick_one(q, names[i], &p[k - done]))
			v[k++] = names[i];
		else
			free(names[i]);
		if (k - done == PICK_MAX || (i + 1 == all && k > done)) {
			sync_dir(q, L_QUEUE);	/* durable in queue/, then */
			unlink_picked(q, v + done, p, k - done);	/* gone */
			done = k;
		}
	}
	if (all > 0)
		sync_dir(q, L_NEW);
	*n = k;
	return v;
}

/* The log identity of each transport, as Postfix names its agents. */
static const char *const ident[] = { "smap/smtp", "smap/lmtp", "smap/pipe",
	"smap/local" };

/* log_result - one Postfix-shaped delivery line */
static void
log_result(const struct qctx *q, const struct delivery *d, size_t i,
    const double *t)
{
	static const char *word[] = { "pending", "sent", "deferred", "bounced" };
	const struct rcpt_result *r = &d->res[i];

	log_ident(ident[q->t.kind]);
	log_info("%s: to=%s, relay=%s, delay=%.2f, delays=%.2f/%.2f/%.2f/%.2f, "
	    "dsn=%s, status=%s (%s)", d->env->id, d->env->rcpt[d->idx[i]],
	    d->relay, t[3] - t[0], t[1] - t[0], t[2] - t[1], d->setup,
	    t[3] - t[2] - d->setup, r->dsn, word[r->status], r->text);
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
	double t[4];
	size_t i;

	t[2] = now();
	log_ident(ident[q->t.kind]);	/* what the transport logs is its own */
	if (q->down) {	/* as Postfix does behind a dead destination */
		snprintf(d->relay, sizeof(d->relay), "none");
		deliver_all(d, R_DEFER, "4.4.1", "%s", q->down_text);
	} else if (q->t.kind == T_SENDMAIL)
		deliver_sendmail(&q->t, q->cf, d);
	else if (q->t.kind == T_MAILDIR)
		deliver_maildir(&q->t, q->cf, d);
	else
		deliver_smtp(&q->t, q->cf, d);
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
		log_result(q, d, i, t);
		if (r->status == R_DEFER)
			r->status = R_PENDING;	/* stored as "deferred" with its text */
	}
}

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
		log_ident("smap/qmgr");
		log_info("%s: to=%s, status=expired, returned to sender (%s)",
		    e->id, e->rcpt[i], r->text);
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

/* remove_message - the message is done: delete it and its state */
static void
remove_message(const struct qctx *q, const char *id)
{
	if (unlinkat(q->dirs.fd[L_QUEUE], id, 0) < 0) {
		log_warn("%s: cannot remove: %s", id, strerror(errno));
		return;
	}
	state_remove(&q->dirs, id);
	sync_dir(q, L_QUEUE);
	log_ident("smap/qmgr");
	log_info("%s: removed", id);
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
	log_ident("smap/bounce");
	log_info("%s: sender delay notification: %s", e->id, bid);
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
	log_ident("smap/bounce");
	log_info("%s: sender non-delivery notification: %s", e->id, bid);
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
		quarantine(q, L_QUEUE, e->id, "undeliverable, and the sender is "
		    "the null sender (never bounced)");
		state_remove(&q->dirs, e->id);
		return;
	}
	log_ident("smap/qmgr");
	log_info("%s: undeliverable mail from the null sender discarded "
	    "(a double bounce): %s", e->id, why);
	remove_message(q, e->id);
}

/* finish - nothing is pending: remove the message, unless a DSN is owed */
static void
finish(struct qctx *q, const struct envelope *e, const struct state *st,
    size_t bounced)
{
	size_t i;

	if (bounced > 0 && strcmp(e->sender, "<>") == 0) {
		double_bounce(q, e, st);
		return;
	}
	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE && !st->r[i].notified)
			return;	/* the DSN could not be made: keep it, try later */
	remove_message(q, e->id);
}

/* conclude - after an attempt: done, bounce, or wait for the next one;
 * *rfd is the state file reserved for its outcome */
static void
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
	 * no state file is written. The DSNs made next are recorded by a
	 * second save (a crash between the two may repeat a DSN, never a
	 * delivery). */
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
		finish(q, e, st, bounced);
		return;
	}
	log_ident("smap/qmgr");
	log_info("%s: deferred after attempt %lld, next attempt in %llds",
	    e->id, st->attempts, st->next - now);
	q->deferred++;
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
static long long
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
			if (!q->down)	/* else they wait for the next run */
				(void)deliver_one(q, q->made[--q->nmade], now);
			else
				q->nmade = 0;
	}
	if (q->t.kind == T_SMTP || q->t.kind == T_LMTP)
		smtp_close_cached();
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
	q->down = 0;
	wait = deliver_ids(q, ids, n, now);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return wait;
}
