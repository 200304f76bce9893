/*
 * deliver.h - one message in queue/: locked, checked again, and its
 * pending recipients handed to the transport when it is due.
 */
#ifndef SMAPD_DELIVER_H
#define SMAPD_DELIVER_H

#include "qmgr.h"

/* Deliver queue/id if it is due at now (or q->flush); returns when it
 * is due next (0: gone, quarantined, or another smapd has it). */
long long deliver_one(struct qctx *q, const char *id, long long now);

#endif
