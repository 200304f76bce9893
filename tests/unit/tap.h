/*
 * tap.h - a minimal TAP producer for the C unit tests (run under prove).
 */
#ifndef SMAP_TAP_H
#define SMAP_TAP_H

#include <stddef.h>

/* Record one test; prints "ok N - name" or "not ok N - name". Returns cond. */
int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Compare two strings; on mismatch prints both as diagnostics. */
int tap_is(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file into a malloc'd NUL-terminated buffer (golden files). */
char *tap_slurp(const char *path, size_t *len);
/* Decode C-style escapes (\r \n \t \0 \\ \xHH) of src[0..n) into dst
 * (at most cap bytes), the length into *dlen; -1 when malformed. Golden
 * files use them to hold control bytes. */
int tap_unescape(const char *src, size_t n, char *dst, size_t cap,
    size_t *dlen);
/* Print the plan "1..N" and return the exit status: 0 when all passed. */
int tap_done(void);

#endif
