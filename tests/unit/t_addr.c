/*
 * t_addr.c - unit tests for common/addr.c: golden cases and a fuzz loop.
 *
 * Usage: t_addr [golden-dir]   (default tests/golden)
 *
 * Reads <golden-dir>/addr/cases.txt: one case a line, three fields
 * separated by tabs: the kind (MAIL, RCPT, STORED-MAIL, STORED-RCPT),
 * the input with C escapes (\r \n \t \0 \\ \xHH), and the result,
 * "ok <text> <consumed>" or "err <reason>". For the STORED kinds the
 * input is used as a C string (it ends at the first \0) and consumed
 * is its length. Lines starting with '#' and empty lines are skipped.
 * Each input is copied into a buffer of exactly its length, so that
 * valgrind or ASan catch any read past len.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "tap.h"

#define CASE_MAX	4096	/* longest decoded input in the golden file */
#define RESULT_MAX	(ADDR_PATH_MAX + 128)
#define FUZZ_ROUNDS	200000
#define FUZZ_LEN_MAX	300

static void	check_invariants(const struct addr *, char *, size_t);
static void	run_case(const char *, const char *, size_t, char *, size_t);
static void	run_line(int, char *);
static void	run_golden(const char *);
static uint64_t	xorshift(void);
static size_t	fuzz_input(char *);
static int	fuzz_check(const char *, size_t, enum addr_kind);
static void	run_fuzz(void);
static void	run_direct(void);

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

/* Append a marker to got when a->at, a->literal or addr_domain disagree. */
static void
check_invariants(const struct addr *a, char *got, size_t size)
{
	const char *at = strchr(a->text, '@');
	const char *dom = addr_domain(a);
	int bad;

	if (a->at > 0)
		bad = at != a->text + a->at || dom != at + 1 ||
		    a->literal != (dom[0] == '[');
	else
		bad = at != NULL || *dom != '\0' || a->literal;
	if (bad)
		strncat(got, " BAD-INVARIANTS", size - strlen(got) - 1);
}

