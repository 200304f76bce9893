/*
 * smtp_proto.c - the SMTP and LMTP protocol of the client (see smtp.h):
 * the greeting and EHLO, then per message XFORWARD, MAIL, RCPT, DATA,
 * the message, and what each reply decides.
 *
 * PROTOCOL: RFC 5321 with PIPELINING (RFC 2920), SIZE (RFC 1870),
 * 8BITMIME (RFC 6152) and Postfix's XFORWARD; LMTP (RFC 2033) with one
 * final reply per accepted recipient. A session: 220 greeting, EHLO
 * (LHLO; HELO when SMTP's EHLO gets 5xx), then per message XFORWARD
 * (when offered and smtp_send_xforward_command is yes), MAIL, RCPT...,
 * DATA, the message, ".". With PIPELINING, MAIL, the RCPTs and DATA go
 * out in groups of at most SMTP_PIPE_MAX commands, XFORWARD ahead of
 * the first group. The replies are read in order, one for every
 * command written, whatever each says; only a 421 (the server reads
 * nothing more) or an I/O failure ends the reading early, and such a
 * connection is never reused. A refused XFORWARD (any other 4xx or
 * 5xx) is logged once and not sent again on that connection; the
 * transaction goes on without it: Postfix's smtpd keeps no forwarded
 * attribute from a refused XFORWARD, so MAIL, pipelined behind it or
 * sent after it, applies as if none had been sent. A transaction that
 * ends before the message (MAIL refused, no recipient accepted) gets
 * its RSET at once, so a cached connection never needs one.
 *
 * RESULTS: a recipient is R_SENT only after the final reply to the
 * message; 4xx defers and 5xx bounces it; a failed MAIL decides every
 * recipient. Anything unexpected at session level (a greeting other
 * than 220, EHLO/HELO refused) defers the whole attempt, even for a
 * 5xx: there is one relay and nowhere else to try. A 421 decides
 * (defers) every recipient not yet decided.
 *
 * TRUST: the envelope passed spool_read_envelope and smtp_connect.c's
 * check that no byte outside 0x21..0x7e reaches the wire; XFORWARD's
 * HELO goes out as xtext. What the server announces in EHLO is read
 * word by word against fixed lists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp.h"

#define SMTP_PIPE_MAX	100	/* commands written before reading replies */

/* One word of an EHLO keyword's list and its bit. */
struct word {
	const char *name;
	unsigned bit;
};

/* helo_name - smtp_helo_name, or myhostname when it is empty */
const char *
helo_name(const struct conf *cf)
{
	const char *h = cf->smtp_helo_name;

	if (h == NULL || *h == '\0')
		h = cf->myhostname;
	return h == NULL ? "" : h;
}

/* from_reply - a verdict in the server's words, Postfix style; the
 * enhanced code keeps its detail but takes the verdict's class */
static void
from_reply(struct rcpt_result *res, enum rstatus st, const struct reply *r,
    const char *peer, const char *cmd)
{
	char cls = st == R_SENT ? '2' : st == R_BOUNCE ? '5' : '4';
	char dsn[16];
	const char *sp = r->dsn[0] ? " " : "";

	snprintf(dsn, sizeof(dsn), "%c%s", cls, r->dsn[0] ? r->dsn + 1 : ".0.0");
	if (st == R_SENT)
		result_set(res, st, dsn, "%d %s%s%s", r->code, r->dsn, sp,
		    r->text);
	else if (cmd == NULL)
		result_set(res, st, dsn, "%s refused to talk to me: %d %s%s%s",
		    peer, r->code, r->dsn, sp, r->text);
	else
		result_set(res, st, dsn, "%s said: %d %s%s%s (in reply to %s "
		    "command)", peer, r->code, r->dsn, sp, r->text, cmd);
}

/* undecided_from - every pending recipient gets the server's reply */
static void
undecided_from(struct delivery *d, enum rstatus st, const struct reply *r,
    const char *peer, const char *cmd)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->res[i].status == R_PENDING)
			from_reply(&d->res[i], st, r, peer, cmd);
}

/* word_is - does line s start with keyword w (any case)? *after: past it */
static int
word_is(const char *s, size_t n, const char *w, size_t *after)
{
	size_t wl = strlen(w);

	if (n < wl || strncasecmp(s, w, wl) != 0 || (n > wl && s[wl] != ' '))
		return 0;
	*after = n > wl ? wl + 1 : wl;
	return 1;
}

