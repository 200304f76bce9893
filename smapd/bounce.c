/*
 * bounce.c - compose a multipart/report DSN (RFC 3462/3464) and queue it.
 *
 * Trusts the envelope and state (already checked); the original headers
 * come from the spool file and are copied with a byte cap and with
 * canonical CRLF line ends, never interpreted.
 *
 * BODY TYPE: a DSN declares what it contains, not what the original
 * declared. It returns the original's header only (its third part,
 * text/rfc822-headers), so the original's body, 8-bit or not, is never
 * in it; but a header with 8-bit bytes (a raw "Subject: caf\xc3\xa9")
 * is copied as it is. When any byte of the DSN is above 127 it is
 * queued as 8BIT, so that the SMTP and LMTP transports send it with
 * BODY=8BITMIME (RFC 6152: the parameter describes the content being
 * sent), and that part says "Content-Transfer-Encoding: 8bit" (RFC 2045
 * 6.1: the default is 7bit). A DSN of pure ASCII stays 7BIT even when
 * the original was 8BIT: declaring 8-bit content that is not there
 * would be false, and keeps the DSN from next hops without 8BITMIME
 * for nothing. Everything else in it is ASCII (addresses, status codes,
 * the backend's words as printable ASCII).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "addr.h"
#include "bounce.h"

#define HEADERS_MAX 65536	/* of the original message, attached */

/* Text of the DSN being built. */
struct text {
	char *p;
	size_t n, cap;
	int failed;
};

/* add - append formatted text */
static void __attribute__((format(printf, 2, 3)))
add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if ((size_t)n < t->cap - t->n)
			break;
		t->cap = (t->cap + (size_t)n) * 2;
		if ((t->p = realloc(t->p, t->cap)) == NULL) {
			t->failed = 1;
			return;
		}
	}
	t->n += (size_t)n;
}

/* headers - the original header section, CRLF line ends, capped */
static void
headers(struct text *t, const struct envelope *e, int fd)
{
	char buf[HEADERS_MAX];
	size_t len = e->size < HEADERS_MAX ? (size_t)e->size : HEADERS_MAX;
	ssize_t got = pread(fd, buf, len, e->body_offset);
	size_t i, start = 0;

	for (i = 0; got > 0 && i < (size_t)got; i++) {
		if (buf[i] != '\n')
			continue;
		if (i == start || (i == start + 1 && buf[start] == '\r'))
			break;	/* the empty line: end of the header */
		add(t, "%.*s\r\n", (int)(i - start - (buf[i - 1] == '\r')),
		    buf + start);
		start = i + 1;
	}
}

/* eightbit - does t hold a byte above 127? */
static int
eightbit(const struct text *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if ((unsigned char)t->p[i] > 127)
			return 1;
	return 0;
}

