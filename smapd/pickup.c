/*
 * pickup.c - new/ into queue/ (see pickup.h).
 *
 * Every file in new/ is hostile: it is opened with O_NOFOLLOW and
 * O_NONBLOCK, must be a regular file with one link owned by mail_owner,
 * must parse with spool_read_envelope(), must carry its own name as its
 * id, and must pass the relay policy again (relay.h): smap may have
 * been made to write anything. Anything else is moved to quarantine/
 * with the reason beside it. Two smapd processes may run at once: a
 * file is claimed with flock (checked to still name it) and copied
 * into a file of smapd's own; one of them only queues it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "addr.h"
#include "journal_event.h"
#include "log.h"
#include "pickup.h"
#include "relay.h"
#include "spool.h"
#include "tls.h"

#define PICK_MAX 128		/* files copied in before queue/ is fsync'd */

/* A file being picked up: the original in new/ (open, claimed with
 * flock), smapd's copy in queue/ (checked, not yet fsync'd or named),
 * once named its delivery lock (held until the original's removal is
 * durable), and its envelope. */
struct picked {
	int fd, copy, lock;
	struct stat st;
	struct envelope e;
};

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

	p->fd = p->copy = p->lock = -1;
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

/* pick_one - new/name copied to queue/name.tmp and checked (1: p holds
 * the original, the copy and its envelope, for queue_batch), or moved
 * to quarantine/, or left (0) */
static int
pick_one(struct qctx *q, const char *name, struct picked *p)
{
	int dir = 0;
	const char *bad;

	memset(&p->e, 0, sizeof(p->e));
	if ((bad = check_new(q, name, &p->e, &dir, p)) == NULL)
		return 1;
	if (*bad != '\0')
		refuse(q, name, bad, dir);
	return 0;
}

/* publish_one - the checked copy of p (durable: write_copies) named
 * queue/name; 1 when queued, else 0 (the original closed, left or
 * quarantined) */
static int
publish_one(struct qctx *q, const char *name, struct picked *p)
{
	int rc = -1;

	/* Under its delivery lock from before it has its name: another
	 * smapd (or smapq) must not deliver, hold or remove the copy while a
	 * crash could still bring the original back in new/. */
	if (flock(p->copy, LOCK_EX | LOCK_NB) < 0 ||
	    (p->lock = fcntl(p->copy, F_DUPFD_CLOEXEC, 0)) < 0) {
		int err = errno;

		layout_discard(&q->dirs, L_QUEUE, p->copy, name);
		errno = err;
	} else if ((rc = layout_publish(&q->dirs, L_QUEUE, p->copy, name,
	    PUB_NOSYNC)) < 0) {
		close(p->lock);
		p->lock = -1;
	}
	if (rc < 0) {
		if (errno == EEXIST)
			quarantine(q, L_NEW, name, "duplicate queue id");
		else
			log_warn("%s: cannot queue: %s", name, strerror(errno));
		close(p->fd);
	} else {
		log_info("%s: from=%s, size=%lld, nrcpt=%zu (queue active)", name,
		    p->e.sender, p->e.size, p->e.nrcpt);
		journal_accepted(&p->e);
	}
	spool_free_envelope(&p->e);
	return rc == 0;
}

/* unlink_picked - the originals of what was copied in, now that queue/
 * is durable; only if the name is still the file that was copied; their
 * claims end. Once new/ is durable too, the copies' locks go. -1 when
 * new/ could not be fsync'd: the copies may not be delivered yet (a
 * crash could bring an original back beside a copy already gone). */
static int
unlink_picked(struct qctx *q, char **v, struct picked *p, size_t n)
{
	struct stat now;
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		if (fstatat(q->dirs.fd[L_NEW], v[i], &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == p[i].st.st_dev && now.st_ino == p[i].st.st_ino)
			(void)unlinkat(q->dirs.fd[L_NEW], v[i], 0);
		close(p[i].fd);
	}
	if (n > 0 && (rc = sync_dir(q, L_NEW)) < 0)
		q->new_unsynced = 1;
	for (i = 0; i < n; i++)
		close(p[i].lock);
	return rc;
}

/* unqueue - queue/ could not be made durable, so neither may the
 * originals' removal be: each copy is removed again (still under its
 * lock, so no process has delivered it) and its original left in new/
 * for a later run. A copy that cannot be removed has its original moved
 * to quarantine/ (one copy to deliver, the other for the admin to look
 * at; were a crash to bring the original back in new/, it is
 * quarantined as a duplicate queue id). None is delivered in this run:
 * 0, what is queued of the batch. */
