/*
 * queue.c - pick up, deliver, retry, bounce, quarantine (see queue.h).
 *
 * Every file in new/ is hostile: it is opened with O_NOFOLLOW and
 * O_NONBLOCK, must be a regular file with one link owned by smap or
 * smapd, must parse with spool_read_envelope(), and must carry its own
 * name as its id. Anything else is moved to quarantine/ with the reason
 * beside it. Two smapd processes may run at once: a move out of new/
 * succeeds for one of them only, and a message in queue/ is delivered
 * only under an exclusive flock that is checked to still name the file.
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

#include "bounce.h"
#include "log.h"
#include "queue.h"
#include "spool.h"
#include "state.h"

#define QDIR QUEUE_DIR
#define QUAR "quarantine"
#define SCAN_MAX 100000		/* files looked at in one directory scan */

/* id_ok - a queue id: 1..SPOOL_ID_MAX upper-case hex digits */
static int
id_ok(const char *s)
{
	size_t n = strspn(s, "0123456789ABCDEF");

	return n > 0 && n <= SPOOL_ID_MAX && s[n] == '\0';
}

/* sync_dir - fsync a directory */
static void
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		if (fsync(fd) < 0)
			log_warn("fsync %s: %s", dir, strerror(errno));
		close(fd);
	}
}

/* queue_prepare - smapd's directories, owned by smapd */
int
queue_prepare(const struct conf *cf, uid_t uid, gid_t gid, char *why, size_t len)
{
	static const char *dirs[] = { QDIR, "state", QUAR, HOLD_DIR };
	size_t i;

	(void)cf;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (mkdir(dirs[i], 0700) < 0 && errno != EEXIST) {
			snprintf(why, len, "mkdir %s: %s", dirs[i], strerror(errno));
			return -1;
		}
		if (geteuid() == 0 && chown(dirs[i], uid, gid) < 0) {
			snprintf(why, len, "chown %s: %s", dirs[i], strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* quarantine - move dir/name aside and write why beside it */
static void
quarantine(const char *dir, const char *name, const char *why)
{
	static unsigned counter;
	char from[512], to[512], safe[64], esc[300];
	FILE *fp;

	if (id_ok(name))
		snprintf(safe, sizeof(safe), "%s", name);
	else
		snprintf(safe, sizeof(safe), "X%llX%X", (long long)time(NULL),
		    counter++);
	snprintf(from, sizeof(from), "%s/%s", dir, name);
	snprintf(to, sizeof(to), "%s/%s", QUAR, safe);
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		snprintf(to, sizeof(to), "%s/%s.%llX", QUAR, safe,
		    (long long)time(NULL));
		if (rename(from, to) < 0) {
			log_warn("cannot quarantine %s: %s", from, strerror(errno));
			return;
		}
	}
	snprintf(to + strlen(to), sizeof(to) - strlen(to), ".why");
	if ((fp = fopen(to, "we")) != NULL) {
		fprintf(fp, "%s\n", why);
		fclose(fp);
	}
	sync_dir(QUAR);
	log_esc(esc, sizeof(esc), name, strlen(name));
	log_warn("%s: quarantined: %s", esc, why);
}

/* check_file - the checks of an open spool file; NULL when it is fine */
static const char *
check_file(struct qctx *q, int fd, const char *name, struct envelope *e,
    char *why, size_t len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return strerror(errno);
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	if (st.st_nlink != 1)
		return "more than one hard link";
	if (st.st_uid != q->spool_uid && st.st_uid != q->self_uid)
		return "wrong owner";
	if (st.st_size > q->cf->message_size_limit + 65536LL + SPOOL_LINE_MAX *
	    (long long)(q->cf->smtpd_recipient_limit + 16))
		return "file too large";
	if (spool_read_envelope(fd, e, (size_t)q->cf->smtpd_recipient_limit,
	    why, len) < 0)
		return why;
	if (strcmp(e->id, name) != 0) {
		spool_free_envelope(e);
		return "id record does not match the file name";
	}
	return NULL;
}

/* check_new - open and check new/name; NULL when it may be queued */
static const char *
check_new(struct qctx *q, const char *name, struct envelope *e)
{
	static char why[256];
	char path[512];
	const char *bad;
	struct stat ls;
	int fd;

	if (!id_ok(name))
		return "file name is not a queue id";
	snprintf(path, sizeof(path), "%s/%s", SPOOL_NEW, name);
	/* A stranger's file may not even be readable: say whose it is. The
	 * checks after open() are the ones that count. */
	if (lstat(path, &ls) == 0 && S_ISREG(ls.st_mode) &&
	    ls.st_uid != q->spool_uid && ls.st_uid != q->self_uid)
		return "wrong owner";
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return "";	/* taken by another smapd */
		return errno == ELOOP ? "symbolic link" : strerror(errno);
	}
	bad = check_file(q, fd, name, e, why, sizeof(why));
	close(fd);
	return bad;
}

/* pick_one - new/name to queue/name, or to quarantine/ */
static int
pick_one(struct qctx *q, const char *name)
{
	char from[512], to[512];
	struct envelope e;
	const char *bad = check_new(q, name, &e);

	if (bad != NULL) {
		if (*bad != '\0')
			quarantine(SPOOL_NEW, name, bad);
		return 0;
	}
	snprintf(from, sizeof(from), "%s/%s", SPOOL_NEW, name);
	snprintf(to, sizeof(to), "%s/%s", QDIR, name);
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST)
			quarantine(SPOOL_NEW, name, "duplicate queue id");
		else if (errno != ENOENT)
			log_warn("%s: cannot queue: %s", name, strerror(errno));
		spool_free_envelope(&e);
		return 0;
	}
	log_ident("smap/qmgr");
	log_info("%s: from=%s, size=%lld, nrcpt=%zu (queue active)", name,
	    e.sender, e.size, e.nrcpt);
	spool_free_envelope(&e);
	return 1;
}

