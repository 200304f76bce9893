/*
 * reply.c - a strict, bounded parser for SMTP and LMTP server replies.
 *
 * GRAMMAR (RFC 5321 4.2, read strictly):
 *   reply = *( code "-" [ text ] CRLF ) code [ " " [ text ] ] CRLF
 *   code  = %x32-35 DIGIT DIGIT, the same on every line of one reply
 * Only CRLF ends a line: a bare LF, or a CR not followed by LF, is
 * garbage. A line is at most REPLY_LINE_MAX bytes with its CRLF, a
 * reply at most REPLY_LINES_MAX lines; each is garbage as soon as it
 * cannot be met any more (a line with no room left for its CRLF, a
 * continuation as line REPLY_LINES_MAX). The first line's text may
 * start with an enhanced status code (RFC 3463: class.subject.detail,
 * class 2, 4 or 5 and equal to the reply's first digit, subject and
 * detail 1-3 digits, then a space or the line end); it goes to r->dsn
 * and is taken off the front of every line that repeats it. Text bytes
 * outside printable ASCII become '?'. The lines' texts are joined by one
 * space and truncated at REPLY_TEXT_MAX - 1 bytes.
 *
 * TRUST: none. Every byte is counted and checked as it arrives, so a
 * hostile server costs at most one line buffer and a fixed-size reply.
 */
#include <string.h>

#include "reply.h"

/* reply_init - an empty parser, ready for the first byte of a reply */
void
reply_init(struct reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* bad - mark the parser as broken for good */
static int
bad(struct reply_parser *p)
{
	p->garbage = 1;
	return -1;
}

/* dsn_len - length of a class.subject.detail code at s, or 0 */
static int
dsn_len(const char *s, size_t n, int cls)
{
	size_t i = 2, part, digits;

	if ((cls != 2 && cls != 4 && cls != 5) || n < 5 ||
	    s[0] != '0' + cls || s[1] != '.')
		return 0;
	for (part = 0; part < 2; part++) {
		for (digits = 0; i < n && digits < 4 &&
		    s[i] >= '0' && s[i] <= '9'; digits++)
			i++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0 && (i >= n || s[i++] != '.'))
			return 0;
	}
	return i == n || s[i] == ' ' ? (int)i : 0;
}

/* strip_dsn - skip the reply's enhanced code (and a space) at *s */
static size_t
strip_dsn(const struct reply *r, const char **s, size_t n)
{
	size_t dn = strlen(r->dsn);

	if (dn == 0 || n < dn || memcmp(*s, r->dsn, dn) != 0 ||
	    (n > dn && (*s)[dn] != ' '))
		return n;
	dn += n > dn;
	*s += dn;
	return n - dn;
}

/* add_text - append one line's text, joined by a space, bounded */
static void
add_text(struct reply *r, const char *s, size_t n)
{
	size_t len = strlen(r->text), i;
	struct reply_line *l = &r->line[r->nlines];

	if (r->nlines > 0 && len + 1 < sizeof(r->text))
		r->text[len++] = ' ';
	l->off = (unsigned short)len;
	for (i = 0; i < n && len + 1 < sizeof(r->text); i++) {
		unsigned char c = (unsigned char)s[i];

		r->text[len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	l->len = (unsigned short)(len - l->off);
	r->text[len] = '\0';
	r->nlines++;
}

/* end_line - a complete line (CR dropped) is in p->buf; 1 if last */
static int
end_line(struct reply_parser *p, struct reply *r)
{
	struct reply *c = &p->cur;
	const char *s = p->buf;
	size_t n = p->linelen - 1;
	int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	int last = n == 3 || s[3] == ' ';
	int dn;

	p->linelen = 0;
	if (c->nlines > 0 && code != c->code)
		return bad(p);
	s += n > 3 ? 4 : 3;
	n -= n > 3 ? 4 : 3;
	if (c->nlines == 0) {
		c->code = code;
		if ((dn = dsn_len(s, n, code / 100)) > 0)
			memcpy(c->dsn, s, (size_t)dn);
	}
	n = strip_dsn(c, &s, n);
	add_text(c, s, n);
	if (!last)
		return c->nlines < REPLY_LINES_MAX ? 0 : bad(p);
	*r = *c;
	memset(c, 0, sizeof(*c));
	return 1;
}

/* take - one byte; -1 garbage, 0 more, 1 a reply is complete */
static int
take(struct reply_parser *p, char ch, struct reply *r)
{
	size_t i = p->linelen;

	if (ch == '\n') {
		if (i < 4 || p->buf[i - 1] != '\r')
			return bad(p);
		return end_line(p, r);
	}
	if (i > 0 && p->buf[i - 1] == '\r')
		return bad(p);		/* a CR not followed by LF */
	if (i + (ch == '\r' ? 1 : 2) >= REPLY_LINE_MAX)
		return bad(p);		/* no room left for CRLF */
	if ((i == 0 && (ch < '2' || ch > '5')) ||
	    ((i == 1 || i == 2) && (ch < '0' || ch > '9')) ||
	    (i == 3 && ch != ' ' && ch != '-' && ch != '\r'))
		return bad(p);
	p->buf[p->linelen++] = ch;
	return 0;
}

/* reply_parse - feed bytes; yield at most one complete reply */
int
reply_parse(struct reply_parser *p, const char *buf, size_t len,
    size_t *consumed, struct reply *r)
{
	size_t i;
	int rc = 0;

	*consumed = 0;
	if (p->garbage)
		return -1;
	for (i = 0; i < len && rc == 0; i++)
		rc = take(p, buf[i], r);
	*consumed = i;
	return rc;
}

/* reply_line - the text of line i */
const char *
reply_line(const struct reply *r, size_t i, size_t *len)
{
	if (i >= r->nlines) {
		*len = 0;
		return "";
	}
	*len = r->line[i].len;
	return r->text + r->line[i].off;
}