/* ehlo_words - the bits of the words of list w found in s (any case) */
static unsigned
ehlo_words(const char *s, size_t n, const struct word *w, size_t nw)
{
	size_t i, k, len;
	unsigned bits = 0;

	for (i = 0; i < n; i += len + 1) {
		for (len = 0; i + len < n && s[i + len] != ' '; len++)
			;
		for (k = 0; k < nw; k++)
			if (len == strlen(w[k].name) &&
			    strncasecmp(s + i, w[k].name, len) == 0)
				bits |= w[k].bit;
	}
	return bits;
}

/* ehlo_features - what the lines after the first announce */
static void
ehlo_features(struct conn *c, const struct reply *r)
{
	static const struct word xf[] = {
		{ "ADDR", XF_ADDR }, { "PORT", XF_PORT }, { "HELO", XF_HELO },
		{ "PROTO", XF_PROTO }, { "IDENT", XF_IDENT },
		{ "SOURCE", XF_SOURCE },
	};
	static const struct word mech[] = {
		{ "PLAIN", AUTH_PLAIN }, { "LOGIN", AUTH_LOGIN },
	};
	const char *s;
	size_t i, n, at;
	char *end, num[24];

	for (i = 1; i < r->nlines; i++) {
		s = reply_line(r, i, &n);
		if (word_is(s, n, "PIPELINING", &at))
			c->pipelining = 1;
		else if (word_is(s, n, "8BITMIME", &at))
			c->eightbit = 1;
		else if (word_is(s, n, "STARTTLS", &at))
			c->starttls = 1;
		else if (word_is(s, n, "XFORWARD", &at))
			c->xforward |= ehlo_words(s + at, n - at, xf,
			    sizeof(xf) / sizeof(xf[0]));
		else if (word_is(s, n, "AUTH", &at))
			c->auth |= AUTH_OFFERED | ehlo_words(s + at, n - at,
			    mech, sizeof(mech) / sizeof(mech[0]));
		else if (word_is(s, n, "SIZE", &at)) {
			c->size = 1;
			snprintf(num, sizeof(num), "%.*s", (int)(n - at), s + at);
			c->size_max = strtoll(num, &end, 10);
			if (*end || end == num || c->size_max < 0 ||
			    n - at > 18)
				c->size_max = 0;	/* no usable limit */
		}
	}
}

/* hello - EHLO (LHLO), or HELO when SMTP's EHLO gets 5xx */
static int
hello(struct conn *c, const struct conf *cf, struct delivery *d)
{
	const char *cmd = c->lmtp ? "LHLO" : "EHLO";
	struct reply r;

	c->stage = c->lmtp ? "performing the LHLO handshake" :
	    "performing the EHLO handshake";
	c->pipelining = c->eightbit = c->size = c->starttls = 0;
	c->size_max = 0;
	c->xforward = c->auth = 0;
	if (command(c, cf->smtp_helo_timeout, &r, "%s %s", cmd,
	    helo_name(cf)) < 0)
		return -1;
	if (r.code / 100 == 2) {
		ehlo_features(c, &r);
		return 0;
	}
	if (!c->lmtp && r.code / 100 == 5) {
		cmd = "HELO";
		c->stage = "performing the HELO handshake";
		if (command(c, cf->smtp_helo_timeout, &r, "HELO %s",
		    helo_name(cf)) < 0)
			return -1;
		if (r.code / 100 == 2)
			return 0;
	}
	undecided_from(d, R_DEFER, &r, c->peer, cmd);
	return 1;
}

/* greet - the 220 greeting, EHLO, STARTTLS and AUTH as configured;
 * 0, 1 (decided) or -1 (I/O) */
int
greet(struct conn *c, const struct conf *cf, struct delivery *d)
{
	struct reply r;
	int rc;

	c->stage = "receiving the initial server greeting";
	if (read_reply(c, cf->smtp_helo_timeout, &r) < 0)
		return -1;
	if (r.code != 220) {
		c->broken = r.code == 421;
		undecided_from(d, R_DEFER, &r, c->peer, NULL);
		return 1;
	}
	if ((rc = hello(c, cf, d)) != 0 || (rc = starttls(c, cf, d)) != 0)
		return rc;
	/* Over TLS, EHLO again: only its capabilities count. */
	if (c->ssl != NULL && (rc = hello(c, cf, d)) != 0)
		return rc;
	return authenticate(c, cf, d);
}

