/*
 * pickup.h - what smap committed to new/, checked and copied into
 * smapd's queue/ (or quarantined).
 */
#ifndef SMAPD_PICKUP_H
#define SMAPD_PICKUP_H

#include "qmgr.h"

/* A pickup under way: new/'s names as scanned, the first k of them
 * the ids queued so far, i the next to look at. */
struct pickup {
	char **names;
	size_t all, i, k;
};

/* Every file in new/, a batch at a time: copied to queue/ (durably:
 * queue/ is fsync'd before the originals go, and new/ after they went)
 * or moved to quarantine/. pickup_begin scans new/ (-1 when it cannot
 * be read: nothing to pick up). pickup_next picks up the next batch:
 * *batch and *m the ids it queued (owned by pk; each copy's lock is
 * released, so it may be delivered at once); 0 when new/ has been gone
 * through. pickup_end: every id queued (*n of them, malloc'd, the
 * caller's to free), or NULL. */
int pickup_begin(struct qctx *q, struct pickup *pk);
int pickup_next(struct qctx *q, struct pickup *pk, char ***batch, size_t *m);
char **pickup_end(struct pickup *pk, size_t *n);

#endif