static size_t
unqueue(struct qctx *q, char **v, struct picked *p, size_t n)
{
	char why[160];
	size_t i;

	for (i = 0; i < n; i++) {
		if (unlinkat(q->dirs.fd[L_QUEUE], v[i], 0) == 0 || errno == ENOENT) {
			log_warn("%s: %s is not durable: left in %s for a later run",
			    v[i], layout_name(L_QUEUE), layout_name(L_NEW));
		} else {
			snprintf(why, sizeof(why), "%s is not durable and the copy "
			    "there cannot be removed (%s): it is delivered from "
			    "there", layout_name(L_QUEUE), strerror(errno));
			quarantine(q, L_NEW, v[i], why);
		}
		close(p[i].fd);
		close(p[i].lock);
		free(v[i]);
	}
	(void)sync_dir(q, L_QUEUE);
	return 0;
}

/* write_copies - the n checked copies durable under their .tmp names,
 * with one flush of the disk for all (layout_sync_files) rather than a
 * fsync, and so a flush, each. A copy that could not be made durable
 * is removed and its original left for a later run. v and p are
 * compacted to the rest; its count. */
static size_t
write_copies(struct qctx *q, char **v, struct picked *p, size_t n)
{
	int fd[PICK_MAX] = { 0 }, err[PICK_MAX];
	size_t i, m = 0;

	for (i = 0; i < n; i++)
		fd[i] = p[i].copy;
	if (layout_sync_files(q->dirs.fd[L_QUEUE], fd, err, n) < 0)
		log_warn("syncfs %s: %s: each copy fsync'd instead",
		    layout_name(L_QUEUE), strerror(errno));
	for (i = 0; i < n; i++) {
		if (err[i] == 0) {
			v[m] = v[i];
			p[m++] = p[i];
			continue;
		}
		log_warn("%s: cannot write the copy in %s, left for later: %s",
		    v[i], layout_name(L_QUEUE), strerror(err[i]));
		layout_discard(&q->dirs, L_QUEUE, p[i].copy, v[i]);
		spool_free_envelope(&p[i].e);
		close(p[i].fd);
		free(v[i]);
	}
	return m;
}

/* queue_batch - n checked copies queued: made durable together
 * (write_copies), then each named, the journal's records and queue/
 * made durable, and only then the originals removed. v and p are
 * compacted to what was queued; its count. */
static size_t
queue_batch(struct qctx *q, char **v, struct picked *p, size_t n)
{
	size_t i, m = 0;

	n = write_copies(q, v, p, n);
	for (i = 0; i < n; i++) {
		if (!publish_one(q, v[i], &p[i])) {
			free(v[i]);
			continue;
		}
		v[m] = v[i];
		p[m++] = p[i];
	}
	journal_sync();		/* the records before the moves */
	if (sync_dir(q, L_QUEUE) < 0)	/* durable in queue/, then */
		return unqueue(q, v, p, m);
	if (unlink_picked(q, v, p, m) < 0) {	/* gone */
		for (i = 0; i < m; i++) {
			log_warn("%s: %s is not durable: not delivered until it "
			    "is", v[i], layout_name(L_NEW));
			free(v[i]);
		}
		return 0;
	}
	return m;
}

/* pickup_begin - see pickup.h */
int
pickup_begin(struct qctx *q, struct pickup *pk)
{
	pk->i = pk->k = 0;
	if (layout_scan(&q->dirs, L_NEW, SCAN_MAX, layout_any_name, &pk->names,
	    &pk->all) < 0) {
		log_warn("open %s: %s", layout_name(L_NEW), strerror(errno));
		pk->names = NULL;
		pk->all = 0;
		return -1;
	}
	return 0;
}

/* pickup_next - see pickup.h. The names are compacted in place: the
 * first k are the ids queued so far, i the next name to look at. */
int
pickup_next(struct qctx *q, struct pickup *pk, char ***batch, size_t *m)
{
	static struct picked p[PICK_MAX];
	size_t done = pk->k;
	char *name;

	*m = 0;
	if (pk->i >= pk->all)
		return 0;
	while (pk->i < pk->all && pk->k - done < PICK_MAX) {
		name = pk->names[pk->i++];
		if (!*q->stop && pick_one(q, name, &p[pk->k - done]))
			pk->names[pk->k++] = name;
		else
			free(name);
	}
	if (pk->k > done)
		pk->k = done + queue_batch(q, pk->names + done, p, pk->k - done);
	*batch = pk->names + done;
	*m = pk->k - done;
	return 1;
}

/* pickup_end - see pickup.h */
char **
pickup_end(struct pickup *pk, size_t *n)
{
	*n = pk->k;
	return pk->names;
}
