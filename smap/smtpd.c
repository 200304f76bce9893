/*
 * smtpd.c - one SMTP session (see smtpd.h): the greeting, the command
 * loop, dispatch through the command table (commands.h), and the
 * counts of the disconnect line.
 *
 * Trusts the configuration; every line from the client is hostile.
 * Verbs match exactly, ignoring case; only CRLF ends a line (io.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "commands.h"
#include "log.h"
#include "upstream.h"
#include "smtpd.h"

#define UNKNOWN_ROW (smtp_ncmds - 1)	/* the table's last row */

/* lookup - the table entry for the verb at the start of line */
static const struct cmd *
lookup(char *line, char **arg)
{
	size_t n = strcspn(line, " ");
	const struct cmd *c;

	for (c = smtp_cmds; c->verb != NULL; c++)
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
	s->total[c - smtp_cmds]++;
	if ((c->flags & JUNK) && ++s->junk > s->cf->smtpd_junk_command_limit)
		s->errors++;
	if (!(c->states & (1u << s->state))) {
		out_of_order(s, c);
		if (c->flags & GROUP_END)	/* the text may follow: */
			session_data_refused(s);	/* never read as commands */
	} else if (c->fn != NULL)
		c->fn(s, arg);
	else
		session_reply(s, "%s", c->reply);
	if (s->reply[0] == '2' || s->reply[0] == '3')
		s->ok[c - smtp_cmds]++;
}

/* counted - the counts of every row named as row i (rows share a name:
 * "unimplemented", "unknown"); 0 when an earlier row had the name */
static int
counted(const struct session *s, size_t i, int *good, int *all)
{
	size_t j;

	*good = *all = 0;
	for (j = 0; j < smtp_ncmds; j++) {
		if (strcmp(smtp_cmds[j].counter, smtp_cmds[i].counter) != 0)
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
	for (i = 0; i < smtp_ncmds && o < sizeof(buf) - 64; i++) {
		if (s->total[i] == 0 || !counted(s, i, &good, &all))
			continue;
		ok += good;
		total += all;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %s=%d",
		    smtp_cmds[i].counter, good);
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
	if (!s->peer.early &&	/* bytes behind a PROXY header: not talking */
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
    const struct opened *o, int rfd, int wfd)
{
	memset(s, 0, offsetof(struct session, io));
	s->cf = cf;
	s->tls = o->tls;
	s->opened = o;
	s->verb = "CONNECT";
	peer_find(&s->peer, rfd, &cf->mynetworks);
	if (proxy_peer(&s->peer, cf, rfd) < 0)
		return;
	io_init(&s->io, rfd, wfd, (int)cf->smtpd_timeout,
	    time(NULL) + cf->smtpd_session_deadline);
	log_info("connect from unknown[%s]%s", s->peer.addr, s->peer.via);
	if ((!cf->smtpd_tls_wrappermode || session_tls(s) == 0) &&
	    !session_limited(s, ANVIL_CONN) && greet(s) == 0)
		session_loop(s);
	(void)io_flush(&s->io);	/* a refusal before the loop */
	session_reset(s);
	if (s->io.ssl != NULL)
		s->tls->close(s->io.ssl);
	log_disconnect(s);
}
