/*
 * session.c - what every command of a session shares (see session.h):
 * its replies, its log lines, the end of a transaction, the rule after
 * a refused DATA, and the TLS handshake.
 *
 * Trusts the configuration; every byte from the client is hostile and
 * is logged only escaped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"

/* session_reply - format, queue, remember; 4xx/5xx count as errors */
void
session_reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reply, sizeof(s->reply), fmt, ap);
	va_end(ap);
	io_reply(&s->io, s->reply);
	if (s->reply[0] == '4' || s->reply[0] == '5')
		s->errors++;
}

/* session_close - a last reply, a log line, and the end */
void
session_close(struct session *s, const char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reply, sizeof(s->reply), fmt, ap);
	va_end(ap);
	io_reply(&s->io, s->reply);	/* an error, but the end: not counted */
	(void)io_flush(&s->io);
	log_info("%s after %s from unknown[%s]", why, s->verb, s->peer.addr);
	s->quit = 1;
}

/* session_limited - 1 after the reply when the client is past a limit */
int
session_limited(struct session *s, enum anvil_event ev)
{
	const char *reply = anvil_event(s->cf, &s->peer, ev);

	if (reply != NULL)
		session_reply(s, "%s", reply);
	return reply != NULL;
}

/* session_reject_log - "ID: reject: STAGE from ...: reply; from= to= ..." */
void
session_reject_log(struct session *s, const char *stage, const char *to,
    size_t tolen)
{
	char esc[ADDR_PATH_MAX * 4 + 8], helo[HELO_MAX * 4 + 8];

	log_esc(esc, sizeof(esc), to ? to : "", to ? tolen : 0);
	log_esc(helo, sizeof(helo), s->tx.helo, strlen(s->tx.helo));
	log_info("%s: reject: %s from unknown[%s]: %s; from=%s%s%s%s proto=%s "
	    "helo=<%s>", s->tx.id[0] ? s->tx.id : "NOQUEUE", stage, s->peer.addr,
	    s->reply, s->tx.sender[0] ? s->tx.sender : "<>", to ? " to=<" : "",
	    to ? esc : "", to ? ">" : "", s->esmtp ? "ESMTP" : "SMTP", helo);
}

/* session_reset - forget the transaction */
void
session_reset(struct session *s)
{
	size_t i;

	for (i = 0; i < s->tx.nrcpt; i++)
		free(s->tx.rcpt[i]);
	free(s->tx.rcpt);
	s->tx.rcpt = NULL;
	s->tx.nrcpt = s->rcpt_refused = 0;
	s->tx.id[0] = s->tx.sender[0] = '\0';
	s->declared_size = 0;
	s->tx.body8 = 0;
	if (s->state > S_HELO)
		s->state = S_HELO;
}

/* data_refused - after a refused DATA, the message may follow anyway:
 * what is already pipelined ends the session, and the next line must
 * be a command */
void
session_data_refused(struct session *s)
{
	s->after_failed_data = 1;
	if (io_pending(&s->io)) {
		(void)io_flush(&s->io);
		log_info("improper command pipelining after DATA from "
		    "unknown[%s]", s->peer.addr);
		s->quit = 1;
	}
}

/* tls_start - the handshake and what follows from it; -1 ends the session */
int
session_tls(struct session *s)
{
	long long left = s->io.deadline - time(NULL);
	char fp[TLS_FP_LEN], subject[300];
	int verified, listed;

	if (left > s->cf->smtpd_starttls_timeout)
		left = s->cf->smtpd_starttls_timeout;
	if (io_starttls(&s->io, &s->tls->io, s->tls->conn(s->io.rfd, s->io.wfd),
	    (int)left * 1000) < 0) {
		log_info("TLS handshake failed after %s from unknown[%s]: %s",
		    s->verb, s->peer.addr, s->tls->error());
		return -1;
	}
	verified = s->tls->describe(s->io.ssl, s->tx.tls, sizeof(s->tx.tls), fp,
	    subject, sizeof(subject));
	listed = fp[0] && s->tls->fp_listed(fp, s->cf->relay_clientcerts);
	if (listed)
		s->peer.trusted = 1;
	if (fp[0] && (verified || listed))
		snprintf(s->tx.ccert, sizeof(s->tx.ccert), "%s %s", fp, subject);
	log_info("TLS connection established from unknown[%s]: %s%s%s",
	    s->peer.addr, s->tx.tls, s->tx.ccert[0] ? " client certificate " : "",
	    s->tx.ccert);
	return 0;
}
