/*
 * spool.c - the spool file format: its writer and its reader.
 *
 * Where the files live, and how a file moves from tmp/ into new/: see
 * layout.h. The file name is the queue id.
 *
 * FORMAT, version 1: an envelope of LF-terminated records, a blank
 * line, then the message. Every record is a name, one space and a value
 * (the client record: two values, one space between), in this order,
 * each once except rcpt:
 *   SMAP 1                 magic and format version
 *   id 6921A4F30B1C21A2B   queue id, 1..31 uppercase hex digits
 *   arrival 1795412345.042 seconds since the epoch, optionally with
 *                          1..6 digits of a fraction (older files: none)
 *   client 192.0.2.1 4711  client address (or "unknown") and port
 *   helo mail.example      HELO/EHLO argument: printable ASCII, no space
 *   proto ESMTP            SMTP, ESMTP, or ESMTPS after STARTTLS
 *   tls TLSv1.3 CIPHER     optional: the protocol and cipher of STARTTLS
 *   ccert FP SUBJECT       optional: a client certificate that verified or
 *                          is listed in relay_clientcerts: its SHA-256
 *                          fingerprint and its subject, \xHH-escaped
 *   body 8BIT              7BIT, or 8BIT when BODY=8BITMIME was declared
 *                          or the message holds bytes above 127
 *   from <a@b.example>     sender path; "<>" is the null sender
 *   rcpt <c@d.example>     one record per recipient, at least one
 *   size 0000000000001234  16 decimal digits: bytes after the blank line
 * Values are non-empty printable ASCII without spaces; a record is at most
 * SPOOL_LINE_MAX bytes. Addresses obey addr.h. The message follows the
 * blank line: smap's Received: header, then the data as received after
 * dot-unstuffing, every line ended by CRLF (smap refuses bare CR and LF).
 *
 * TRUST: the writer trusts smap to pass validated values. The reader
 * trusts nothing: it checks every record and the total length, and
 * says why a file is refused.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "addr.h"
#include "layout.h"
#include "spool.h"

#define SIZE_DIGITS 16

/* spool_write - write everything or fail */
int
spool_write(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* spool_out_init - an empty buffer in front of fd */
void
spool_out_init(struct spool_out *o, int fd)
{
	o->fd = fd;
	o->err = 0;
	o->len = 0;
	o->sink = NULL;
	o->ctx = NULL;
}

/* spool_out_to - an empty buffer in front of sink */
void
spool_out_to(struct spool_out *o, int (*sink)(void *, const char *, size_t),
    void *ctx)
{
	spool_out_init(o, -1);
	o->sink = sink;
	o->ctx = ctx;
}

/* out_write - n bytes to the file or the sink; keeps the first error */
static void
out_write(struct spool_out *o, const char *p, size_t n)
{
	if (o->sink == NULL ? spool_write(o->fd, p, n) < 0 :
	    o->sink(o->ctx, p, n) < 0)
		o->err = errno != 0 ? errno : EIO;
}

/* spool_put - buffer n bytes; after an error, only count them */
void
spool_put(struct spool_out *o, const char *p, size_t n)
{
	if (o->err)
		return;
	if (o->len + n > sizeof(o->buf) && spool_flush(o) < 0)
		return;
	if (n > sizeof(o->buf)) {
		out_write(o, p, n);
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

/* spool_out_put - spool_put as a put(ctx, p, n) callback */
int
spool_out_put(void *o, const char *p, size_t n)
{
	spool_put(o, p, n);
	return ((struct spool_out *)o)->err ? -1 : 0;
}

/* spool_flush - write the buffer out */
int
spool_flush(struct spool_out *o)
{
	if (!o->err && o->len > 0)
		out_write(o, o->buf, o->len);
	o->len = 0;
	return o->err ? -1 : 0;
}

/* spool_write_envelope - the records and the blank line */
int
spool_write_envelope(int fd, struct envelope *e)
{
	char head[SPOOL_LINE_MAX * 8];
	size_t i;
	int n;

	n = snprintf(head, sizeof(head), "%s %d\nid %s\narrival %lld.%06ld\n"
	    "client %s %u\nhelo %s\nproto %s\n%s%s%s%s%s%sbody ", SPOOL_MAGIC,
	    SPOOL_VERSION, e->id, e->arrival, e->arrival_us, e->client, e->port,
	    e->helo,
	    e->proto, e->tls[0] ? "tls " : "", e->tls, e->tls[0] ? "\n" : "",
	    e->ccert[0] ? "ccert " : "", e->ccert, e->ccert[0] ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		errno = EINVAL;
		return -1;
	}
	e->body_flag_offset = n;
	n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\nfrom %s\n",
	    e->body8 ? "8BIT" : "7BIT", e->sender);
	if ((size_t)n >= sizeof(head) || spool_write(fd, head, (size_t)n) < 0)
		return -1;
	e->size_offset = n;
	for (i = 0; i < e->nrcpt; i++) {
		n = snprintf(head, sizeof(head), "rcpt %s\n", e->rcpt[i]);
		if (n < 0 || (size_t)n >= sizeof(head) ||
		    spool_write(fd, head, (size_t)n) < 0)
			return -1;
		e->size_offset += n;
	}
	e->size_offset += 5;	/* "size " */
	/* Until spool_write_final(): a size no file has, so that no prefix
	 * of the file a crash may leave (spool_fsync = file) ever parses. */
	n = snprintf(head, sizeof(head), "size %.*s\n\n", SIZE_DIGITS,
	    "9999999999999999");
	return spool_write(fd, head, (size_t)n);
}

/* spool_write_final - fill in the body flag and the size */
int
spool_write_final(int fd, const struct envelope *e)
{
	char digits[SIZE_DIGITS + 1];

	snprintf(digits, sizeof(digits), "%0*lld", SIZE_DIGITS, e->size);
	if (pwrite(fd, e->body8 ? "8" : "7", 1, e->body_flag_offset) != 1 ||
	    pwrite(fd, digits, SIZE_DIGITS, e->size_offset) != SIZE_DIGITS)
		return -1;
	return 0;
}

/* A small buffered reader over a hostile file. */
struct rd {
	int fd;
	const char *broken;	/* why rd_line failed: NUL, CR, too long, cut */
	size_t len, pos;
	off_t off;		/* bytes consumed so far */
	char buf[4096];
};

/* rd_line - next record without its LF; refuses NUL, CR, overlong */
static int
rd_line(struct rd *r, char *line, size_t cap, const char **why)
{
	size_t n = 0;
	ssize_t got;
	char c;

	for (;;) {
		if (r->pos == r->len) {
			got = read(r->fd, r->buf, sizeof(r->buf));
			if (got <= 0) {
				*why = got < 0 ? "read error" : "truncated envelope";
				r->broken = *why;
				return -1;
			}
			r->len = (size_t)got;
			r->pos = 0;
		}
		c = r->buf[r->pos++];
		r->off++;
		if (c == '\n')
			break;
		if (c == '\0' || c == '\r' || n + 1 >= cap) {
			*why = c == '\0' ? "NUL in envelope" : c == '\r' ?
			    "CR in envelope" : "envelope record too long";
			r->broken = *why;
			return -1;
		}
		line[n++] = c;
	}
	line[n] = '\0';
	return 0;
}

/* spool_token_ok - printable ASCII, no spaces, not empty, at most max */
int
spool_token_ok(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return 0;
	return n > 0 && n <= max;
}

/* number_ok - decimal digits only, at most max digits */
static int
number_ok(const char *s, size_t max, long long *out)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!isdigit((unsigned char)s[n]))
			return 0;
	if (n == 0 || n > max)
		return 0;
	errno = 0;
	*out = strtoll(s, NULL, 10);
	return errno == 0;
}

