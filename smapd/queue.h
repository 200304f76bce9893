/*
 * queue.h - smapd's queue: picking up what smap committed, delivering
 * what is due, retrying, bouncing, quarantining.
 *
 * Directories below spool_directory (smapd's working directory):
 *   new/         committed by smap; picked up, checked, moved to queue/
 *   queue/       messages waiting for delivery (locked with flock while
 *                one smapd delivers them)
 *   state/       per-message delivery progress (state.h)
 *   quarantine/  files refused as hostile or undeliverable, with ID.why
 *   hold/        messages put on hold by smapq; not delivered until released
 * Writing queue/.flush (smapq flush) makes a running smapd try every
 * message at once; queue/.run (smapq release) makes it look at the whole
 * queue now.
 */
#ifndef SMAPD_QUEUE_H
#define SMAPD_QUEUE_H

#include <signal.h>
#include <sys/types.h>
#include "conf.h"
#include "transport.h"

#define QUEUE_DIR "queue"
#define HOLD_DIR "hold"
#define FLUSH_FILE ".flush"	/* smapq flush: try everything now */
#define RUN_FILE ".run"		/* smapq release: a full run, as scheduled */

struct qctx {
	const struct conf *cf;
	struct transport t;
	uid_t spool_uid;	/* mail_owner: who writes new/ */
	uid_t self_uid;		/* smapd's own uid (bounces it writes) */
	int flush;		/* deliver everything now, ignoring backoff */
	volatile sig_atomic_t *stop;
	long long active, deferred;	/* counts after the last run */
	int down;		/* the backend could not be reached in this run */
	char down_text[512];	/* why: the rest of the run defers with it */
};

/* Create queue/, state/ and quarantine/ owned by uid:gid (as root). */
int queue_prepare(const struct conf *cf, uid_t uid, gid_t gid, char *why,
    size_t len);

/* Check every file in new/ and move it to queue/ or quarantine/; then
 * deliver what was just picked up or, when full, every message in
 * queue/ that is due. Returns the seconds until the next one is due (at
 * most queue_run_delay). */
long long queue_run(struct qctx *q, int full);

/* Remove files left in tmp/ for more than a day by a killed smap. */
void queue_clean_tmp(struct qctx *q);

#endif