/* Run one decoded case and compare its formatted result with want. */
static void
run_case(const char *kind, const char *in, size_t len, char *got,
    size_t size)
{
	struct addr a;
	const char *why = "(none)";
	char *buf;
	int r;

	if ((buf = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	memcpy(buf, in, len);
	if (strcmp(kind, "MAIL") == 0 || strcmp(kind, "RCPT") == 0)
		r = addr_parse(buf, len, kind[0] == 'M' ? ADDR_SENDER :
		    ADDR_RECIPIENT, &a, &why);
	else if (strcmp(kind, "STORED-MAIL") == 0 ||
	    strcmp(kind, "STORED-RCPT") == 0) {
		free(buf);
		if ((buf = strndup(in, len)) == NULL)
			abort();
		r = addr_check_stored(buf, kind[7] == 'M' ? ADDR_SENDER :
		    ADDR_RECIPIENT, &a, &why);
		if (r == 0)
			r = (int)strlen(buf);
	} else {
		snprintf(got, size, "bad kind %s", kind);
		free(buf);
		return;
	}
	free(buf);
	if (r < 0) {
		snprintf(got, size, "err %s", why);
		return;
	}
	snprintf(got, size, "ok %s %d", a.text, r);
	check_invariants(&a, got, size);
}

/* Parse and run one line of the golden file. */
static void
run_line(int lineno, char *line)
{
	static char in[CASE_MAX];
	char got[RESULT_MAX];
	char *t1, *t2;
	size_t len;

	if ((t1 = strchr(line, '\t')) == NULL ||
	    (t2 = strchr(t1 + 1, '\t')) == NULL ||
	    tap_unescape(t1 + 1, (size_t)(t2 - t1 - 1), in, CASE_MAX, &len) == -1) {
		tap_ok(0, "cases.txt:%d is well-formed", lineno);
		return;
	}
	*t1 = '\0';
	*t2 = '\0';
	run_case(line, in, len, got, sizeof(got));
	tap_is(got, t2 + 1, "cases.txt:%d %s %.80s", lineno, line, t1 + 1);
}

/* Run every case of <dir>/addr/cases.txt. */
static void
run_golden(const char *dir)
{
	char path[4096];
	char *text, *line, *next;
	int lineno = 0;

	snprintf(path, sizeof(path), "%s/addr/cases.txt", dir);
	if ((text = tap_slurp(path, NULL)) == NULL) {
		tap_ok(0, "read %s", path);
		return;
	}
	for (line = text; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		run_line(lineno, line);
	}
	free(text);
}

/* Cases the golden format cannot express: bytes beyond len. */
static void
run_direct(void)
{
	static const char full[] = "<user@example.com> SIZE=1";
	struct addr a;
	const char *why = NULL;

	tap_ok(addr_parse(full, 17, ADDR_RECIPIENT, &a, &why) == -1,
	    "a '>' just past len is not seen");
	tap_ok(addr_parse(full, 18, ADDR_RECIPIENT, &a, &why) == 18 &&
	    strcmp(a.text, "user@example.com") == 0,
	    "len ending at '>' parses");
	tap_ok(addr_parse(full, 0, ADDR_SENDER, &a, &why) == -1,
	    "len 0 is refused");
	tap_ok(addr_parse(full, 18, ADDR_RECIPIENT, &a, NULL) == 18,
	    "a NULL why is tolerated");
	tap_is(addr_domain(&a), "example.com", "addr_domain");
	a.at = 0;
	tap_is(addr_domain(&a), "", "addr_domain without '@'");
}

/* xorshift64 with a fixed seed: the fuzz inputs are the same every run. */
static uint64_t
xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Make one pseudo-random input in buf (FUZZ_LEN_MAX); returns its length. */
static size_t
fuzz_input(char *buf)
{
	static const char hot[] = "<>@.:[]-!%\"\\ \r\n\0";
	static const char *const seeds[] = {
		"<user@example.com>", "<>", "<postmaster>",
		"<@a.example,@b.example:u@c.example>", "<a.b@[192.0.2.1]>",
		"<x@[IPv6:2001:db8::1]> SIZE=10", "<o'neil+tag@xn--e1a.example>",
	};
	size_t len, i, k, nmut;
	uint64_t r = xorshift();

	if (r % 2 == 0) {
		len = (size_t)(xorshift() % (FUZZ_LEN_MAX + 1));
		for (i = 0; i < len; i++) {
			r = xorshift();
			if (r % 8 < 3)
				buf[i] = hot[(r >> 8) % (sizeof(hot) - 1)];
			else if (r % 8 < 7)
				buf[i] = (char)('a' + (r >> 8) % 26);
			else
				buf[i] = (char)(r >> 8);
		}
		if (len > 0 && xorshift() % 4 != 0)
			buf[0] = '<';
		return len;
	}
	k = (size_t)((r >> 8) % (sizeof(seeds) / sizeof(seeds[0])));
	len = strlen(seeds[k]);
	memcpy(buf, seeds[k], len);
	nmut = (size_t)((r >> 16) % 4);
	for (i = 0; i < nmut && len > 0; i++) {
		r = xorshift();
		buf[r % len] = (r >> 32) % 2 ? hot[(r >> 8) % (sizeof(hot) - 1)] :
		    (char)(r >> 40);
	}
	return len;
}

/* On success of addr_parse, check the result and its stored form. */
static int
fuzz_check(const char *buf, size_t len, enum addr_kind kind)
{
	struct addr a, b;
	char stored[ADDR_PATH_MAX + 3];
	const char *why;
	size_t i, n;
	int r;

	if ((r = addr_parse(buf, len, kind, &a, &why)) == -1)
		return 0;
	n = strlen(a.text);
	if (r < 2 || (size_t)r > len || buf[r - 1] != '>' ||
	    n > ADDR_PATH_MAX)
		return -1;
	for (i = 0; i < n; i++)
		if (a.text[i] <= ' ' || a.text[i] > '~')
			return -1;
	snprintf(stored, sizeof(stored), "<%s>", a.text);
	if (addr_check_stored(stored, kind, &b, &why) == -1 ||
	    strcmp(a.text, b.text) != 0 || a.at != b.at ||
	    a.literal != b.literal)
		return -1;
	return 1;
}

/* Feed FUZZ_ROUNDS pseudo-random inputs to addr_parse; one TAP line. */
static void
run_fuzz(void)
{
	char buf[FUZZ_LEN_MAX];
	char *copy;
	size_t len;
	long i, good = 0, bad = 0;
	int r;

	for (i = 0; i < FUZZ_ROUNDS; i++) {
		len = fuzz_input(buf);
		if ((copy = malloc(len > 0 ? len : 1)) == NULL)
			abort();
		memcpy(copy, buf, len);
		r = fuzz_check(copy, len, i % 2 ? ADDR_SENDER : ADDR_RECIPIENT);
		free(copy);
		if (r == 1)
			good++;
		if (r == -1 && bad++ == 0)
			tap_diag("fuzz round %ld: bad result", i);
	}
	tap_diag("fuzz: %ld inputs, %ld accepted", (long)FUZZ_ROUNDS, good);
	tap_ok(bad == 0 && good > 0,
	    "fuzz: accepted paths are printable and re-check when stored");
}

int
main(int argc, char *argv[])
{
	run_golden(argc > 1 ? argv[1] : "tests/golden");
	run_direct();
	run_fuzz();
	return tap_done();
}