/* xtext - RFC 3461 xtext of a printable token; its length, or len */
static size_t
xtext(char *dst, size_t len, const char *src)
{
	size_t o = 0;
	unsigned char ch;

	for (; *src && o + 4 < len; src++) {
		ch = (unsigned char)*src;
		if (ch <= 0x20 || ch >= 0x7f || ch == '+' || ch == '=')
			o += (size_t)snprintf(dst + o, len - o, "+%02X", ch);
		else
			dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	return *src ? len : o;
}

/*
 * xforward_line - the XFORWARD command for x's client, without CRLF.
 * An unknown client (or port) is left out: the server starts every
 * attribute at [UNAVAILABLE] on the first XFORWARD (XFORWARD_README).
 */
static void
xforward_line(const struct txn *x, char *line, size_t len)
{
	const struct envelope *e = x->d->env;
	unsigned xf = x->c->xforward;
	char helo[256];
	int known = strcmp(e->client, "unknown") != 0, n;

	if (xtext(helo, sizeof(helo), e->helo) >= sizeof(helo))
		snprintf(helo, sizeof(helo), "[UNAVAILABLE]");
	n = snprintf(line, len, "XFORWARD HELO=%s", helo);
	if (known)
		n += snprintf(line + n, len - (size_t)n, " ADDR=%s%s",
		    strchr(e->client, ':') ? "IPV6:" : "", e->client);
	if (known && e->port > 0 && (xf & XF_PORT))
		n += snprintf(line + n, len - (size_t)n, " PORT=%u", e->port);
	if (xf & XF_PROTO)
		n += snprintf(line + n, len - (size_t)n, " PROTO=%s", e->proto);
	if (xf & XF_IDENT)
		n += snprintf(line + n, len - (size_t)n, " IDENT=%s", e->id);
	if (xf & XF_SOURCE)
		snprintf(line + n, len - (size_t)n, " SOURCE=REMOTE");
}

/*
 * xforward_reply - 0: accepted, or refused and the transaction goes on
 * without it (warned once: XFORWARD is not sent again on this
 * connection); 1: 421, every recipient deferred, nothing more to read.
 */
static int
xforward_reply(struct txn *x, const struct reply *r)
{
	struct conn *c = x->c;

	if (r->code / 100 == 2)
		return 0;
	if (r->code == 421) {
		c->broken = 1;
		x->stop = 1;
		undecided_from(x->d, R_DEFER, r, c->peer, "XFORWARD");
		return 1;
	}
	log_warn_as(c->ident, "%s: %s refused XFORWARD: %d %s%s%s; going on "
	    "without it on this connection", x->d->env->id, c->peer, r->code, r->dsn,
	    r->dsn[0] ? " " : "", r->text);
	c->xforward = 0;
	return 0;
}

/*
 * xforward - tell the backend who the client was, when it listens:
 * smtp_send_xforward_command is yes, the server offers ADDR and HELO
 * and has not refused XFORWARD on this connection. With PIPELINING the
 * command only waits in x->xf for the first group. 0 go on, 1 decided,
 * -1 I/O.
 */
static int
xforward(struct txn *x)
{
	struct conn *c = x->c;
	char line[SMTP_CMD_MAX];
	struct reply r;

	if (!x->cf->smtp_send_xforward_command ||
	    (c->xforward & (XF_ADDR | XF_HELO)) != (XF_ADDR | XF_HELO))
		return 0;
	xforward_line(x, line, sizeof(line));
	if (c->pipelining) {	/* sent ahead of MAIL, in its group */
		snprintf(x->xf, sizeof(x->xf), "%s\r\n", line);
		return 0;
	}
	c->stage = "performing the XFORWARD handshake";
	if (txn_command(x, x->cf->smtp_helo_timeout, &r, line) < 0)
		return -1;
	return xforward_reply(x, &r);
}

/* cmd_line - command j of the transaction (MAIL, RCPTs, DATA) + CRLF */
static int
cmd_line(const struct txn *x, size_t j, char *buf, size_t len)
{
	const struct envelope *e = x->d->env;
	char size[32] = "";
	int n;

	if (j == 0) {
		if (x->c->size)
			snprintf(size, sizeof(size), " SIZE=%lld", e->size);
		/* Without 8BITMIME an 8-bit message is sent all the same,
		 * without BODY=: what Postfix does by default. */
		n = snprintf(buf, len, "MAIL FROM:%s%s%s\r\n", e->sender, size,
		    e->body8 && x->c->eightbit ? " BODY=8BITMIME" : "");
	} else if (j <= x->d->n)
		n = snprintf(buf, len, "RCPT TO:%s\r\n",
		    e->rcpt[x->d->idx[j - 1]]);
	else
		n = snprintf(buf, len, "DATA\r\n");
	return n < 0 || (size_t)n >= len || n > SMTP_CMD_MAX ? -1 : n;
}

/* cmd_timeout - DATA waits smtp_data_done_timeout, the rest helo */
static long long
cmd_timeout(const struct txn *x, size_t j)
{
	return j > x->d->n ? x->cf->smtp_data_done_timeout :
	    x->cf->smtp_helo_timeout;
}

/* cmd_stage - what we are doing around command j, for the texts */
static const char *
cmd_stage(const struct txn *x, size_t j)
{
	return j == 0 ? "sending MAIL FROM" : j <= x->d->n ?
	    "sending RCPT TO" : "sending DATA command";
}

/* on_mail - a refused MAIL decides every recipient */
static void
on_mail(struct txn *x, const struct reply *r)
{
	if (r->code / 100 == 2)
		return;
	undecided_from(x->d, r->code >= 500 ? R_BOUNCE : R_DEFER, r,
	    x->c->peer, "MAIL FROM");
	x->stop = 1;
}

/* on_rcpt - accepted for now, or deferred or bounced for good */
static void
on_rcpt(struct txn *x, size_t i, const struct reply *r)
{
	if (x->stop)
		return;
	if (r->code / 100 == 2) {
		x->acc[i] = 1;
		x->nacc++;
		return;
	}
	from_reply(&x->d->res[i], r->code >= 500 ? R_BOUNCE : R_DEFER, r,
	    x->c->peer, "RCPT TO");
}

/* on_data - 354 means go; anything else decides the accepted ones */
static void
on_data(struct txn *x, const struct reply *r)
{
	if (r->code == 354 && !x->stop && x->nacc > 0) {
		x->data = 1;
		return;
	}
	if (r->code == 354) {
		/* No valid recipient, yet the server waits for a message:
		 * drop the connection rather than send anything. */
		log_warn_as(x->c->ident, "%s accepted DATA without a "
		    "valid recipient", x->c->peer);
		x->c->broken = 1;
		return;
	}
	if (!x->stop && x->nacc > 0)
		undecided_from(x->d, r->code >= 500 ? R_BOUNCE : R_DEFER, r,
		    x->c->peer, "DATA");
	x->stop = 1;
}

/* on_reply - the reply to command j; 1: it was 421, the last word */
static int
on_reply(struct txn *x, size_t j, const struct reply *r)
{
	if (r->code == 421) {
		/* The server is going away: nothing more will come. */
		x->c->broken = 1;
		undecided_from(x->d, R_DEFER, r, x->c->peer,
		    j == 0 ? "MAIL FROM" : j <= x->d->n ? "RCPT TO" : "DATA");
		x->stop = 1;
		return 1;
	}
	if (j == 0)
		on_mail(x, r);
	else if (j <= x->d->n)
		on_rcpt(x, j - 1, r);
	else
		on_data(x, r);
	return 0;
}

/* send_group - write commands from *j on: one, or up to SMTP_PIPE_MAX
 * with PIPELINING; *end is one past the last command written */
static int
send_group(struct txn *x, size_t j, size_t *end)
{
	static char out[(SMTP_PIPE_MAX + 1) * (SMTP_CMD_MAX + 3)];
	size_t len = 0, k, max = x->c->pipelining ? SMTP_PIPE_MAX : 1;
	int n;

	x->c->stage = cmd_stage(x, j);
	if (out_of_step(x))
		return -1;
	if (j == 0 && x->xf[0] != '\0') {
		len = strlen(x->xf);
		memcpy(out, x->xf, len);
	}
	for (k = j; k < x->d->n + 2 && k - j < max; k++) {
		if ((n = cmd_line(x, k, out + len, sizeof(out) - len)) < 0)
			break;
		len += (size_t)n;
	}
	*end = k;
	x->sent += k - j + (j == 0 && x->xf[0] != '\0');
	if (k == j || conn_write(x->c, out, len,
	    deadline_s(cmd_timeout(x, k - 1))) < 0) {
		x->c->broken = 1;
		return -1;
	}
	return 0;
}

/* read_group - the replies to the group sent, commands j to end (and
 * XFORWARD's first when it led the group): all of them, whatever each
 * says, unless one is 421 */
static int
read_group(struct txn *x, size_t j, size_t end)
{
	struct reply r;

	if (j == 0 && x->xf[0] != '\0') {
		x->c->stage = "performing the XFORWARD handshake";
		if (next_reply(x, x->cf->smtp_helo_timeout, &r) < 0)
			return -1;
		if (xforward_reply(x, &r) != 0)
			return 0;
	}
	for (; j < end; j++) {
		x->c->stage = cmd_stage(x, j);
		if (next_reply(x, cmd_timeout(x, j), &r) < 0)
			return -1;
		if (on_reply(x, j, &r) != 0)
			return 0;
	}
	return 0;
}

/* envelope - MAIL, RCPTs and DATA (unless no RCPT was accepted) */
static int
envelope(struct txn *x)
{
	size_t next = 0, end, ncmd = x->d->n + 2;

	while (next < ncmd && !x->stop) {
		if (next == ncmd - 1 && x->nacc == 0)
			break;		/* no recipient: RSET, not DATA */
		if (send_group(x, next, &end) < 0 ||
		    read_group(x, next, end) < 0)
			return -1;
		next = end;
	}
	return 0;
}

/* body_write - the buffered message (x->o) to the server, before the
 * deadline */
static int
body_write(void *ctx, const char *p, size_t n)
{
	struct txn *x = ctx;

	return conn_write(x->c, p, n, x->deadline);
}

/* final_replies - the replies to ".": SMTP one for all, LMTP one per
 * accepted recipient, in order (one 421 is the last of them) */
static int
final_replies(struct txn *x)
{
	struct delivery *d = x->d;
	enum rstatus st;
	struct reply r;
	size_t i;

	for (i = 0; i < d->n && x->replies < x->sent; i++) {
		if (!x->acc[i])
			continue;
		if (next_reply(x, x->cf->smtp_data_done_timeout, &r) < 0)
			return -1;
		st = r.code / 100 == 2 ? R_SENT : r.code >= 500 ? R_BOUNCE :
		    R_DEFER;
		if (r.code == 421 || !x->c->lmtp) {
			x->c->broken |= r.code == 421;
			undecided_from(d, st, &r, x->c->peer, "end of DATA");
			return 0;
		}
		if (d->res[i].status == R_PENDING)
			from_reply(&d->res[i], st, &r, x->c->peer,
			    "end of DATA");
	}
	return 0;
}

/* message - the body after 354, dot-stuffed, then "." and the replies */
static int
message(struct txn *x)
{
	struct conn *c = x->c;
	int saved;

	c->stage = "sending message body";
	if (out_of_step(x))
		return -1;
	x->deadline = deadline_s(x->cf->smtp_data_done_timeout);
	spool_out_to(&x->o, body_write, x);
	if (msg_copy(x->d, MSG_SMTP, spool_out_put, &x->o) < 0) {
		if (errno == 0) {
			c->broken = 1;
			return -1;
		}
		/* Never send "." after a short read: drop the connection. */
		saved = errno;
		c->broken = 1;
		deliver_set(x->d, SET_UNDECIDED, R_DEFER, "4.3.0", "error reading the queue "
		    "file: %s", strerror(saved));
		return 0;
	}
	c->stage = "sending end of data -- message may be sent more than once";
	x->sent += c->lmtp ? x->nacc : 1;
	spool_put(&x->o, ".\r\n", 3);
	if (spool_flush(&x->o) < 0) {
		c->broken = 1;
		return -1;
	}
	return final_replies(x);
}

/* rset - end a transaction that did not reach the message */
static void
rset(struct txn *x)
{
	struct reply r;

	x->c->stage = "performing the RSET";
	if (txn_command(x, x->cf->smtp_helo_timeout, &r, "RSET") < 0 ||
	    r.code / 100 != 2)
		x->c->broken = 1;
}

/* transaction - one message: 0 (verdicts set) or -1 (I/O, see c->err) */
int
transaction(struct txn *x)
{
	const struct envelope *e = x->d->env;
	struct conn *c = x->c;
	int rc;

	if (c->size && c->size_max > 0 && e->size > c->size_max) {
		deliver_set(x->d, SET_UNDECIDED, R_BOUNCE, "5.3.4", "message size %lld "
		    "exceeds size limit %lld of server %s", e->size,
		    c->size_max, c->peer);
		return 0;
	}
	if ((rc = xforward(x)) != 0)
		return rc < 0 ? -1 : 0;
	if (envelope(x) < 0)
		return -1;
	if (x->data)
		return message(x);
	if (!c->broken)
		rset(x);
	return 0;
}