/* record - read "name value"; value must be a token */
static int
record(struct rd *r, const char *name, char *val, size_t cap, const char **why)
{
	char line[SPOOL_LINE_MAX] = "";
	size_t nl = strlen(name);

	if (rd_line(r, line, sizeof(line), why) < 0)
		return -1;
	if (strncmp(line, name, nl) != 0 || line[nl] != ' ') {
		*why = "unexpected envelope record";
		return -1;
	}
	if (!spool_token_ok(line + nl + 1, cap - 1)) {
		*why = "bad envelope value";
		return -1;
	}
	memcpy(val, line + nl + 1, strlen(line + nl + 1) + 1);
	return 0;
}

/* client_ok - "addr port": a numeric address or "unknown", a port */
static int
client_ok(char *val, struct envelope *e)
{
	unsigned char bin[16];
	char *sp = strchr(val, ' ');
	long long port;

	if (sp == NULL || (size_t)(sp - val) >= sizeof(e->client))
		return 0;
	*sp = '\0';
	if (!number_ok(sp + 1, 5, &port) || port > 65535)
		return 0;
	if (strcmp(val, "unknown") != 0 && inet_pton(AF_INET, val, bin) != 1 &&
	    inet_pton(AF_INET6, val, bin) != 1)
		return 0;
	memcpy(e->client, val, (size_t)(sp - val) + 1);
	e->port = (unsigned)port;
	return 1;
}

