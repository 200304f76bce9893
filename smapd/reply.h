/*
 * reply.h - a strict, bounded parser for SMTP and LMTP server replies.
 *
 * Pure: no I/O. The caller feeds bytes as they arrive, in any pieces;
 * the parser yields one complete reply at a time. It trusts nothing it
 * is fed: every line is capped, every reply is capped, and anything
 * that is not a well-formed reply (RFC 5321 4.2) ends the parse with
 * "garbage", which callers treat as a temporary protocol error.
 */
#ifndef SMAPD_REPLY_H
#define SMAPD_REPLY_H

#include <stddef.h>

#define REPLY_LINE_MAX	512	/* one line, including its CRLF */
#define REPLY_LINES_MAX	100	/* lines in one (multi-line) reply */
#define REPLY_TEXT_MAX	1024	/* joined text, including the NUL */

/* Where one line's text is within struct reply's text. */
struct reply_line {
	unsigned short off;
	unsigned short len;
};

struct reply {
	int code;			/* 200..599 */
	char dsn[16];			/* "5.1.1", or "" when none */
	char text[REPLY_TEXT_MAX];	/* the lines' texts joined by a
					 * space, printable ASCII, other
					 * bytes as '?'; truncated if long */
	size_t nlines;			/* lines in the reply */
	struct reply_line line[REPLY_LINES_MAX];	/* clamped to text */
};

struct reply_parser {
	int garbage;			/* sticky after a bad reply */
	size_t linelen;			/* bytes of the line so far */
	char buf[REPLY_LINE_MAX];	/* the line so far */
	struct reply cur;		/* the reply being built */
};

/* Start afresh (also after garbage). */
void reply_init(struct reply_parser *p);

/*
 * Feed len bytes of buf. Returns 1 when a reply is complete (copied to
 * *r), 0 when all bytes were taken and more are needed, -1 on garbage
 * (and on every later call until reply_init). *consumed says how many
 * bytes of buf were used; after 1, the caller feeds the rest again.
 */
int reply_parse(struct reply_parser *p, const char *buf, size_t len,
    size_t *consumed, struct reply *r);

/* The text of line i of r (not NUL-terminated), its length in *len. */
const char *reply_line(const struct reply *r, size_t i, size_t *len);

#endif
