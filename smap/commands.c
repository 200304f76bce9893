/*
 * commands.c - smap's SMTP commands (RFC 5321, with the enhanced status
 * codes of RFC 3463 on every reply but the greeting and the HELO/EHLO
 * replies, as RFC 2034 prescribes) and the table that says where each
 * may run, what it answers when it may not, and how it is counted.
 *
 * Trusts the configuration; every argument is hostile. Each command
 * decides its reply and its log line; a message's text is the store's
 * (data.h), which only says what became of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/statvfs.h>

#include "addr.h"
#include "commands.h"
#include "data.h"
#include "layout.h"
#include "log.h"
#include "relay.h"

#define ANY ((1u << S_INIT) | (1u << S_HELO) | (1u << S_MAIL) | (1u << S_RCPT))
#define TRANS ((1u << S_MAIL) | (1u << S_RCPT))

/* What follows a path must be nothing or a space. */
#define PATH_END(p) (*(p) == '\0' || *(p) == ' ')
#define UNIMPL "502 5.5.1 Error: command not implemented"

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
		s->rcpt_refused++;
		session_reject_log(s, "RCPT", p, strcspn(p, ">"));
		return;
	}
	snprintf(s->tx.sender, sizeof(s->tx.sender), "<%s>", esc);
	session_reject_log(s, "MAIL", NULL, 0);
	s->tx.sender[0] = '\0';
}

/* path - "FROM:" or "TO:", spaces, then a path of this kind into a;
 * what follows it, or NULL after the reply */
static char *
path(struct session *s, char *arg, int kind, struct addr *a)
{
	int mail = kind == ADDR_SENDER, n;
	const char *kw = mail ? "FROM:" : "TO:", *why;
	size_t k = strlen(kw);

	if (strncasecmp(arg, kw, k) != 0) {
		session_reply(s, "501 5.5.4 Syntax: %s", mail ? "MAIL FROM:<address>" :
		    "RCPT TO:<address>");
		return NULL;
	}
	for (arg += k; *arg == ' '; arg++)
		;
	n = addr_parse(arg, strlen(arg), kind, a, &why);
	if (n >= 0 && PATH_END(arg + n))
		return arg + n;
	bad_path(s, arg, n < 0 ? why : "Bad address syntax", mail);
	return NULL;
}

/* cmd_mail - MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME] */
static void
cmd_mail(struct session *s, char *arg)
{
	struct addr a;
	char *p;

	if (s->messages >= s->cf->smtpd_message_limit) {
		session_close(s, "too many messages", "421 4.7.0 %s Error: too "
		    "many messages in one session", s->cf->myhostname);
		return;
	}
	if (s->io.ssl == NULL && s->cf->smtpd_tls_security_level == TLS_ENCRYPT) {
		session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if ((p = path(s, arg, ADDR_SENDER, &a)) == NULL ||
	    session_limited(s, ANVIL_MAIL))
		return;
	snprintf(s->tx.sender, sizeof(s->tx.sender), "<%s>", a.text);	/* for logs */
	if (mail_params(s, p) < 0 || !room(s)) {
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

/* listed - may the recipient have mail? Every one may, unless its
 * domain is in relay_domains and relay_recipient_maps is set: then
 * the table decides. 1 yes, 0 unknown user, -1 the table cannot say */
static int
listed(const struct session *s, const struct addr *a)
{
	const struct opened *o = s->opened;
	char local[ADDR_PATH_MAX + 1];

	if (s->cf->relay_recipient_maps[0] == '\0' || a->at == 0 ||
	    !domain_match(&s->cf->relay_domains, addr_domain(a)))
		return 1;
	if (o->rcpt.type == MAP_CLOSED)
		return -1;
	snprintf(local, sizeof(local), "%.*s", (int)a->at, a->text);
	return map_recipient(&o->rcpt, local, addr_domain(a),
	    s->cf->recipient_delimiter);
}

/* cmd_rcpt - RCPT TO:<path>, judged by the relay policy */
static void
cmd_rcpt(struct session *s, char *arg)
{
	struct addr a;
	char *p;
	int dup, known;

	if ((p = path(s, arg, ADDR_RECIPIENT, &a)) == NULL ||
	    session_limited(s, ANVIL_RCPT))
		return;
	dup = known_rcpt(s, &a);	/* a repeat is kept once */
	if (p[strspn(p, " ")] != '\0')
		session_reply(s, "555 5.5.4 Unsupported option");
	else if (!relay_allowed(s->cf, &a, s->peer.trusted))
		session_reply(s, "554 5.7.1 <%s>: Relay access denied", a.text);
	else if ((known = listed(s, &a)) == 0)
		session_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User "
		    "unknown in relay recipient table", a.text);
	else if (known < 0)
		session_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", a.text);
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
	session_data_refused(s);
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
		if (session_tls(s) < 0)
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

const struct cmd smtp_cmds[] = {
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

const size_t smtp_ncmds = sizeof(smtp_cmds) / sizeof(smtp_cmds[0]);
_Static_assert(sizeof(smtp_cmds) / sizeof(smtp_cmds[0]) <= SESSION_CMDS,
    "SESSION_CMDS counts every row");
