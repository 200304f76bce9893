/*
 * session.c - smap's SMTP state machine and commands (RFC 5321, with
 * the enhanced status codes of RFC 3463 on every reply but the greeting
 * and the HELO/EHLO replies, as RFC 2034 prescribes).
 *
 * Trusts the configuration; every byte from the client is hostile.
 * A command table says in which states each command may run; verbs
 * match exactly, ignoring case. The message itself is data.c's job.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/statvfs.h>

#include "addr.h"
#include "anvil.h"
#include "data.h"
#include "layout.h"
#include "log.h"
#include "proxy.h"
#include "relay.h"
#include "session.h"
#include "spool.h"

#define ANY ((1u << S_INIT) | (1u << S_HELO) | (1u << S_MAIL) | (1u << S_RCPT))
#define TRANS ((1u << S_MAIL) | (1u << S_RCPT))

/* A row of the command table: all that dispatch() needs to know. */
struct cmd {
	const char *verb;
	void (*fn)(struct session *, char *);	/* NULL: just the reply */
	unsigned states;	/* where it may run */
	unsigned flags;
#define JUNK 1			/* counts toward smtpd_junk_command_limit */
#define GROUP_END 2		/* ends a pipelined group, text may follow */
	const char *counter;	/* its name in the disconnect line */
	const char *reply;	/* fn == NULL: the reply */
	const char *before;	/* 503 text when sent too early */
	const char *after;	/* ... and when sent too late */
};

/* What follows a path must be nothing or a space. */
#define PATH_END(p) (*(p) == '\0' || *(p) == ' ')
#define UNIMPL "502 5.5.1 Error: command not implemented"

/* session_reply - format, queue, remember; 4xx/5xx count as errors */
static void
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
static void
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

/* limited - 1 after the reply when the client is past a limit (anvil.h) */
static int
limited(struct session *s, enum anvil_event ev)
{
	const char *reply = anvil_event(s->cf, &s->peer, ev);

	if (reply != NULL)
		session_reply(s, "%s", reply);
	return reply != NULL;
}

/* session_reject_log - "ID: reject: STAGE from ...: reply; from= to= ..." */
static void
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
static void
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

