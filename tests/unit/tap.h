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
/* What tap_fatal() runs before exiting (remove temp files, stop servers). */
void tap_on_fatal(void (*cleanup)(void));
/* The test cannot go on: "not ok" with errno's text, clean up, plan, exit 1. */
void tap_fatal(const char *what) __attribute__((noreturn));
/* Remove a directory tree without following symbolic links or crossing
 * mount points; 0 or -1. */
int tap_rmtree(const char *path);
/* Print the plan "1..N" and return the exit status: 0 when all passed. */
int tap_done(void);

#endif
