/*
 * journal_event.h - the records smapd and smapq make, one call each at
 * the place where the event happens (journal_event.c; journal.h for
 * the journal itself). None of them fails its caller.
 */
#ifndef SMAPD_JOURNAL_EVENT_H
#define SMAPD_JOURNAL_EVENT_H

#include <stddef.h>
#include "journal.h"
#include "spool.h"
#include "transport.h"

/* Picked up into queue/ (durable with the journal_sync() made before
 * queue/ is fsync'd). */
void journal_accepted(const struct envelope *e);

/* Every recipient of an attempt: delivered, deferred or bounced, with
 * the relay and its reply; durable on return (before the state file
 * records the outcome). smtp: the transport is SMTP or LMTP (tls=yes or
 * no; else tls=-). */
void journal_attempt(const struct delivery *d, int smtp);

/* Recipient i expired; durable on return. */
void journal_expired(const struct envelope *e, size_t i,
    const struct rcpt_result *r);

/* name moved to quarantine/as; durable on return. */
void journal_quarantined(const char *name, const char *as, const char *why);

/* smapq: held, released or deleted; durable on return, and the head
 * logged after it. */
void journal_admin(enum jevent ev, const char *id);

/* smapd held id itself (the progress of its delivery could not be
 * saved): "held by=smapd reason="; durable on return. */
void journal_held(const char *id, const char *why);

#endif
