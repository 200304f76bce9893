/*
 * anvil.h - per-client limits that hold across smap sessions (Postfix's
 * smtpd_client_*_limit and anvil_rate_time_unit); see anvil.c.
 */
#ifndef SMAP_ANVIL_H
#define SMAP_ANVIL_H

#include "conf.h"
#include "peer.h"

#define ANVIL_WAIT_MS	200	/* tries for the table's lock, 1 ms apart */

enum anvil_event { ANVIL_CONN, ANVIL_MAIL, ANVIL_RCPT };

/* Count one event of the client: NULL within its limits (or exempt, or
 * no usable table: warned), else its reply (421 4.7.0 for a connection,
 * 450 4.7.1 for MAIL and RCPT), Postfix's warning logged. A connection
 * let in counts as live until the process ends. */
const char *anvil_event(const struct conf *cf, const struct peer *p,
    enum anvil_event ev);

#endif
