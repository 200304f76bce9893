/*
 * qmgr.c - what every part of the queue manager does to the spool (see
 * qmgr.h): fsync a directory, quarantine a file, each said in the log.
 *
 * Every path is relative to the directories layout_queue.c opened, never
 * through a link; a name may be anything, and is escaped for the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "groupsync.h"
#include "journal_event.h"
#include "log.h"
#include "qmgr.h"

/* sync_dir - fsync one of the spool directories, saying so if it fails
 * (-1); queue/ in turn with the run's other processes (groupsync.h) */
int
sync_dir(const struct qctx *q, enum ldir w)
{
	if ((w == L_QUEUE ? groupsync(GS_QUEUE, q->dirs.fd[w]) :
	    layout_sync(q->dirs.fd[w])) == 0)
		return 0;
	log_warn("fsync %s: %s", layout_name(w), strerror(errno));
	return -1;
}

/* sync_removal - queue/'s fsync after a delivered message's removal:
 * in a worker, left to the run's next flush (groupsync_later) */
void
sync_removal(const struct qctx *q)
{
	if (groupsync_later(GS_QUEUE, q->dirs.fd[L_QUEUE]) < 0)
		log_warn("fsync %s: %s", layout_name(L_QUEUE), strerror(errno));
}

/* settle_removals - see qmgr.h */
void
settle_removals(void)
{
	if (groupsync_settle() < 0)
		log_warn("fsync %s: %s", layout_name(L_QUEUE), strerror(errno));
}

/* quarantine - move w/name aside, the reason beside it and in the log:
 * layout_quarantine()'s answer (0: moved with its reason) */
int
quarantine(const struct qctx *q, enum ldir w, const char *name,
    const char *why)
{
	char esc[300], to[80];
	int rc = layout_quarantine(&q->dirs, w, name, why, to, sizeof(to));

	log_esc(esc, sizeof(esc), name, strlen(name));
	if (rc < 0) {
		log_warn("cannot quarantine %s/%s: %s", layout_name(w), esc,
		    strerror(errno));
		return rc;
	}
	journal_quarantined(name, to, why);
	if (rc > 0)
		log_warn("quarantine/%s.why: cannot write the reason: %s", to,
		    strerror(errno));
	if (strcmp(to, name) == 0)
		log_warn("%s: quarantined: %s", esc, why);
	else
		log_warn("%s: quarantined: %s (as quarantine/%s)", esc, why, to);
	return rc;
}