/* push - add a copy of name to a growing list */
static void
push(char ***v, size_t *n, size_t *cap, const char *name)
{
	char **nv;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		if ((nv = realloc(*v, *cap * sizeof(**v))) == NULL)
			return;
		*v = nv;
	}
	if (((*v)[*n] = strdup(name)) != NULL)
		(*n)++;
}

/* pickup - move what smap committed to queue/; the ids moved, malloc'd */
static char **
pickup(struct qctx *q, size_t *n)
{
	struct dirent *de;
	DIR *d = opendir(SPOOL_NEW);
	char **v = NULL;
	size_t cap = 0;
	int seen = 0;

	*n = 0;
	if (d == NULL) {
		log_warn("open %s: %s", SPOOL_NEW, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL && seen++ < SCAN_MAX && !*q->stop) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (pick_one(q, de->d_name))
			push(&v, n, &cap, de->d_name);
	}
	closedir(d);
	if (*n > 0)
		sync_dir(QDIR);
	return v;
}

/* queue_clean_tmp - files a killed smap left in tmp/ more than a day ago */
void
queue_clean_tmp(struct qctx *q)
{
	char path[512];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(SPOOL_TMP);
	time_t old = time(NULL) - 86400;
	int seen = 0;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL && seen++ < SCAN_MAX && !*q->stop) {
		snprintf(path, sizeof(path), "%s/%s", SPOOL_TMP, de->d_name);
		if (de->d_name[0] == '.' || lstat(path, &st) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_mtime >= old)
			continue;
		if (unlink(path) == 0)
			log_info("%s: removed stale temporary file", id_ok(de->d_name) ?
			    de->d_name : "(bad name)");
	}
	closedir(d);
}

/* still_named - is the locked file still queue/id (not removed meanwhile)? */
static int
still_named(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_nlink == 1 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* log_result - one Postfix-shaped delivery line */
static void
log_result(const struct qctx *q, const struct delivery *d, size_t i,
    double delay, double took)
{
	static const char *ident[] = { "smap/smtp", "smap/lmtp", "smap/pipe",
		"smap/local" };
	static const char *word[] = { "pending", "sent", "deferred", "bounced" };
	const struct rcpt_result *r = &d->res[i];

	log_ident(ident[q->t.kind]);
	log_info("%s: to=%s, relay=%s, delay=%.1f, delays=%.1f/0/0/%.1f, dsn=%s, "
	    "status=%s (%s)", d->env->id, d->env->rcpt[d->idx[i]], d->relay,
	    delay, delay - took, took, r->dsn, word[r->status], r->text);
}

/* attempt - hand the pending recipients to the transport, record results */
static void
attempt(struct qctx *q, struct delivery *d, struct state *st)
{
	struct timespec t0, t1;
	double took;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &t0);
	if (q->down) {	/* as Postfix does behind a dead destination */
		snprintf(d->relay, sizeof(d->relay), "none");
		deliver_all(d, R_DEFER, "4.4.1", "%s", q->down_text);
	} else if (q->t.kind == T_SENDMAIL)
		deliver_sendmail(&q->t, q->cf, d);
	else if (q->t.kind == T_MAILDIR)
		deliver_maildir(&q->t, q->cf, d);
	else
		deliver_smtp(&q->t, q->cf, d);
	clock_gettime(CLOCK_REALTIME, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
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
		log_result(q, d, i, (double)t1.tv_sec - (double)d->env->arrival +
		    t1.tv_nsec / 1e9, took);
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
remove_message(const char *id)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", QDIR, id);
	if (unlink(path) < 0) {
		log_warn("%s: cannot remove: %s", id, strerror(errno));
		return;
	}
	state_remove(id);
	sync_dir(QDIR);
	log_ident("smap/qmgr");
	log_info("%s: removed", id);
}

/* warn_delay - once, after delay_warning_time, tell the sender */
static void
warn_delay(const struct qctx *q, const struct envelope *e, int fd,
    struct state *st, long long now)
{
	char bid[SPOOL_ID_MAX + 1];

	if (q->cf->delay_warning_time == 0 || st->warned ||
	    now - e->arrival < q->cf->delay_warning_time ||
	    strcmp(e->sender, "<>") == 0)
		return;
	if (bounce_delay(q->cf, e, fd, st, bid, sizeof(bid)) < 0) {
		log_warn("%s: cannot create the delay notification: %s", e->id,
		    strerror(errno));
		return;
	}
	st->warned = 1;
	log_ident("smap/bounce");
	log_info("%s: sender delay notification: %s", e->id, bid);
}

/* return_failed - the DSN for recipients that failed since the last one;
 * sent at once, even while others are still being retried */
static void
return_failed(const struct qctx *q, const struct envelope *e, int fd,
    struct state *st)
{
	char bid[SPOOL_ID_MAX + 1];
	size_t i, n = 0;

	for (i = 0; i < st->n; i++)
		n += st->r[i].status == R_BOUNCE && !st->r[i].notified;
	if (n == 0 || strcmp(e->sender, "<>") == 0)
		return;
	if (bounce_create(q->cf, e, fd, st, bid, sizeof(bid)) < 0) {
		log_warn("%s: cannot create the non-delivery notification: %s",
		    e->id, strerror(errno));
		return;
	}
	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE)
			st->r[i].notified = 1;
	log_ident("smap/bounce");
	log_info("%s: sender non-delivery notification: %s", e->id, bid);
}

