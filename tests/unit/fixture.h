/*
 * fixture.h - what the C tests of smapd's transports share: running one
 * transport on a spool file and checking the verdicts it gave.
 */
#ifndef SMAP_FIXTURE_H
#define SMAP_FIXTURE_H

#include <stddef.h>
#include "conf.h"
#include "../../smapd/transport.h"

/* Run the transport named by spec ("sendmail", "maildir:/x/") for the
 * recipients idx[0..n) of the message (env, fd); the results go to res
 * (set to garbage first, so nothing is left R_PENDING by accident) and
 * d->relay to relay[len]. */
void fx_deliver(const char *spec, const struct conf *cf,
    const struct envelope *env, int fd, const size_t *idx, size_t n,
    struct rcpt_result *res, char *relay, size_t len);

/* Commit a spool file (three recipients: <c@d.example>, <e@f.example>,
 * <postmaster>; client 192.0.2.1) with sender and body in the current
 * spool directory, open it and read its envelope back into *env. */
int fx_spool_file(const char *sender, const char *body, size_t len,
    struct envelope *env);

/* One TAP line: does r carry this status, code and (when text) text? */
int fx_check(const struct rcpt_result *r, enum rstatus st, const char *dsn,
    const char *text, const char *name);

#endif
