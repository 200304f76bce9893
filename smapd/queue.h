/*
 * queue.h - smapd's queue run: picking up what smap committed,
 * delivering what is due, retrying, bouncing, quarantining (the parts
 * are drawn in qmgr.h).
 *
 * The directories are layout.h's; a running smapd watches new/ for what
 * smap commits and queue/ for queue/.flush (smapq flush: try every
 * message now) and queue/.run (smapq release: a full run now).
 */
#ifndef SMAPD_QUEUE_H
#define SMAPD_QUEUE_H

#include "qmgr.h"

/* Check every file in new/ and move it to queue/ or quarantine/; then
 * deliver what was just picked up or, when full, every message in
 * queue/ that is due. Returns the seconds until the next one is due (at
 * most queue_run_delay). */
long long queue_run(struct qctx *q, int full);

#endif