/* conclude - after an attempt: done, bounce, or wait for the next one */
static void
conclude(struct qctx *q, const struct envelope *e, int fd, struct state *st,
    long long now)
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
	/* Record the outcome first: a crash from here on never re-sends.
	 * When every recipient has been sent, removing the file (and
	 * fsyncing queue/) is that record, so no state file is written. */
	if ((pending > 0 || bounced > 0) && state_save(e->id, st) < 0)
		log_warn("%s: cannot save state: %s", e->id, strerror(errno));
	return_failed(q, e, fd, st);
	if (pending > 0) {
		warn_delay(q, e, fd, st, now);
		st->attempts++;
		st->next = now + backoff(q->cf, st->attempts);
		if (state_save(e->id, st) < 0)
			log_warn("%s: cannot save state: %s", e->id, strerror(errno));
		log_ident("smap/qmgr");
		log_info("%s: deferred after attempt %lld, next attempt in %llds",
		    e->id, st->attempts, st->next - now);
		q->deferred++;
		return;
	}
	if (bounced > 0 && strcmp(e->sender, "<>") == 0) {
		quarantine(QDIR, e->id, "undeliverable, and the sender is the null "
		    "sender (never bounced)");
		state_remove(e->id);
		return;
	}
	for (i = 0; i < st->n; i++)
		if (st->r[i].status == R_BOUNCE && !st->r[i].notified)
			return;	/* the DSN could not be made: keep it, try later */
	remove_message(e->id);
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

/* deliver_one - lock queue/id, check it again, try the due recipients */
static long long
deliver_one(struct qctx *q, const char *id, long long now)
{
	char path[512], why[256];
	struct envelope e;
	struct state st = { 0 };
	long long next = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", QDIR, id);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || !still_named(fd, path)) {
		close(fd);
		return 0;	/* another smapd has it, or had it */
	}
	if (spool_read_envelope(fd, &e, RCPT_LIMIT_MAX, why, sizeof(why)) < 0 ||
	    state_load(id, e.nrcpt, &st, why, sizeof(why)) < 0) {
		quarantine(QDIR, id, why);
	} else if (!q->flush && st.next > now) {
		next = st.next;
		q->deferred++;
	} else {
		deliver_pending(q, &e, fd, &st);
		conclude(q, &e, fd, &st, (long long)time(NULL));
		next = st.next;
	}
	state_free(&st);
	spool_free_envelope(&e);
	close(fd);
	return next;
}

/* by_name - qsort order of queue ids: oldest first */
static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list_queue - the ids in queue/, sorted, malloc'd */
static char **
list_queue(size_t *n)
{
	struct dirent *de;
	DIR *d = opendir(QDIR);
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL && *n < SCAN_MAX)
		if (id_ok(de->d_name))
			push(&v, n, &cap, de->d_name);
	closedir(d);
	if (*n > 0)
		qsort(v, *n, sizeof(*v), by_name);
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
		ids = list_queue(&n);
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
