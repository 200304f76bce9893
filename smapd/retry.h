/*
 * retry.h - what an attempt decides for its message: the next retry,
 * expiry, the DSNs owed, its removal.
 */
#ifndef SMAPD_RETRY_H
#define SMAPD_RETRY_H

#include "qmgr.h"
#include "spool.h"
#include "state.h"

/* After an attempt on e (open as fd): record st (into *rfd, the state
 * file reserved before the attempt), then the DSNs it owes, then remove
 * the message when nothing is pending, or schedule its next attempt. */
void conclude(struct qctx *q, const struct envelope *e, int fd,
    struct state *st, long long now, int *rfd);

#endif
