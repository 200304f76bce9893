/*
 * check.h - smapd -t: every check smapd makes before it delivers, made
 * as smapd_user (see check.c).
 */
#ifndef SMAPD_CHECK_H
#define SMAPD_CHECK_H

#include "conf.h"
#include "startup.h"
#include "route.h"

/* The configuration's warnings, the users, the spool (owners, modes, and
 * access as smapd_user), default_transport's and each fallback relay's
 * program, Maildir, socket or next hop's name, every entry of
 * transport_maps (each one that does not parse is a problem, and so is
 * a table smapd_user cannot read: a reload reopens it), and the TLS and
 * SASL files: the number of problems, each said through startup_say(). */
int check_smapd(struct startup *st, const struct conf *cf,
    const struct routes *r);

#endif
