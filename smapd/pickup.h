/*
 * pickup.h - what smap committed to new/, checked and copied into
 * smapd's queue/ (or quarantined).
 */
#ifndef SMAPD_PICKUP_H
#define SMAPD_PICKUP_H

#include "qmgr.h"

/* The names in new/ (*n of them, malloc'd), or NULL when new/ cannot
 * be read (said in the log). */
char **pickup_scan(const struct qctx *q, size_t *n);

/* names[first], names[first + step], ... (one process's share of a
 * scan): each copied to queue/ (durably: queue/ is fsync'd before the
 * originals go, new/ before the copies' locks do) or moved to
 * quarantine/. The ids queued (*n of them, malloc'd copies), or NULL. */
char **pickup(struct qctx *q, char *const *names, size_t all, size_t first,
    size_t step, size_t *n);

#endif
