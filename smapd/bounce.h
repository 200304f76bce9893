/*
 * bounce.h - the non-delivery notification (RFC 3464) to the sender.
 */
#ifndef SMAPD_BOUNCE_H
#define SMAPD_BOUNCE_H

#include <stddef.h>
#include "conf.h"
#include "layout_queue.h"
#include "spool.h"
#include "state.h"

/*
 * Write a DSN for the bounced recipients of e (st) as a new spool file
 * straight into queue/ (null sender, to e->sender), written and
 * committed there as smapd's own file (layout_queue.h), with the
 * original message's headers attached. Never called for a null-sender
 * message. Returns 0 with the new id, or -1 (errno).
 */
int bounce_create(const struct spooldirs *d, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, char *id,
    size_t idlen);

/* The same for a delay warning: the recipients still pending, with
 * Action: delayed (delay_warning_time). */
int bounce_delay(const struct spooldirs *d, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, char *id,
    size_t idlen);

#endif
