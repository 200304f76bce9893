/*
 * data.c - DATA: receive one message into the spool, or refuse it.
 *
 * Trusts nothing from the client. Only CRLF ends a line and only
 * CRLF "." CRLF ends the data. A bare CR or bare LF anywhere in the
 * data is not a line end; the message is then refused with 554 5.6.0
 * once the real end arrives, so nothing another MTA could read as the
 * end of data is ever stored or passed on. A line starting with "." is
 * unstuffed. Size, hop count and write errors are all judged at the
 * end, after the rest of the data has been read, so the session stays
 * in step. 250 is sent only after layout_commit() made the file durable.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "layout.h"
#include "log.h"
#include "session.h"
#include "spool.h"

struct msg {
	struct envelope env;
	int bare, toobig, in_headers, hops;
	long long limit;	/* message_size_limit */
	long long data;		/* message bytes after unstuffing */
	long long total;	/* bytes after the envelope: header and data */
	size_t plen;		/* bytes of prefix[] filled for this line */
	char prefix[9];		/* start of the current header line */
	struct spool_out o;	/* last (a 64 KiB buffer); o.err: first errno */
};

/* out - bytes for the spool file, counted even after a write error */
static void
out(struct msg *m, const char *p, size_t n)
{
	m->total += (long long)n;
	spool_put(&m->o, p, n);
}

/* received - smap's own trace header, first in the message */
static void
received(struct session *s, struct msg *m)
{
	char line[1024], date[64], forpart[ADDR_PATH_MAX + 16] = "", tls[200] = "";
	time_t now = (time_t)m->env.arrival;
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (s->nrcpt == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor %s", s->rcpt[0]);
	if (s->tls_info[0])
		snprintf(tls, sizeof(tls), "\t(using %s)\r\n", s->tls_info);
	n = snprintf(line, sizeof(line), "Received: from %s (unknown [%s])\r\n"
	    "%s\tby %s with %s id %s%s; %s\r\n", s->helo, s->peer.addr, tls,
	    s->cf->myhostname, m->env.proto, s->id, forpart, date);
	if (n > 0 && (size_t)n < sizeof(line))
		out(m, line, (size_t)n);
	else
		m->o.err = EINVAL;
}

/* open_spool - the temp file and its envelope; -1 after a reply */
static int
open_spool(struct session *s, struct msg *m)
{
	struct envelope *e = &m->env;

	e->arrival = time(NULL);
	snprintf(e->client, sizeof(e->client), "%s", s->peer.addr);
	e->port = s->peer.port;
	snprintf(e->helo, sizeof(e->helo), "%s", s->helo);
	snprintf(e->proto, sizeof(e->proto), "%s", !s->esmtp ? "SMTP" :
	    s->io.ssl ? "ESMTPS" : "ESMTP");
	snprintf(e->tls, sizeof(e->tls), "%s", s->tls_info);
	snprintf(e->ccert, sizeof(e->ccert), "%s", s->ccert);
	snprintf(e->sender, sizeof(e->sender), "%s", s->sender);
	e->body8 = s->body8;
	e->rcpt = s->rcpt;
	e->nrcpt = s->nrcpt;
	spool_out_init(&m->o, layout_create(s->id, sizeof(s->id)));
	if (m->o.fd >= 0)
		snprintf(e->id, sizeof(e->id), "%s", s->id);
	if (m->o.fd < 0 || spool_write_envelope(m->o.fd, e) < 0) {
		m->o.err = errno;
		return -1;
	}
	received(s, m);
	return 0;
}

/* headers - count Received: lines until the empty line ends the header */
static void
headers(struct msg *m, const char *p, size_t n, int bol, int eol)
{
	if (bol)
		m->plen = 0;
	if (bol && n == 0 && eol) {
		m->in_headers = 0;
		return;
	}
	while (m->plen < sizeof(m->prefix) && n-- > 0) {
		m->prefix[m->plen++] = *p++;
		if (m->plen == sizeof(m->prefix) &&
		    strncasecmp(m->prefix, "Received:", sizeof(m->prefix)) == 0)
			m->hops++;
	}
}

/* chunk - one piece of data; returns 1 at the end of the data */
static int
chunk(struct msg *m, const char *p, size_t n, int *bol)
{
	int eol = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
	size_t text;

	if (*bol && n == 3 && memcmp(p, ".\r\n", 3) == 0)
		return 1;
	if (*bol && p[0] == '.') {
		p++;	/* dot-unstuffing */
		n--;
	}
	text = eol ? n - 2 : n;
	if (memchr(p, '\r', text) != NULL || memchr(p, '\n', text) != NULL)
		m->bare = 1;
	if (m->in_headers)
		headers(m, p, text, *bol, eol);
	if (!m->env.body8)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] & 0x80) {
				m->env.body8 = 1;
				break;
			}
	m->data += (long long)n;
	if (m->data > m->limit)
		m->toobig = 1;
	if (!m->bare && !m->toobig)
		out(m, p, n);
	*bol = eol;
	return 0;
}