/* arrival_ok - seconds, and optionally "." and 1..6 digits of a fraction */
static int
arrival_ok(char *v, struct envelope *e)
{
	char *dot = strchr(v, '.');
	long long us = 0;
	size_t n;

	if (dot != NULL) {
		*dot++ = '\0';
		if ((n = strlen(dot)) == 0 || n > 6 || !number_ok(dot, 6, &us))
			return 0;
		while (n++ < 6)
			us *= 10;
	}
	e->arrival_us = (long)us;
	return number_ok(v, 19, &e->arrival);
}

/* pair_ok - "A B": two tokens, A shorter than alen; copied into out */
static int
pair_ok(const char *val, char *out, size_t len, size_t alen)
{
	const char *sp = strchr(val, ' ');
	char a[SPOOL_LINE_MAX];

	if (sp == NULL || (size_t)(sp - val) >= alen || strlen(val) >= len)
		return 0;
	memcpy(a, val, (size_t)(sp - val));
	a[sp - val] = '\0';
	if (!spool_token_ok(a, alen) || !spool_token_ok(sp + 1, len))
		return 0;
	memcpy(out, val, strlen(val) + 1);
	return 1;
}

/* fail - set the reason and return -1 */
static int
fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

/* read_head - the records from the magic through "body" */
static int
read_head(struct rd *r, struct envelope *e, const char **why)
{
	char v[SPOOL_LINE_MAX];

	if (rd_line(r, v, sizeof(v), why) < 0)
		return -1;
	if (strcmp(v, SPOOL_MAGIC " 1") != 0)
		return fail(why, "not a version 1 spool file");
	e->version = SPOOL_VERSION;
	if (record(r, "id", e->id, sizeof(e->id), why) < 0 || !qid_ok(e->id))
		return fail(why, "bad id record");
	if (record(r, "arrival", v, 30, why) < 0 || !arrival_ok(v, e))
		return fail(why, "bad arrival record");
	if (rd_line(r, v, sizeof(v), why) < 0 || strncmp(v, "client ", 7) != 0 ||
	    !client_ok(v + 7, e))
		return fail(why, "bad client record");
	if (record(r, "helo", e->helo, sizeof(e->helo), why) < 0)
		return fail(why, "bad helo record");
	if (record(r, "proto", e->proto, sizeof(e->proto), why) < 0 ||
	    (strcmp(e->proto, "SMTP") != 0 && strcmp(e->proto, "ESMTP") != 0 &&
	    strcmp(e->proto, "ESMTPS") != 0))
		return fail(why, "bad proto record");
	if (rd_line(r, v, sizeof(v), why) < 0)
		return -1;
	if (strncmp(v, "tls ", 4) == 0 && (!pair_ok(v + 4, e->tls, sizeof(e->tls),
	    sizeof(e->tls)) || rd_line(r, v, sizeof(v), why) < 0))
		return fail(why, "bad tls record");
	if (strncmp(v, "ccert ", 6) == 0 && (!pair_ok(v + 6, e->ccert,
	    sizeof(e->ccert), TLS_FP_LEN) || rd_line(r, v, sizeof(v), why) < 0))
		return fail(why, "bad ccert record");
	if ((strcmp(v, "body 7BIT") != 0 && strcmp(v, "body 8BIT") != 0))
		return fail(why, "bad body record");
	v[0] = v[5];
	e->body8 = v[0] == '8';
	return 0;
}

