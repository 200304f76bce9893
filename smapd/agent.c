/*
 * agent.c - the table of transports (see agent.h): the one place that
 * says which functions deliver for default_transport's kind, and under
 * which log identity.
 *
 * Trusts transport_parse() to have set a kind the table has.
 */
#include "agent.h"

static const struct agent agents[] = {
	[T_SMTP] = { "smtp", "smap/smtp", deliver_smtp, smtp_close_cached },
	[T_LMTP] = { "lmtp", "smap/lmtp", deliver_smtp, smtp_close_cached },
	[T_SENDMAIL] = { "sendmail", "smap/pipe", deliver_sendmail, NULL },
	[T_MAILDIR] = { "maildir", "smap/local", deliver_maildir, NULL },
};

/* agent_for - the row of t's kind */
const struct agent *
agent_for(const struct transport *t)
{
	return &agents[t->kind];
}
