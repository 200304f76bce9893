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

/* agent_close_all - each transport's close, once */
void
agent_close_all(void)
{
	size_t i;

	for (i = 0; i < sizeof(agents) / sizeof(agents[0]); i++)
		if (agents[i].close != NULL && (i == 0 ||
		    agents[i].close != agents[i - 1].close))
			agents[i].close();
}