/* rfc5322_date - "Mon, 23 Nov 2026 05:07:15 +0000" */
static void
rfc5322_date(long long when, char *buf, size_t len)
{
	time_t t = (time_t)when;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* listed - is recipient i part of this report? */
static int
listed(const struct state *st, size_t i, int delay)
{
	if (delay)
		return st->r[i].status == R_PENDING;
	return st->r[i].status == R_BOUNCE && !st->r[i].notified;
}

/* attach - the last part: the original header (read into h) */
static void
attach(struct text *t, struct text *h, const struct conf *cf,
    const struct envelope *e, int fd, const char *id)
{
	headers(h, e, fd);
	t->failed |= h->failed;
	add(t, "\r\n--%s/%s\r\nContent-Description: Undelivered Message Headers"
	    "\r\nContent-Type: text/rfc822-headers\r\n%s\r\n%s", id,
	    cf->myhostname, eightbit(h) ? "Content-Transfer-Encoding: 8bit\r\n" :
	    "", h->n > 0 ? h->p : "");
	add(t, "\r\n--%s/%s--\r\n", id, cf->myhostname);
}

/* compose - the whole DSN message: failures, or (delay) a warning; h
 * gets the original header on the way */
static void
compose(struct text *t, struct text *h, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, const char *id,
    int delay)
{
	char date[64], arrived[64], a[ADDR_PATH_MAX + 1];
	size_t i;

	rfc5322_date((long long)time(NULL), date, sizeof(date));
	rfc5322_date(e->arrival, arrived, sizeof(arrived));
	add(t, "Date: %s\r\nFrom: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
	    "To: %s\r\nSubject: %s\r\n"
	    "Auto-Submitted: auto-replied\r\nMessage-ID: <%s.dsn@%s>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s/%s\"\r\n\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n", date, cf->myhostname,
	    e->sender, delay ? "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender", id, cf->myhostname, id,
	    cf->myhostname);
	add(t, "--%s/%s\r\nContent-Description: Notification\r\nContent-Type: "
	    "text/plain; charset=us-ascii\r\n\r\nThis is the mail system at host "
	    "%s.\r\n\r\nYour message of %s %s.\r\n"
	    "Its header is attached.\r\n\r\n", id, cf->myhostname,
	    cf->myhostname, arrived, delay ? "has not yet been delivered to "
	    "the recipients below;\r\ndelivery is still being retried" :
	    "could not be delivered to the recipients below");
	for (i = 0; i < st->n; i++)
		if (listed(st, i, delay))
			add(t, "%s: %s\r\n", e->rcpt[i], st->r[i].text);
	add(t, "\r\n--%s/%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; %s"
	    "\r\nX-Smap-Queue-ID: %s\r\nArrival-Date: %s\r\n", id, cf->myhostname,
	    cf->myhostname, e->id, arrived);
	for (i = 0; i < st->n; i++)
		if (listed(st, i, delay))
			add(t, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\n"
			    "Status: %s\r\nDiagnostic-Code: smtp; %s\r\n",
			    addr_bare(a, sizeof(a), e->rcpt[i]), delay ? "delayed" : "failed",
			    st->r[i].dsn[0] ? st->r[i].dsn : "4.0.0", st->r[i].text);
	attach(t, h, cf, e, fd, id);
}

/* report - compose and commit a DSN as a new spool file */
static int
report(const struct spooldirs *d, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, char *id,
    size_t idlen, int delay)
{
	struct envelope b;
	struct text t = { NULL, 0, 0, 0 }, h = { NULL, 0, 0, 0 };
	char *rcpt[1];
	int out, rc = -1;

	memset(&b, 0, sizeof(b));
	qid_make(id, idlen);
	if ((out = layout_create_own(d, L_QUEUE, id)) < 0)
		return -1;
	compose(&t, &h, cf, e, fd, st, id, delay);
	snprintf(b.id, sizeof(b.id), "%s", id);
	b.arrival = (long long)time(NULL);
	snprintf(b.client, sizeof(b.client), "unknown");
	snprintf(b.helo, sizeof(b.helo), "%s", cf->myhostname);
	snprintf(b.proto, sizeof(b.proto), "ESMTP");
	snprintf(b.sender, sizeof(b.sender), "<>");
	rcpt[0] = (char *)e->sender;
	b.rcpt = rcpt;
	b.nrcpt = 1;
	b.size = (long long)t.n;
	b.body8 = eightbit(&t);
	if (!t.failed && spool_write_envelope(out, &b) == 0 &&
	    spool_write(out, t.p, t.n) == 0 && spool_write_final(out, &b) == 0 &&
	    fchmod(out, 0640) == 0) {
		rc = layout_publish(d, L_QUEUE, out, id, 0);
		out = -1;
	}
	if (out >= 0)
		layout_discard(d, L_QUEUE, out, id);
	free(t.p);
	free(h.p);
	return rc;
}

/* bounce_create - the failures of a message, to its sender */
int
bounce_create(const struct spooldirs *d, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, char *id,
    size_t idlen)
{
	return report(d, cf, e, fd, st, id, idlen, 0);
}

/* bounce_delay - a warning that a message is still queued */
int
bounce_delay(const struct spooldirs *d, const struct conf *cf,
    const struct envelope *e, int fd, const struct state *st, char *id,
    size_t idlen)
{
	return report(d, cf, e, fd, st, id, idlen, 1);
}
