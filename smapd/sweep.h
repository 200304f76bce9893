/*
 * sweep.h - what smapd removes on its own, once per full queue run.
 */
#ifndef SMAPD_SWEEP_H
#define SMAPD_SWEEP_H

#include "qmgr.h"

/* Remove what a killed smap or smapd left: tmp/ files and smapd's own
 * temporary files a day old, the state of messages no longer queued or
 * held; and quarantine/ entries past quarantine_lifetime. */
void sweep(struct qctx *q);

#endif
