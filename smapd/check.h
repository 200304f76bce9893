/*
 * check.h - smapd -t: every check smapd makes before it delivers, made
 * as smapd_user (see check.c).
 */
#ifndef SMAPD_CHECK_H
#define SMAPD_CHECK_H

#include "conf.h"
#include "startup.h"
#include "transport.h"

/* The configuration's warnings, the users, the spool (owners, modes, and
 * access as smapd_user), the transport's program, Maildir, socket or
 * next hop's name, and the TLS and SASL files: the number of problems,
 * each said through startup_say(). */
int check_smapd(struct startup *st, const struct conf *cf,
    const struct transport *t);

#endif
