/*
 * lines.c - the capped line reader of lines.h.
 *
 * TRUST: none in the bytes. A line is at most max bytes; a longer one
 * is reported (L_LONG) and skipped up to its LF without being kept;
 * reads stop at limit bytes, so a file that grows while it is read is
 * read only as far as it was when the caller looked.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lines.h"

/* lines_init - start reading fd */
void
lines_init(struct lines *l, int fd, size_t max, off_t limit)
{
	l->fd = fd;
	l->max = max < sizeof(l->buf) - 1 ? max : sizeof(l->buf) - 1;
	l->limit = limit;
	l->done = 0;
	l->start = l->end = 0;
	l->eof = l->skipping = 0;
}

/* fill - more bytes after what is kept: 0, or -1 */
static int
fill(struct lines *l)
{
	size_t want;
	ssize_t n;

	if (l->start > 0) {
		memmove(l->buf, l->buf + l->start, l->end - l->start);
		l->end -= l->start;
		l->start = 0;
	}
	want = sizeof(l->buf) - l->end;
	if (l->limit >= 0 && (off_t)want > l->limit - l->done)
		want = (size_t)(l->limit - l->done);
	if (want == 0) {
		l->eof = 1;
		return 0;
	}
	while ((n = read(l->fd, l->buf + l->end, want)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -1;
	if (n == 0)
		l->eof = 1;
	l->end += (size_t)n;
	l->done += n;
	return 0;
}

/* at_end - what is left when the bytes end */
static enum lstatus
at_end(struct lines *l, const char **p, size_t *n)
{
	int skipped = l->skipping;

	l->skipping = 0;
	if (l->start == l->end)
		return skipped ? L_LONG : L_END;
	*p = l->buf + l->start;
	*n = l->end - l->start;
	l->start = l->end;
	return skipped || *n > l->max ? L_LONG : L_PARTIAL;
}

/* lines_next - one line */
enum lstatus
lines_next(struct lines *l, const char **p, size_t *n)
{
	char *lf;

	for (;;) {
		lf = memchr(l->buf + l->start, '\n', l->end - l->start);
		if (lf != NULL) {
			*p = l->buf + l->start;
			*n = (size_t)(lf - *p);
			l->start = (size_t)(lf - l->buf) + 1;
			if (l->skipping || *n > l->max) {
				l->skipping = 0;
				return L_LONG;
			}
			return L_LINE;
		}
		if (l->end - l->start > l->max) {
			l->skipping = 1;	/* drop what is kept of it */
			l->start = l->end;
		}
		if (l->eof)
			return at_end(l, p, n);
		if (fill(l) < 0)
			return L_ERR;
	}
}

/* lines_digits - n digits at s, or -1 */
long
lines_digits(const char *s, size_t n)
{
	long v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}
