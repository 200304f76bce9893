/*
 * smtpd.h - serve one SMTP session, from the greeting to the end.
 */
#ifndef SMAP_SMTPD_H
#define SMAP_SMTPD_H

#include "session.h"

/* Run one session on fds rfd/wfd, offering TLS when tls is not NULL;
 * returns when it is over. */
void session_run(struct session *s, const struct conf *cf,
    const struct tls_server *tls, int rfd, int wfd);

#endif
