/*
 * hop.h - one attempt's recipients by next hop: grouped, each group
 * handed to its next hop (and, when that fails as a whole, to the
 * fallback relays), next hops found down in this run not tried again.
 */
#ifndef SMAPD_HOP_H
#define SMAPD_HOP_H

#include "qmgr.h"

/* Bring to the front of idx[0..n) (keeping their order) the recipients
 * of e whose next hop is idx[0]'s, and return how many; *t is that next
 * hop. When idx[0]'s next hop cannot be told (route_of failed) returns
 * 1 with *t untouched and the reason in why (why[0] is NUL otherwise). */
size_t hop_group(const struct routes *r, const struct envelope *e,
    size_t *idx, size_t n, struct transport *t, char *why, size_t len);

/* Deliver d, whose recipients all go to t: to t, unless it is down in
 * this run, then (SMTP and LMTP only) to each next hop of
 * smtp_fallback_relay in turn while the one before failed as a whole
 * (d->hopfail). d->ident and d->relay end up naming the transport and
 * the next hop that decided. */
void hop_deliver(struct qctx *q, const struct transport *t,
    struct delivery *d);

#endif
