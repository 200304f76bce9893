/*
 * qmgr.h - smapd's queue manager: what one run carries (struct qctx)
 * and what its parts share.
 *
 * The parts call one way: queue.c (the run) -> pickup.c (new/ to
 * queue/) and deliver.c (one message, one attempt) -> retry.c (what the
 * attempt decides) -> qmgr.c (fsync and quarantine, said in the log);
 * qmgr.c and journal.c make a run's flushes in turn through
 * groupsync.c, which queue.c sets up around the run's workers.
 * The queue manager's own lines are logged under the ident main.c
 * opened the log with (smap/qmgr); a transport's under its agent's
 * (agent.h), a notification's under smap/bounce.
 */
#ifndef SMAPD_QMGR_H
#define SMAPD_QMGR_H

#include <signal.h>
#include <sys/types.h>
#include "bounds.h"
#include "conf.h"
#include "layout_queue.h"
#include "route.h"
#include "transport.h"

#define MADE_MAX 8	/* DSNs one delivery can queue (failure, delay) */

/* A next hop nobody answered at in this run: the rest of the run
 * defers its recipients with the same reason, without a new attempt. */
#define DOWN_MAX 16
struct down {
	struct transport t;
	char text[512];
};

struct qctx {
	const struct conf *cf;
	struct routes routes;	/* default_transport, transport_maps, ... */
	struct spooldirs dirs;	/* opened once, below spool_directory */
	uid_t spool_uid;	/* mail_owner: who writes new/ */
	int flush;		/* deliver everything now, ignoring backoff */
	int new_unsynced;	/* new/'s fsync failed: deliver nothing until
				 * one succeeds */
	volatile sig_atomic_t *stop;
	long long active, deferred;	/* counts after the last run */
	struct down down[DOWN_MAX];	/* next hops down in this run */
	size_t ndown;
	char made[MADE_MAX][SPOOL_ID_MAX + 1];	/* DSNs queued, to try now */
	size_t nmade;
};

/* fsync one of the spool directories, saying so in the log if it fails
 * (-1). */
int sync_dir(const struct qctx *q, enum ldir w);

/* The fsync of queue/ after a delivered message's removal, which a
 * worker of a run leaves to the run's next flush (groupsync.h). */
void sync_removal(const struct qctx *q);

/* Until a flush covers the removals this process left (groupsync.h),
 * saying so if one fails. */
void settle_removals(void);

/* Move w/name to quarantine/ with why beside it, and say so in the log
 * (name escaped: it may be anything): 0 when it is moved with its
 * reason, 1 when moved without it, -1 when not moved. */
int quarantine(const struct qctx *q, enum ldir w, const char *name,
    const char *why);

#endif
