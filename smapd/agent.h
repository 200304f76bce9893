/*
 * agent.h - the transports as the queue manager sees them: one row per
 * transport (smtp, lmtp, sendmail, maildir) with its name, the identity
 * its log lines carry, and how it delivers and closes.
 *
 * The rows name functions of transport.h; a transport keeps its own
 * state (the SMTP connection cache) and the queue manager only asks it
 * to deliver one message and, at the end of a run, to close.
 */
#ifndef SMAPD_AGENT_H
#define SMAPD_AGENT_H

#include "conf.h"
#include "transport.h"

struct agent {
	const char *name;	/* default_transport's word for it */
	const char *ident;	/* its log identity, as Postfix names the
				 * delivery agent: "smap/smtp" */
	void (*deliver)(const struct transport *t, const struct conf *cf,
	    struct delivery *d);	/* see transport.h */
	void (*close)(void);	/* end what it keeps between messages;
				 * NULL: it keeps nothing */
};

/* The row for t's kind. */
const struct agent *agent_for(const struct transport *t);

#endif
