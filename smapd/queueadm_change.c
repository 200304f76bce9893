/*
 * queueadm_change.c - what smapq changes in the spool (see queueadm.h,
 * smapq(8)): hold, release, delete, flush.
 *
 * Runs as smapd_user in spool_directory; ids have passed qid_ok(). A
 * message is moved or removed only under the flock smapd takes to
 * deliver it (LOCK_EX|LOCK_NB, layout_lock()), checked to still name the
 * file, so smapq never changes a message smapd is delivering; a move
 * never replaces a file. A state file is read with state_load()'s
 * bounds before its next attempt is set to now. Each change is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "layout_queue.h"
#include "log.h"
#include "queueadm.h"
#include "spool.h"
#include "state.h"

/* why_name - "ID.why" into buf[64] */
static const char *
why_name(char *buf, const char *id)
{
	snprintf(buf, 64, "%.*s.why", SPOOL_ID_MAX, id);
	return buf;
}

/* move_msg - w1/id to w2/id, never over a file */
static int
move_msg(const struct qadm *a, enum ldir from, enum ldir to, const char *id)
{
	if (layout_rename(&a->dirs, from, to, id) < 0) {
		fprintf(a->err, "smapq: %s: move from %s/ to %s/: %s\n", id,
		    layout_name(from), layout_name(to), strerror(errno));
		return 1;
	}
	return 0;
}

/* qadm_hold - queue/id to hold/id; a message already held is fine */
int
qadm_hold(const struct qadm *a, const char *id)
{
	int fd = layout_lock(&a->dirs, L_QUEUE, id), err = errno, rc;

	if (fd < 0) {
		if (err == ENOENT && qadm_exists(a, L_HOLD, id))
			return 0;
		return qadm_fail(a, id, err);
	}
	if ((rc = move_msg(a, L_QUEUE, L_HOLD, id)) == 0)
		log_info("%s: placed on hold (by smapq)", id);
	close(fd);
	return rc;
}

/* due_now - set next = 0 in state/id of a locked message, if it has one */
static int
due_now(const struct qadm *a, int fd, const char *id)
{
	struct envelope e;
	struct state st;
	char why[256];
	int rc = 0;

	if (!qadm_state_exists(a, id))
		return 0;
	if (spool_read_envelope(fd, &e, RCPT_LIMIT_MAX, why, sizeof(why)) < 0) {
		fprintf(a->err, "smapq: %s: %s\n", id, why);
		return 1;
	}
	if (state_load(&a->dirs, id, e.nrcpt, &st, why, sizeof(why)) < 0) {
		fprintf(a->err, "smapq: %s\n", why);
		rc = 1;
	} else if (st.next != 0) {
		st.next = 0;
		if (state_save(&a->dirs, id, &st, NULL) < 0) {
			fprintf(a->err, "smapq: %s: cannot save its state: %s\n",
			    id, strerror(errno));
			rc = 1;
		}
	}
	state_free(&st);
	spool_free_envelope(&e);
	return rc;
}

/* wake - create queue/name, which a running smapd watches */
static int
wake(const struct qadm *a, const char *name)
{
	int fd;

	fd = openat(a->dirs.fd[L_QUEUE], name, O_WRONLY | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		fprintf(a->err, "smapq: %s/%s: %s\n", layout_name(L_QUEUE), name,
		    strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

/* qadm_release - hold/id back to queue/id, due now */
int
qadm_release(const struct qadm *a, const char *id)
{
	char path[64];
	int fd = layout_lock(&a->dirs, L_HOLD, id), err = errno, rc;

	if (fd < 0) {
		if (err == ENOENT && qadm_exists(a, L_QUEUE, id))
			return 0;	/* not on hold */
		return qadm_fail(a, id, err);
	}
	rc = due_now(a, fd, id);
	if (move_msg(a, L_HOLD, L_QUEUE, id) != 0)
		rc = 1;
	else {
		(void)unlinkat(a->dirs.fd[L_HOLD], why_name(path, id), 0);
		log_info("%s: released from hold (by smapq)", id);
	}
	close(fd);
	return rc | wake(a, RUN_FILE);
}

/* qadm_delete - remove queue/id or hold/id, and its state */
int
qadm_delete(const struct qadm *a, const char *id)
{
	enum ldir w = L_QUEUE;
	char path[64];
	int fd = layout_lock(&a->dirs, w, id), err = errno;

	if (fd < 0 && err == ENOENT) {
		w = L_HOLD;
		fd = layout_lock(&a->dirs, w, id);
		err = errno;
	}
	if (fd < 0)
		return qadm_fail(a, id, err);
	if (unlinkat(a->dirs.fd[w], id, 0) < 0) {
		err = errno;
		close(fd);
		return qadm_fail(a, id, err);
	}
	state_remove(&a->dirs, id);
	if (w == L_HOLD)
		(void)unlinkat(a->dirs.fd[L_HOLD], why_name(path, id), 0);
	(void)layout_sync(a->dirs.fd[w]);
	(void)layout_sync(a->dirs.fd[L_STATE]);
	close(fd);
	log_info("%s: removed (deleted by smapq)", id);
	return 0;
}

/* flush_dir - every message of a directory due now; busy ones are
 * being tried already */
static int
flush_dir(const struct qadm *a, enum ldir w)
{
	size_t i, n;
	char **ids;
	int fd, rc = 0;

	if (layout_list(&a->dirs, w, SCAN_MAX, &ids, &n) < 0)
		return qadm_unreadable(a, layout_name(w));
	for (i = 0; i < n; i++) {
		if ((fd = layout_lock(&a->dirs, w, ids[i])) < 0)
			continue;
		if (due_now(a, fd, ids[i]) != 0)
			rc = 1;
		close(fd);
	}
	layout_free_list(ids, n);
	return rc;
}

/* qadm_flush - everything due now, then wake smapd with queue/.flush */
int
qadm_flush(const struct qadm *a)
{
	int rc = flush_dir(a, L_QUEUE) | flush_dir(a, L_HOLD);

	return wake(a, FLUSH_FILE) | rc;
}
