/*
 * smtpd.h - serve one SMTP session, from the greeting to the end.
 */
#ifndef SMAP_SMTPD_H
#define SMAP_SMTPD_H

#include "session.h"

/* Run one session on fds rfd/wfd with what was opened before the jail
 * (TLS when o->tls is not NULL); returns when it is over. */
void session_run(struct session *s, const struct conf *cf,
    const struct opened *o, int rfd, int wfd);

#endif