/* cmd_helo - HELO and EHLO: name the client, start over */
static void
cmd_helo(struct session *s, char *arg)
{
	int ehlo = s->verb[0] == 'E' || s->verb[0] == 'e';
	size_t n = strlen(arg);

	while (n > 0 && arg[n - 1] == ' ')
		arg[--n] = '\0';
	if (!spool_token_ok(arg, HELO_MAX)) {
		session_reply(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
		return;
	}
	session_reset(s);
	snprintf(s->tx.helo, sizeof(s->tx.helo), "%s", arg);
	s->esmtp = ehlo;
	s->state = S_HELO;
	if (!ehlo) {
		session_reply(s, "250 %s", s->cf->myhostname);
		return;
	}
	snprintf(s->reply, sizeof(s->reply), "250-%s\r\n250-PIPELINING\r\n"
	    "250-SIZE %lld\r\n250-8BITMIME%s", s->cf->myhostname,
	    s->cf->message_size_limit, s->tls != NULL && s->io.ssl == NULL ?
	    "\r\n250-STARTTLS" : "");
	io_reply(&s->io, s->reply);
	session_reply(s, "250 ENHANCEDSTATUSCODES");
}

/* mail_param - one ESMTP parameter of MAIL; 0, or -1 after a reply */
static int
mail_param(struct session *s, char *p, unsigned *seen)
{
	char *val = strchr(p, '=');
	size_t n;

	if (val != NULL)
		*val++ = '\0';
	if (strcasecmp(p, "SIZE") == 0 && !(*seen & 1)) {
		*seen |= 1;
		n = val ? strspn(val, "0123456789") : 0;
		if (n == 0 || n > 18 || val[n] != '\0') {
			session_reply(s, "501 5.5.4 Bad SIZE= value");
			return -1;
		}
		s->declared_size = strtoll(val, NULL, 10);
		return 0;
	}
	if (strcasecmp(p, "BODY") == 0 && !(*seen & 2)) {
		*seen |= 2;
		if (val && strcasecmp(val, "7BIT") == 0)
			return 0;
		if (val && strcasecmp(val, "8BITMIME") == 0)
			return (s->tx.body8 = 1) - 1;
		session_reply(s, "501 5.5.4 Bad BODY= value");
		return -1;
	}
	if (strcasecmp(p, "SIZE") == 0 || strcasecmp(p, "BODY") == 0)
		session_reply(s, "501 5.5.4 Duplicate parameter");
	else
		session_reply(s, "555 5.5.4 Unsupported option");
	return -1;
}

/* mail_params - every parameter after the path */
static int
mail_params(struct session *s, char *p)
{
	unsigned seen = 0;
	char *tok;

	while ((tok = strsep(&p, " ")) != NULL)
		if (*tok != '\0' && mail_param(s, tok, &seen) < 0)
			return -1;
	return 0;
}

/* room - may a message of the declared size come? 0 after the reply */
static int
room(struct session *s)
{
	struct statvfs sv;
	unsigned long long need = (unsigned long long)s->cf->queue_minfree +
	    (unsigned long long)s->declared_size;

	if (s->declared_size > s->cf->message_size_limit)
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
	else if (statvfs(LAYOUT_TMP, &sv) < 0 || (unsigned long long)sv.f_bavail *
	    sv.f_frsize < need || sv.f_favail < (fsfilcnt_t)s->cf->queue_minfree_inodes)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else
		return 1;	/* inodes run out first with many small files */
	session_reject_log(s, "MAIL", NULL, 0);
	return 0;
}

/* path_arg - "FROM:" or "TO:", spaces, then a path; NULL after a reply */
static char *
path_arg(struct session *s, char *arg, const char *kw, const char *syntax)
{
	size_t n = strlen(kw);

	if (strncasecmp(arg, kw, n) != 0) {
		session_reply(s, "501 5.5.4 Syntax: %s", syntax);
		return NULL;
	}
	for (arg += n; *arg == ' '; arg++)
		;
	return arg;
}

/* bad_path - 501 naming the path as the client sent it (escaped and
 * capped, as Postfix names the address), logged with it as the sender
 * (MAIL) or the recipient (RCPT) */
static void
bad_path(struct session *s, const char *p, const char *why, int mail)
{
	char esc[72];

	p += *p == '<';
	log_esc(esc, sizeof(esc), p, strcspn(p, ">"));
	session_reply(s, "501 5.1.%d <%s>: %s", mail ? 7 : 3, esc, why);
	if (!mail) {
		session_reject_log(s, "RCPT", p, strcspn(p, ">"));
		return;
	}
	snprintf(s->tx.sender, sizeof(s->tx.sender), "<%s>", esc);
	session_reject_log(s, "MAIL", NULL, 0);
	s->tx.sender[0] = '\0';
}

/* cmd_mail - MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME] */
static void
cmd_mail(struct session *s, char *arg)
{
	const char *why;
	struct addr a;
	char *p;
	int n;

	if (s->messages >= s->cf->smtpd_message_limit) {
		session_close(s, "too many messages", "421 4.7.0 %s Error: too "
		    "many messages in one session", s->cf->myhostname);
		return;
	}
	if (s->io.ssl == NULL && strcmp(s->cf->smtpd_tls_security_level,
	    "encrypt") == 0) {
		session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if ((p = path_arg(s, arg, "FROM:", "MAIL FROM:<address>")) == NULL ||
	    limited(s, ANVIL_MAIL))
		return;
	n = addr_parse(p, strlen(p), ADDR_SENDER, &a, &why);
	if (n < 0 || !PATH_END(p + n)) {
		bad_path(s, p, n < 0 ? why : "Bad address syntax", 1);
		return;
	}
	snprintf(s->tx.sender, sizeof(s->tx.sender), "<%s>", a.text);	/* for logs */
	if (mail_params(s, p + n) < 0 || !room(s)) {
		session_reset(s);	/* refused: no transaction */
		return;
	}
	s->messages++;
	s->state = S_MAIL;
	session_reply(s, "250 2.1.0 Ok");
}

/* add_rcpt - remember an accepted recipient; the first one names the message */
static int
add_rcpt(struct session *s, const struct addr *a)
{
	char **v = realloc(s->tx.rcpt, (s->tx.nrcpt + 1) * sizeof(*v));
	size_t n = strlen(a->text) + 3;

	if (v == NULL)
		return -1;
	s->tx.rcpt = v;
	if ((v[s->tx.nrcpt] = malloc(n)) == NULL)
		return -1;
	snprintf(v[s->tx.nrcpt++], n, "<%s>", a->text);
	if (s->tx.id[0] == '\0') {
		qid_make(s->tx.id, sizeof(s->tx.id));
		log_info("%s: client=unknown[%s]", s->tx.id, s->peer.addr);
	}
	return 0;
}

/* known_rcpt - is a recipient already in the transaction (the local part
 * as it is, the domain in any case)? Then it is kept once. */
static int
known_rcpt(const struct session *s, const struct addr *a)
{
	size_t i, n = strlen(a->text);

	for (i = 0; i < s->tx.nrcpt; i++)
		if (strlen(s->tx.rcpt[i]) == n + 2 &&
		    memcmp(s->tx.rcpt[i] + 1, a->text, a->at) == 0 &&
		    strncasecmp(s->tx.rcpt[i] + 1 + a->at, a->text + a->at,
		    n - a->at) == 0)
			return 1;
	return 0;
}

/* too_many - 452 for a recipient past the limit; within the overshoot
 * it is not held against the client (RFC 5321 4.5.3.1.10) */
static void
too_many(struct session *s)
{
	session_reply(s, "452 4.5.3 Error: too many recipients");
	if (++s->overshoot <= s->cf->smtpd_recipient_overshoot_limit)
		s->errors--;
}

/* cmd_rcpt - RCPT TO:<path>, judged by the relay policy */
static void
cmd_rcpt(struct session *s, char *arg)
{
	const char *why;
	struct addr a;
	char *p;
	int n, dup;

	if ((p = path_arg(s, arg, "TO:", "RCPT TO:<address>")) == NULL ||
	    limited(s, ANVIL_RCPT))
		return;
	n = addr_parse(p, strlen(p), ADDR_RECIPIENT, &a, &why);
	dup = n >= 0 && known_rcpt(s, &a);	/* a repeat is kept once */
	if (n < 0 || !PATH_END(p + n)) {
		s->rcpt_refused++;
		bad_path(s, p, n < 0 ? why : "Bad address syntax", 0);
		return;
	} else if (p[n + strspn(p + n, " ")] != '\0')
		session_reply(s, "555 5.5.4 Unsupported option");
	else if (!relay_allowed(s->cf, &a, s->peer.trusted))
		session_reply(s, "554 5.7.1 <%s>: Relay access denied", a.text);
	else if (!dup && s->tx.nrcpt >= (size_t)s->cf->smtpd_recipient_limit)
		too_many(s);
	else if (!dup && add_rcpt(s, &a) < 0)
		session_reply(s, "451 4.3.0 Error: out of memory");
	else {
		s->state = S_RCPT;
		session_reply(s, "250 2.1.5 Ok");
		return;
	}
	s->rcpt_refused++;
	session_reject_log(s, "RCPT", a.text, strlen(a.text));
}

/* data_refused - after a refused DATA, the message may follow anyway:
 * what is already pipelined ends the session, and the next line must
 * be a command */
static void
data_refused(struct session *s)
{
	s->after_failed_data = 1;
	if (io_pending(&s->io)) {
		(void)io_flush(&s->io);
		log_info("improper command pipelining after DATA from "
		    "unknown[%s]", s->peer.addr);
		s->quit = 1;
	}
}

/* storage_reply - 452 when the disk is full, 451 for other failures */
static void
storage_reply(struct session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else
		session_reply(s, "451 4.3.0 Error: queue file write error");
	log_warn("%s: queue file write error: %s", s->tx.id, strerror(err));
}

/* stored_reply - the reply to the end of the data, and its log line */
static void
stored_reply(struct session *s, enum stored r)
{
	if (r == STORED) {
		session_reply(s, "250 2.0.0 Ok: queued as %s", s->tx.id);
		return;
	}
	if (r == STORE_FAILED) {
		storage_reply(s, store_errno());
		return;
	}
	session_reply(s, "%s", r == STORE_BARE ? "554 5.6.0 Error: bare CR or "
	    "LF in message" : r == STORE_TOOBIG ? "552 5.3.4 Error: message "
	    "file too big" : "554 5.4.6 Error: too many hops");
	session_reject_log(s, "END-OF-MESSAGE", NULL, 0);
}

/* open_tx - what the spool file records of the session; then the file */
static int
open_tx(struct session *s)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	s->tx.arrival = now.tv_sec;
	s->tx.arrival_us = now.tv_nsec / 1000;
	snprintf(s->tx.client, sizeof(s->tx.client), "%s", s->peer.addr);
	s->tx.port = s->peer.port;
	snprintf(s->tx.proto, sizeof(s->tx.proto), "%s", !s->esmtp ? "SMTP" :
	    s->io.ssl ? "ESMTPS" : "ESMTP");
	return store_open(s->cf, &s->tx);
}

/* receive - 354, the text through the store, the reply to its end */
static void
receive(struct session *s)
{
	enum stored r;

	io_reply(&s->io, "354 End data with <CR><LF>.<CR><LF>");
	s->verb = "DATA";
	r = store_data(&s->io);
	if (r == STORE_TIMEOUT)
		session_close(s, "timeout", "421 4.4.2 %s Error: timeout "
		    "exceeded", s->cf->myhostname);
	else if (r == STORE_LOST)
		log_info("lost connection after DATA from unknown[%s]",
		    s->peer.addr);
	if (r == STORE_TIMEOUT || r == STORE_LOST) {
		s->quit = 1;
		return;
	}
	s->verb = "END-OF-MESSAGE";
	if (r == STORE_READY) {	/* said before smapd can see it */
		log_info("%s: from=%s, size=%lld, nrcpt=%zu (queue new)", s->tx.id,
		    s->tx.sender, s->tx.size, s->tx.nrcpt);
		r = store_commit();
	}
	stored_reply(s, r);
	session_reset(s);
}

/* cmd_data - DATA: the transaction checked, the message received; or a
 * refusal, after which the message text may follow all the same */
static void
cmd_data(struct session *s, char *arg)
{
	int err;

	if (*arg != '\0') {
		session_reply(s, "501 5.5.4 Syntax: DATA");
	} else if (s->tx.nrcpt == 0) {
		session_reply(s, "%s", s->rcpt_refused > 0 ? "554 5.5.1 Error: "
		    "no valid recipients" : "503 5.5.1 Error: need RCPT command");
		session_reject_log(s, "DATA", NULL, 0);
	} else if ((err = open_tx(s)) != 0) {
		storage_reply(s, err);
		session_reset(s);
	} else {
		receive(s);
		return;
	}
	data_refused(s);
}

/* cmd_rset - abort the transaction */
static void
cmd_rset(struct session *s, char *arg)
{
	if (*arg != '\0') {
		session_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	session_reset(s);
	session_reply(s, "250 2.0.0 Ok");
}

/* cmd_vrfy - never reveal whether an address exists */
static void
cmd_vrfy(struct session *s, char *arg)
{
	if (*arg == '\0')
		session_reply(s, "501 5.5.4 Syntax: VRFY address");
	else
		session_reply(s, "252 2.0.0 Cannot VRFY; send mail and it will be tried");
}

/* cmd_quit - goodbye */
static void
cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	session_reply(s, "221 2.0.0 Bye");
	s->quit = 1;
}

/* tls_start - the handshake and what follows from it; -1 ends the session */
static int
tls_start(struct session *s)
{
	long long left = s->io.deadline - time(NULL);
	char fp[TLS_FP_LEN], subject[300];
	int verified, listed;

	if (left > s->cf->smtpd_starttls_timeout)
		left = s->cf->smtpd_starttls_timeout;
	if (io_starttls(&s->io, s->tls, (int)left * 1000) < 0) {
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

/* cmd_starttls - RFC 3207: forget everything sent before, then TLS */
static void
cmd_starttls(struct session *s, char *arg)
{
	if (s->tls == NULL)
		session_reply(s, UNIMPL);
	else if (s->io.ssl != NULL)
		session_reply(s, "554 5.5.1 Error: TLS already active");
	else if (*arg != '\0')
		session_reply(s, "501 5.5.4 Syntax: STARTTLS");
	else {
		session_reply(s, "220 2.0.0 Ready to start TLS");
		(void)io_flush(&s->io);
		io_discard(&s->io);	/* never act on bytes sent in plaintext */
		session_reset(s);
		s->state = S_INIT;
		s->tx.helo[0] = '\0';
		if (tls_start(s) < 0)
			s->quit = 1;
	}
}

/* cmd_http - a web request sent to the SMTP port: hang up */
static void
cmd_http(struct session *s, char *arg)
{
	(void)arg;
	session_close(s, "HTTP request", "521 5.7.0 Error: forbidden command, "
	    "closing connection");
}

#define NEED_MAIL "503 5.5.1 Error: need MAIL command"

static const struct cmd cmds[] = {
	{ "HELO", cmd_helo, ANY, 0, "helo", NULL, NULL, NULL },
	{ "EHLO", cmd_helo, ANY, 0, "ehlo", NULL, NULL, NULL },
	{ "MAIL", cmd_mail, 1u << S_HELO, 0, "mail", NULL,
	    "503 5.5.1 Error: send HELO/EHLO first",
	    "503 5.5.1 Error: nested MAIL command" },
	{ "RCPT", cmd_rcpt, TRANS, 0, "rcpt", NULL, NEED_MAIL, NEED_MAIL },
	{ "DATA", cmd_data, TRANS, GROUP_END, "data", NULL, NEED_MAIL, NEED_MAIL },
	{ "RSET", cmd_rset, ANY, JUNK, "rset", NULL, NULL, NULL },
	{ "NOOP", NULL, ANY, JUNK, "noop", "250 2.0.0 Ok", NULL, NULL },
	{ "VRFY", cmd_vrfy, ANY, JUNK, "vrfy", NULL, NULL, NULL },
	{ "EXPN", NULL, ANY, 0, "expn", UNIMPL, NULL, NULL },
	{ "HELP", NULL, ANY, JUNK, "help", "214 2.0.0 Commands: HELO EHLO MAIL "
	    "RCPT DATA RSET NOOP VRFY HELP QUIT", NULL, NULL },
	{ "QUIT", cmd_quit, ANY, 0, "quit", NULL, NULL, NULL },
	{ "STARTTLS", cmd_starttls, ANY, 0, "starttls", NULL, NULL, NULL },
	{ "AUTH", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "BDAT", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "ETRN", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "TURN", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "ATRN", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "XCLIENT", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "XFORWARD", NULL, ANY, 0, "unimplemented", UNIMPL, NULL, NULL },
	{ "GET", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ "POST", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ "HEAD", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ "PUT", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ "CONNECT", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ "OPTIONS", cmd_http, ANY, 0, "unknown", NULL, NULL, NULL },
	{ NULL, NULL, ANY, 0, "unknown", "500 5.5.2 Error: command not "
	    "recognized", NULL, NULL },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))
#define UNKNOWN_ROW (NCMDS - 1)
_Static_assert(NCMDS <= SESSION_CMDS, "SESSION_CMDS counts every row");


/* lookup - the table entry for the verb at the start of line */
static const struct cmd *
lookup(char *line, char **arg)
{
	size_t n = strcspn(line, " ");
	const struct cmd *c;

	for (c = cmds; c->verb != NULL; c++)
		if (strlen(c->verb) == n && strncasecmp(line, c->verb, n) == 0)
			break;
	for (*arg = line + n; **arg == ' '; (*arg)++)
		;
	return c;
}

/* out_of_order - the command's 503, too early or too late */
static void
out_of_order(struct session *s, const struct cmd *c)
{
	unsigned first = c->states & -c->states;	/* its earliest state */

	session_reply(s, "%s", (1u << s->state) < first ? c->before : c->after);
}

/* dispatch - one complete command line */
static void
dispatch(struct session *s, char *line, size_t len)
{
	int failed_data = s->after_failed_data;
	const struct cmd *c;
	char *arg;

	s->after_failed_data = 0;
	if (len == 0 || strlen(line) != len || strpbrk(line, "\r\n") != NULL) {
		s->verb = "UNKNOWN";
		s->total[UNKNOWN_ROW]++;
		session_reply(s, "500 5.5.2 Error: %s", len == 0 ?
		    "empty command" : "bare CR, LF or NUL in command");
		return;
	}
	c = lookup(line, &arg);
	s->verb = c->verb ? c->verb : "UNKNOWN";
	if (failed_data && c->verb == NULL) {
		session_close(s, "message text after failed DATA", "421 4.7.0 %s "
		    "Error: message text after failed DATA", s->cf->myhostname);
		return;
	}
	s->total[c - cmds]++;
	if ((c->flags & JUNK) && ++s->junk > s->cf->smtpd_junk_command_limit)
		s->errors++;
	if (!(c->states & (1u << s->state))) {
		out_of_order(s, c);
		if (c->flags & GROUP_END)	/* the text may follow: */
			data_refused(s);	/* never read as commands */
	} else if (c->fn != NULL)
		c->fn(s, arg);
	else
		session_reply(s, "%s", c->reply);
	if (s->reply[0] == '2' || s->reply[0] == '3')
		s->ok[c - cmds]++;
}

/* counted - the counts of every row named as row i (rows share a name:
 * "unimplemented", "unknown"); 0 when an earlier row had the name */
static int
counted(const struct session *s, size_t i, int *good, int *all)
{
	size_t j;

	*good = *all = 0;
	for (j = 0; j < NCMDS; j++) {
		if (strcmp(cmds[j].counter, cmds[i].counter) != 0)
			continue;
		if (j < i && s->total[j] > 0)
			return 0;
		*good += s->ok[j];
		*all += s->total[j];
	}
	return 1;
}

/* log_disconnect - "disconnect from ... ehlo=1 mail=1 rcpt=0/1 ... commands=n" */
static void
log_disconnect(struct session *s)
{
	char buf[512];
	size_t i, o = 0;
	int ok = 0, total = 0, good, all;

	buf[0] = '\0';
	for (i = 0; i < NCMDS && o < sizeof(buf) - 64; i++) {
		if (s->total[i] == 0 || !counted(s, i, &good, &all))
			continue;
		ok += good;
		total += all;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %s=%d",
		    cmds[i].counter, good);
		if (good != all)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "/%d", all);
	}
	if (ok == total)
		log_info("disconnect from unknown[%s]%s commands=%d", s->peer.addr,
		    buf, total);
	else
		log_info("disconnect from unknown[%s]%s commands=%d/%d",
		    s->peer.addr, buf, ok, total);
}

