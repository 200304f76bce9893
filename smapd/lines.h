/*
 * lines.h - a line reader for files smapq reviews (journal days, logs):
 * every line capped, the bytes read optionally capped too, nothing
 * assumed about what the bytes are (lines.c); and the numbers of their
 * fixed-width fields.
 */
#ifndef SMAPD_LINES_H
#define SMAPD_LINES_H

#include <stddef.h>
#include <sys/types.h>

enum lstatus {
	L_ERR = -1,	/* read failed (errno) */
	L_END = 0,	/* no more */
	L_LINE,		/* one line, without its LF */
	L_LONG,		/* a line longer than max, skipped to its LF */
	L_PARTIAL	/* bytes at the end without a LF */
};

struct lines {
	int fd;
	size_t max;		/* longest line, without its LF */
	off_t limit;		/* bytes to read at most; -1: all */
	off_t done;
	size_t start, end;
	int eof, skipping;
	char buf[65536];
};

/* Read fd from its offset, lines of at most max (< sizeof buf) bytes,
 * limit bytes in all (-1: to the end). */
void lines_init(struct lines *l, int fd, size_t max, off_t limit);

/* The next line: *p and *n are set for L_LINE and L_PARTIAL. */
enum lstatus lines_next(struct lines *l, const char **p, size_t *n);

/* The n decimal digits at s (n <= 18) as a number, or -1 if one is
 * not a digit: for the fixed-width fields of a line. */
long lines_digits(const char *s, size_t n);

#endif