/* add_rcpt - append a checked recipient */
static int
add_rcpt(struct envelope *e, const char *path, size_t max, const char **why)
{
	struct addr a;
	char **v;

	if (addr_check_stored(path, ADDR_RECIPIENT, &a, why) < 0)
		return -1;
	if (e->nrcpt >= max)
		return fail(why, "too many recipients");
	if ((v = realloc(e->rcpt, (e->nrcpt + 1) * sizeof(*v))) == NULL)
		return fail(why, "out of memory");
	e->rcpt = v;
	if ((v[e->nrcpt] = strdup(path)) == NULL)
		return fail(why, "out of memory");
	e->nrcpt++;
	return 0;
}

/* read_tail - from, the recipients, size and the blank line */
static int
read_tail(struct rd *r, struct envelope *e, size_t max, const char **why)
{
	char v[SPOOL_LINE_MAX];
	struct addr a;

	if (record(r, "from", e->sender, sizeof(e->sender), why) < 0 ||
	    addr_check_stored(e->sender, ADDR_SENDER, &a, why) < 0)
		return fail(why, "bad from record");
	for (;;) {
		if (rd_line(r, v, sizeof(v), why) < 0)
			return -1;
		if (strncmp(v, "size ", 5) == 0)
			break;
		if (strncmp(v, "rcpt ", 5) != 0)
			return fail(why, "unexpected envelope record");
		if (add_rcpt(e, v + 5, max, why) < 0)
			return -1;
	}
	if (e->nrcpt == 0)
		return fail(why, "no recipients");
	if (strlen(v + 5) != SIZE_DIGITS || !number_ok(v + 5, SIZE_DIGITS, &e->size))
		return fail(why, "bad size record");
	if (rd_line(r, v, sizeof(v), why) < 0 || v[0] != '\0')
		return fail(why, "envelope not ended by a blank line");
	e->body_offset = r->off;
	return 0;
}

/* spool_read_envelope - parse and check a hostile spool file */
int
spool_read_envelope(int fd, struct envelope *e, size_t max_rcpt,
    char *why, size_t whylen)
{
	struct rd *r;
	struct stat st;
	const char *reason = "out of memory", *bytes = NULL;
	int rc = -1;

	memset(e, 0, sizeof(*e));
	if ((r = calloc(1, sizeof(*r))) != NULL) {
		r->fd = fd;
		if (read_head(r, e, &reason) == 0 &&
		    read_tail(r, e, max_rcpt, &reason) == 0) {
			if (fstat(fd, &st) < 0)
				reason = "cannot stat";
			else if (st.st_size != e->body_offset + e->size)
				reason = "file length does not match its size record";
			else
				rc = 0;
		}
		bytes = r->broken;
		free(r);
	}
	if (rc < 0) {
		/* Name the record, and what was wrong with its bytes if that was it. */
		if (bytes != NULL && bytes != reason)
			snprintf(why, whylen, "%s: %s", reason, bytes);
		else
			snprintf(why, whylen, "%s", reason);
		spool_free_envelope(e);
	}
	return rc;
}

/* spool_free_envelope - release the recipient list */
void
spool_free_envelope(struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		free(e->rcpt[i]);
	free(e->rcpt);
	e->rcpt = NULL;
	e->nrcpt = 0;
}
