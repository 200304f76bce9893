/*
 * submit_msg.c - reading a local program's message and building the
 * one smap gets (see submit_msg.h).
 *
 * HEADER: a header field is a line "name:" (name: printable ASCII but
 * ":", white space allowed before the colon) with its continuation
 * lines (starting with a space or a tab). The header section ends at
 * the first empty line, which is kept, or at the first line that is no
 * field, which begins the body (an empty line is put before it). A
 * first line "From " that is no field is an mbox separator and dropped.
 * Fields are copied as they are, but Bcc: and Resent-Bcc:, which are
 * dropped whether or not -t is given: a blind copy stays blind. So a
 * message whose header is cut short by a line that is no field, with a
 * Bcc: or Resent-Bcc: field after that line and before an empty one,
 * is refused: that field would be body text for every recipient.
 *
 * TRUST: the input is the caller's own and trusted to mean lines, not
 * to be small or well formed: every byte goes through mbuf_put(), which
 * stops at max; the header is scanned once, in place, with no memory
 * per field; address lists are read by submit_addr.c, bounded there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "submit_msg.h"

#define READ_CHUNK 65536

enum fkind { F_OTHER, F_TO, F_CC, F_BCC, F_RESENT_BCC, F_FROM, F_DATE,
	F_MSGID };

static const struct {
	const char *name;
	enum fkind kind;
} fields[] = {
	{ "To", F_TO }, { "Cc", F_CC }, { "Bcc", F_BCC },
	{ "Resent-Bcc", F_RESENT_BCC }, { "From", F_FROM },
	{ "Date", F_DATE }, { "Message-ID", F_MSGID },
};

/* The input's conversion to CRLF lines. */
struct conv {
	struct mbuf *out;
	int ignore_dots;
	int cr;			/* the last byte was a CR */
	int done;		/* a "." line ended the input */
	size_t col;		/* bytes of the current line so far */
};