/* finish - flush, fill in the envelope, commit; 0 when durable */
static int
finish(struct msg *m)
{
	int fd = m->o.fd, bad = spool_flush(&m->o);

	m->o.fd = -1;
	m->env.size = m->total;
	if (bad < 0 || spool_write_final(fd, &m->env) < 0) {
		m->o.err = m->o.err ? m->o.err : errno;
		layout_abort(fd, m->env.id);
		return -1;
	}
	if (layout_commit(fd, m->env.id) < 0) {
		m->o.err = errno;
		layout_abort(-1, m->env.id);
		return -1;
	}
	return 0;
}

/* storage_reply - 452 when the disk is full, 451 for other failures */
static void
storage_reply(struct session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else
		session_reply(s, "451 4.3.0 Error: queue file write error");
	log_warn("%s: queue file write error: %s", s->id, strerror(err));
}

/* verdict - the reply to the end of the data */
static void
verdict(struct session *s, struct msg *m)
{
	if (m->bare)
		session_reply(s, "554 5.6.0 Error: bare CR or LF in message");
	else if (m->toobig)
		session_reply(s, "552 5.3.4 Error: message file too big");
	else if (m->hops > s->cf->hopcount_limit)
		session_reply(s, "554 5.4.6 Error: too many hops");
	if (m->bare || m->toobig || m->hops > s->cf->hopcount_limit) {
		layout_abort(m->o.fd, m->env.id);
		m->o.fd = -1;
		session_reject_log(s, "END-OF-MESSAGE", NULL, 0);
	} else if (finish(m) < 0) {
		storage_reply(s, m->o.err);
	} else {
		session_reply(s, "250 2.0.0 Ok: queued as %s", s->id);
		log_info("%s: from=%s, size=%lld, nrcpt=%zu (queue new)", s->id,
		    s->sender, m->total, s->nrcpt);
	}
}

/* swallow - read to the end of the data; 0, or -1 when the client is gone */
static int
swallow(struct session *s, struct msg *m)
{
	const char *p;
	size_t n;
	int bol = 1;

	for (;;) {
		if (io_getchunk(&s->io, bol, &p, &n) != IO_OK)
			return -1;
		if (chunk(m, p, n, &bol))
			return 0;
	}
}

/* data_receive - 354, the message, the verdict */
void
data_receive(struct session *s)
{
	static struct msg m;

	memset(&m, 0, offsetof(struct msg, o));	/* open_spool() sets o */
	m.in_headers = 1;
	m.limit = s->cf->message_size_limit;
	if (open_spool(s, &m) < 0) {
		if (m.o.fd >= 0)
			layout_abort(m.o.fd, s->id);
		storage_reply(s, m.o.err);
		session_reset(s);
		return;
	}
	io_reply(&s->io, "354 End data with <CR><LF>.<CR><LF>");
	s->got_354 = 1;
	s->verb = "DATA";
	if (swallow(s, &m) < 0) {
		layout_abort(m.o.fd, m.env.id);
		if (s->io.err == IO_TIMEOUT)
			session_close(s, "timeout", "421 4.4.2 %s Error: timeout "
			    "exceeded", s->cf->myhostname);
		else
			log_info("lost connection after DATA from unknown[%s]",
			    s->peer.addr);
		s->quit = 1;
		return;
	}
	s->verb = "END-OF-MESSAGE";
	verdict(s, &m);
	session_reset(s);
}
