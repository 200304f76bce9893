/*
 * tap.c - a minimal TAP producer for the C unit tests; trusts its callers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static int tap_n, tap_failed;

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

int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