/* mbuf_put - append, growing by doubling, never beyond max */
int
mbuf_put(struct mbuf *b, const char *s, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *p;

	if (n > b->max || b->len > b->max - n) {
		errno = EFBIG;
		return -1;
	}
	while (cap < b->len + n)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap != b->cap || b->p == NULL) {
		if ((p = realloc(b->p, cap)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

/* mbuf_free - the buffer's memory */
void
mbuf_free(struct mbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* line_end - a line ends: CRLF, or the input ends at a lone "." */
static int
line_end(struct conv *c)
{
	if (!c->ignore_dots && c->col == 1 && c->out->p[c->out->len - 1] == '.') {
		c->out->len--;
		c->done = 1;
		return 0;
	}
	c->col = 0;
	return mbuf_put(c->out, "\r\n", 2);
}

/* conv_byte - one byte of input */
static int
conv_byte(struct conv *c, char ch)
{
	if (c->cr) {
		c->cr = 0;
		if (line_end(c) < 0)
			return -1;
		if (ch == '\n' || c->done)
			return 0;
	}
	if (ch == '\r') {
		c->cr = 1;
		return 0;
	}
	if (ch == '\n')
		return line_end(c);
	c->col++;
	return mbuf_put(c->out, &ch, 1);
}

/* too_big - the reason for a failed mbuf_put() */
static int
too_big(const struct mbuf *b, char *why, size_t whylen)
{
	if (errno == ENOMEM) {
		snprintf(why, whylen, "out of memory");
		return EX_OSERR;
	}
	snprintf(why, whylen, "the message is larger than message_size_limit "
	    "(%zu bytes)", b->max);
	return EX_DATAERR;
}

/* msg_read - fd to its end, lines ending in CRLF */
int
msg_read(int fd, int ignore_dots, struct mbuf *out, char *why,
    size_t whylen)
{
	struct conv c = { out, ignore_dots, 0, 0, 0 };
	static char buf[READ_CHUNK];
	ssize_t n, i;

	while (!c.done && (n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "cannot read the message: %s",
			    strerror(errno));
			return EX_IOERR;
		}
		for (i = 0; i < n && !c.done; i++)
			if (conv_byte(&c, buf[i]) < 0)
				return too_big(out, why, whylen);
	}
	if (!c.done && (c.cr || c.col > 0) && line_end(&c) < 0)
		return too_big(out, why, whylen);
	return 0;
}

/* line_len - bytes of the line at off, its LF included */
static size_t
line_len(const struct mbuf *m, size_t off)
{
	const char *nl = memchr(m->p + off, '\n', m->len - off);

	return nl ? (size_t)(nl - (m->p + off)) + 1 : m->len - off;
}

/* field_name - length of the name when the line is a field, else 0 */
static size_t
field_name(const char *p, size_t n)
{
	size_t i = 0, name;

	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	name = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return name > 0 && i < n && p[i] == ':' ? name : 0;
}

/* field_end - offset after the field at off and its continuations */
static size_t
field_end(const struct mbuf *m, size_t off)
{
	off += line_len(m, off);
	while (off < m->len && (m->p[off] == ' ' || m->p[off] == '\t'))
		off += line_len(m, off);
	return off;
}

/* kind_of - what a field name means here */
static enum fkind
kind_of(const char *name, size_t n)
{
	size_t k;

	for (k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
		if (strlen(fields[k].name) == n &&
		    strncasecmp(fields[k].name, name, n) == 0)
			return fields[k].kind;
	return F_OTHER;
}

/* Which of the fields msg_build() may add were there. */
struct seen {
	int from, date, msgid;
};

/* one_field - note, read (-t) and copy one field (but Bcc:) */
static int
one_field(const char *p, size_t n, size_t name, const struct msg_ids *id,
    struct rcptset *rcpts, struct seen *seen, struct mbuf *out, char *why,
    size_t whylen)
{
	static const char *where[] = { "", "To:", "Cc:", "Bcc:" };
	enum fkind k = kind_of(p, name);
	const char *colon = memchr(p, ':', n);
	int rc;

	seen->from |= k == F_FROM;
	seen->date |= k == F_DATE;
	seen->msgid |= k == F_MSGID;
	if (rcpts != NULL && (k == F_TO || k == F_CC || k == F_BCC)) {
		rc = alist_add(rcpts, where[k], colon + 1,
		    n - (size_t)(colon + 1 - p), id->domain, why, whylen);
		if (rc < 0)
			return rc == -2 ? EX_OSERR : EX_DATAERR;
	}
	if (k == F_BCC || k == F_RESENT_BCC)
		return 0;
	return mbuf_put(out, p, n) < 0 ? too_big(out, why, whylen) : 0;
}

/* qchar - may byte c stand for itself in an RFC 2047 Q encoded word? */
static int
qchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!*+-/", c) != NULL;
}

/* qwords - a name with 8-bit bytes as RFC 2047 Q encoded words of at
 * most 75 bytes, each begun before a character's first byte */
static void
qwords(const char *s, size_t n, char *dst, size_t cap)
{
	size_t i, len = 0, start = 0;
	unsigned char c;

	dst[0] = '\0';
	for (i = 0; i < n && len + 20 < cap; i++) {
		c = (unsigned char)s[i];
		if (i == 0 || (len - start + 12 + 2 > 75 && (c & 0xc0) != 0x80)) {
			if (i > 0)
				len += (size_t)snprintf(dst + len, cap - len, "?= ");
			start = len;
			len += (size_t)snprintf(dst + len, cap - len, "=?UTF-8?Q?");
		}
		if (qchar(c))
			dst[len++] = (char)c;
		else if (c == ' ')
			dst[len++] = '_';
		else
			len += (size_t)snprintf(dst + len, cap - len, "=%02X", c);
	}
	if (n > 0)
		snprintf(dst + len, cap - len, "?=");
}

/* display_name - the From: display name: a quoted string, encoded words
 * when it has 8-bit bytes, "" when there is none; controls are spaces */
static void
display_name(const char *s, char *dst, size_t cap)
{
	char clean[FROM_NAME_MAX];
	size_t i, n, len = 0;
	int eight = 0;

	for (n = 0; n < sizeof(clean) && s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		clean[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
		eight |= c >= 0x80;
	}
	if (n == 0 || eight) {
		qwords(clean, n, dst, cap);
		return;
	}
	dst[len++] = '"';
	for (i = 0; i < n && len + 4 < cap; i++) {
		if (clean[i] == '"' || clean[i] == '\\')
			dst[len++] = '\\';
		dst[len++] = clean[i];
	}
	dst[len++] = '"';
	dst[len] = '\0';
}

/* put_line - one formatted header line into out; 0 or -1 */
static int
put_line(struct mbuf *out, const char *name, const char *value)
{
	char line[1200];
	int n = snprintf(line, sizeof(line), "%s: %s\r\n", name, value);

	if (n < 0 || (size_t)n >= sizeof(line)) {
		errno = EFBIG;
		return -1;
	}
	return mbuf_put(out, line, (size_t)n);
}

/* added - Date:, Message-ID: and From:, each unless it was there */
static int
added(const struct msg_ids *id, const struct seen *seen, struct mbuf *out)
{
	char v[1024], name[600], stamp[32];
	struct tm tm;

	if (!seen->date) {
		localtime_r(&id->now, &tm);
		strftime(v, sizeof(v), "%a, %d %b %Y %H:%M:%S %z", &tm);
		if (put_line(out, "Date", v) < 0)
			return -1;
	}
	if (!seen->msgid) {
		gmtime_r(&id->now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		snprintf(v, sizeof(v), "<%s.%016llx@%s>", stamp, id->unique,
		    id->domain);
		if (put_line(out, "Message-ID", v) < 0)
			return -1;
	}
	if (seen->from)
		return 0;
	display_name(id->from_name, name, sizeof(name));
	if (name[0] != '\0')
		snprintf(v, sizeof(v), "%s <%s>", name, id->from_addr);
	else
		snprintf(v, sizeof(v), "%s", id->from_addr);
	return put_line(out, "From", v);
}

/* bcc_after - the body begins at off with a line that is no field: is
 * there a Bcc: or Resent-Bcc: field before the first empty line? */
static int
bcc_after(const struct mbuf *in, size_t off)
{
	size_t n, name;
	enum fkind k;

	for (; off < in->len; off += n) {
		n = line_len(in, off);
		if (n == 2 && in->p[off] == '\r')
			return 0;
		if ((name = field_name(in->p + off, n)) == 0)
			continue;
		k = kind_of(in->p + off, name);
		if (k == F_BCC || k == F_RESENT_BCC)
			return 1;
	}
	return 0;
}

/* msg_build - the message smap gets */
int
msg_build(const struct mbuf *in, const struct msg_ids *id,
    struct rcptset *rcpts, struct mbuf *out, char *why, size_t whylen)
{
	struct seen seen = { 0, 0, 0 };
	size_t off = 0, end, name;
	int rc;

	if (in->len >= 5 && memcmp(in->p, "From ", 5) == 0 &&
	    field_name(in->p, line_len(in, 0)) == 0)
		off = line_len(in, 0);		/* an mbox "From " line */
	while (off < in->len) {
		if (in->len - off >= 2 && in->p[off] == '\r' &&
		    in->p[off + 1] == '\n') {
			off += 2;		/* the empty line */
			break;
		}
		if ((name = field_name(in->p + off, line_len(in, off))) == 0 &&
		    bcc_after(in, off)) {
			snprintf(why, whylen, "a line that is no header field "
			    "ends the header, and a Bcc: field after it would "
			    "be sent as text for every recipient to read");
			return EX_DATAERR;
		}
		if (name == 0)
			break;			/* the body's first line */
		end = field_end(in, off);
		if ((rc = one_field(in->p + off, end - off, name, id, rcpts,
		    &seen, out, why, whylen)) != 0)
			return rc;
		off = end;
	}
	if (added(id, &seen, out) < 0 || mbuf_put(out, "\r\n", 2) < 0 ||
	    (off < in->len && mbuf_put(out, in->p + off, in->len - off) < 0))
		return too_big(out, why, whylen);
	return 0;
}

/* msg_8bit - any byte outside ASCII? */
int
msg_8bit(const struct mbuf *m)
{
	size_t i;

	for (i = 0; i < m->len; i++)
		if ((unsigned char)m->p[i] >= 0x80)
			return 1;
	return 0;
}