/* greet - the banner, unless the client talks first */
static int
greet(struct session *s)
{
	if (!s->peer.early &&
	    io_wait(&s->io, (int)s->cf->smtpd_greet_pause * 1000) > 0) {
		if (io_eof(&s->io))	/* a probe that hung up: not talking */
			log_info("lost connection after CONNECT from unknown[%s]",
			    s->peer.addr);
		else
			session_close(s, "pregreet", "554 5.5.1 %s Error: talked "
			    "before greeting", s->cf->myhostname);
		return -1;
	}
	snprintf(s->reply, sizeof(s->reply), "220 %s", s->cf->smtpd_banner);
	io_reply(&s->io, s->reply);
	return 0;
}

/* session_loop - read and serve commands until QUIT or trouble */
static void
session_loop(struct session *s)
{
	char line[SMTP_LINE_MAX];
	enum io_status st;
	size_t len = 0;

	while (!s->quit) {
		if (s->errors >= s->cf->smtpd_hard_error_limit) {
			session_close(s, "too many errors", "421 4.7.0 %s Error: "
			    "too many errors", s->cf->myhostname);
			break;
		}
		st = io_getline(&s->io, line, &len);
		if (st == IO_LONG) {
			s->total[UNKNOWN_ROW]++;
			session_reply(s, "500 5.5.2 Error: line too long");
		} else if (st == IO_TIMEOUT) {
			session_close(s, "timeout", "421 4.4.2 %s Error: timeout "
			    "exceeded", s->cf->myhostname);
		} else if (st != IO_OK) {
			log_info("lost connection after %s from unknown[%s]",
			    s->verb, s->peer.addr);
			break;
		} else {
			dispatch(s, line, len);
		}
	}
	(void)io_flush(&s->io);
}

/* session_run - one whole SMTP session */
void
session_run(struct session *s, const struct conf *cf,
    const struct tls_server *tls, int rfd, int wfd)
{
	memset(s, 0, offsetof(struct session, io));
	s->cf = cf;
	s->tls = tls;
	s->verb = "CONNECT";
	peer_find(&s->peer, rfd, &cf->mynetworks);
	if (proxy_peer(&s->peer, cf, rfd) < 0)
		return;
	io_init(&s->io, rfd, wfd, (int)cf->smtpd_timeout,
	    time(NULL) + cf->smtpd_session_deadline);
	log_info("connect from unknown[%s]%s", s->peer.addr, s->peer.via);
	if ((!cf->smtpd_tls_wrappermode || tls_start(s) == 0) &&
	    !limited(s, ANVIL_CONN) && greet(s) == 0)
		session_loop(s);
	(void)io_flush(&s->io);
	session_reset(s);
	if (s->io.ssl != NULL)
		s->io.tls->close(s->io.ssl);
	log_disconnect(s);
}
