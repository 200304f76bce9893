/*
 * transport.c - what every transport shares: parsing default_transport,
 * reading the message out of the spool file, setting results, the words
 * for them.
 *
 * Trusts the envelope (re-checked by spool_read_envelope) but reads the
 * message bytes with a hard bound: exactly env->size bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

const char *const status_names[R_RETURNED + 1] = { "pending", "sent",
	"deferred", "bounced", "returned" };

/* parse_port - digits 1..65535 */
static int
parse_port(const char *s, unsigned *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* parse_hostport - "[addr]:port", "[addr]", "host:port", "host" */
static int
parse_hostport(const char *s, struct transport *t)
{
	const char *end, *colon;
	size_t n;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		n = (size_t)(end - s - 1);
		t->literal = 1;
		colon = end[1] == ':' ? end + 1 : (end[1] ? NULL : end + 1);
		if (colon == NULL)
			return -1;
		s++;
	} else {
		colon = strrchr(s, ':');
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon == NULL)
			colon = s + n;
	}
	if (n == 0 || n >= sizeof(t->host) || (memchr(s, ':', n) && !t->literal))
		return -1;
	memcpy(t->host, s, n);
	t->host[n] = '\0';
	return *colon == ':' ? parse_port(colon + 1, &t->port) : 0;
}

/* transport_parse - default_transport into a struct transport */
int
transport_parse(const char *spec, struct transport *t, char *why, size_t len)
{
	memset(t, 0, sizeof(*t));
	if (strcmp(spec, "sendmail") == 0) {
		t->kind = T_SENDMAIL;
		return 0;
	}
	if (strncmp(spec, "maildir:", 8) == 0 && spec[8] == '/' &&
	    strlen(spec + 8) < sizeof(t->path)) {
		t->kind = T_MAILDIR;
		snprintf(t->path, sizeof(t->path), "%s", spec + 8);
		return 0;
	}
	if (strncmp(spec, "lmtp:unix:/", 11) == 0 &&
	    strlen(spec + 10) < sizeof(t->path)) {
		t->kind = T_LMTP;
		snprintf(t->path, sizeof(t->path), "%s", spec + 10);
		return 0;
	}
	t->kind = strncmp(spec, "lmtp:", 5) == 0 ? T_LMTP : T_SMTP;
	t->port = t->kind == T_LMTP ? 24 : 25;
	if ((strncmp(spec, "smtp:", 5) == 0 || t->kind == T_LMTP) &&
	    parse_hostport(spec + 5, t) == 0)
		return 0;
	snprintf(why, len, "default_transport: \"%s\" is not smtp:host[:port], "
	    "smtp:[address][:port], lmtp:..., lmtp:unix:/path, sendmail or "
	    "maildir:/path/", spec);
	return -1;
}

/* result_set - one recipient's verdict */
void
result_set(struct rcpt_result *r, enum rstatus st, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	r->status = st;
	snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* deliver_set - one verdict for every (or every undecided) recipient */
void
deliver_set(struct delivery *d, enum setwhich which, enum rstatus st,
    const char *dsn, const char *fmt, ...)
{
	char text[sizeof(d->res[0].text)];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (i = 0; i < d->n; i++)
		if (which == SET_ALL || d->res[i].status == R_PENDING)
			result_set(&d->res[i], st, dsn, "%s", text);
}

/* Output side of msg_copy: a buffer in front of put(). */
struct sink {
	int (*put)(void *, const char *, size_t);
	void *ctx;
	size_t n;
	int failed;
	char buf[16384];
};

/* emit - add bytes to the sink, flushing when full */
static void
emit(struct sink *k, const char *p, size_t n)
{
	if (k->failed)
		return;
	if (k->n + n > sizeof(k->buf)) {
		if (k->put(k->ctx, k->buf, k->n) < 0)
			k->failed = 1;
		k->n = 0;
	}
	memcpy(k->buf + k->n, p, n);
	k->n += n;
}

/* msg_copy - the message, with canonical line ends, to put() */
int
msg_copy(const struct delivery *d, enum msgform form,
    int (*put)(void *, const char *, size_t), void *ctx)
{
	static struct sink k;
	const char *eol = form == MSG_SMTP ? "\r\n" : "\n";
	size_t eoln = strlen(eol);
	char in[16384];
	long long left = d->env->size;
	off_t off = d->env->body_offset;
	int bol = 1, cr = 0;
	ssize_t got, i;

	memset(&k, 0, sizeof(k));
	k.put = put;
	k.ctx = ctx;
	while (left > 0 && !k.failed) {
		got = pread(d->fd, in, left < (long long)sizeof(in) ?
		    (size_t)left : sizeof(in), off);
		if (got <= 0) {
			errno = got == 0 ? EIO : errno;
			return -1;
		}
		left -= got;
		off += got;
		for (i = 0; i < got; i++) {
			char c = in[i];

			/* Only CRLF ends a stored line; a stray CR or LF in a
			 * hostile file becomes a line end too, never raw. */
			if (cr) {
				cr = 0;
				emit(&k, eol, eoln);
				bol = 1;
				if (c == '\n')
					continue;
			}
			if (c == '\r' || c == '\n') {
				cr = c == '\r';
				if (!cr) {
					emit(&k, eol, eoln);
					bol = 1;
				}
				continue;
			}
			if (bol && c == '.' && form == MSG_SMTP)
				emit(&k, ".", 1);
			bol = 0;
			emit(&k, &c, 1);
		}
	}
	if (cr || !bol)
		emit(&k, eol, eoln);
	if (!k.failed && k.n > 0 && put(ctx, k.buf, k.n) < 0)
		k.failed = 1;
	if (k.failed)
		errno = 0;
	return k.failed ? -1 : 0;
}
