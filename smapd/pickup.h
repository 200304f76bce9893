/*
 * pickup.h - what smap committed to new/, checked and copied into
 * smapd's queue/ (or quarantined).
 */
#ifndef SMAPD_PICKUP_H
#define SMAPD_PICKUP_H

#include "qmgr.h"

/* Every file in new/: copied to queue/ (durably: queue/ is fsync'd
 * before the originals go) or moved to quarantine/. The ids queued
 * (*n of them, malloc'd), or NULL when new/ cannot be read. */
char **pickup(struct qctx *q, size_t *n);

#endif
