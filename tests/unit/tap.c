/*
 * tap.c - a minimal TAP producer for the C unit tests; trusts its callers.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tap.h"

static int tap_n, tap_failed;
static void (*tap_cleanup)(void);

static void
tap_vreport(int cond, const char *fmt, va_list ap)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	putchar('\n');
}

int
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(cond, fmt, ap);
	va_end(ap);
	return cond;
}

int
tap_is(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	int cond = got != NULL && want != NULL && strcmp(got, want) == 0;

	va_start(ap, fmt);
	tap_vreport(cond, fmt, ap);
	va_end(ap);
	if (!cond) {
		printf("#   got:  '%s'\n", got ? got : "(null)");
		printf("#   want: '%s'\n", want ? want : "(null)");
	}
	return cond;
}

void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
}

char *
tap_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	fclose(fp);
	return buf;
}

/* hexval - the value of hex digit c, or -1 */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* escaped - the byte that \c stands for, or -1 */
static int
escaped(char c)
{
	static const char from[] = "rnt0\\", to[] = "\r\n\t\0\\";
	const char *p = memchr(from, c, sizeof(from) - 1);

	return p ? to[p - from] : -1;
}

int
tap_unescape(const char *src, size_t n, char *dst, size_t cap, size_t *dlen)
{
	size_t i, o = 0;
	int hi, lo, c;

	for (i = 0; i < n; i++, o++) {
		if (o >= cap)
			return -1;
		if (src[i] != '\\') {
			dst[o] = src[i];
			continue;
		}
		if (++i >= n)
			return -1;
		if (src[i] != 'x') {
			if ((c = escaped(src[i])) < 0)
				return -1;
			dst[o] = (char)c;
			continue;
		}
		if (i + 2 >= n || (hi = hexval(src[i + 1])) < 0 ||
		    (lo = hexval(src[i + 2])) < 0)
			return -1;
		dst[o] = (char)(hi * 16 + lo);
		i += 2;
	}
	*dlen = o;
	return 0;
}

void
tap_on_fatal(void (*cleanup)(void))
{
	tap_cleanup = cleanup;
}

void
tap_fatal(const char *what)
{
	tap_ok(0, "%s: %s", what, strerror(errno));
	if (tap_cleanup != NULL)
		tap_cleanup();
	(void)tap_done();
	exit(1);
}

/* rm_entry - nftw callback: remove one entry */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		tap_diag("remove %s: %s", path, strerror(errno));
	return 0;
}

int
tap_rmtree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
