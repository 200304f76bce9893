/*
 * queue.h - smapd's queue: picking up what smap committed, delivering
 * what is due, retrying, bouncing, quarantining.
 *
 * The directories are layout.h's; a running smapd watches new/ for what
 * smap commits and queue/ for queue/.flush (smapq flush: try every
 * message now) and queue/.run (smapq release: a full run now).
 */
#ifndef SMAPD_QUEUE_H
#define SMAPD_QUEUE_H

#include <signal.h>
#include <sys/types.h>
#include "bounds.h"
#include "conf.h"
#include "layout_queue.h"
#include "transport.h"

#define MADE_MAX 8	/* DSNs one delivery can queue (failure, delay) */

struct qctx {
	const struct conf *cf;
	struct transport t;
	struct spooldirs dirs;	/* opened once, below spool_directory */
	uid_t spool_uid;	/* mail_owner: who writes new/ */
	int flush;		/* deliver everything now, ignoring backoff */
	volatile sig_atomic_t *stop;
	long long active, deferred;	/* counts after the last run */
	int down;		/* the backend could not be reached in this run */
	char made[MADE_MAX][SPOOL_ID_MAX + 1];	/* DSNs queued, to try now */
	size_t nmade;
	char down_text[512];	/* why: the rest of the run defers with it */
};

/* Check every file in new/ and move it to queue/ or quarantine/; then
 * deliver what was just picked up or, when full, every message in
 * queue/ that is due. Returns the seconds until the next one is due (at
 * most queue_run_delay). */
long long queue_run(struct qctx *q, int full);

#endif
