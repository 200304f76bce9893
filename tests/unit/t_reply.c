/*
 * t_reply.c - unit tests for smapd/reply.c: golden cases, feeding in
 * pieces, and a fuzz loop.
 *
 * Usage: t_reply [golden-dir]   (default tests/golden)
 *
 * Reads <golden-dir>/reply/cases.txt: one case a line, fields separated
 * by tabs: the input with C escapes (\r \n \t \0 \\ \xHH), then one
 * field per outcome: "CODE DSN [TEXT]" for each complete reply (DSN "-"
 * when there is none), "garbage", or "more" when the input ends inside
 * a reply. Each case is fed whole (that result must equal the golden
 * one), then byte by byte and split in two at every offset (those must
 * equal the whole-buffer result). Pieces are copied into buffers of
 * exactly their length, so valgrind or ASan catch a read past len.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../smapd/reply.h"
#include "tap.h"

#define CASE_MAX	8192	/* longest decoded input */
#define OUT_MAX		8192	/* outcomes of one case, as text */
#define FUZZ_ROUNDS	20000
#define FUZZ_LEN_MAX	200

struct run {
	struct reply_parser p;
	char out[OUT_MAX];
	int done;		/* garbage seen: stop feeding */
};

static void	outcome(struct run *, const char *);
static void	feed(struct run *, const char *, size_t);
static void	finish(struct run *);
static void	run_split(const char *, size_t, size_t, char *);
static void	run_case(int, const char *, size_t, const char *);
static void	run_line(int, char *);
static void	run_golden(const char *);
static void	run_direct(void);
static uint64_t	xorshift(void);
static int	printable(const struct reply *);
static void	run_fuzz(void);

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* outcome - append one outcome, tab-separated */
static void
outcome(struct run *r, const char *s)
{
	size_t len = strlen(r->out);

	snprintf(r->out + len, sizeof(r->out) - len, "%s%s",
	    len ? "\t" : "", s);
}

/* feed - one piece, copied to a buffer of exactly its size */
static void
feed(struct run *r, const char *p, size_t n)
{
	char *copy, line[REPLY_TEXT_MAX + 64];
	struct reply rep;
	size_t off = 0, used;
	int rc;

	if (r->done || n == 0 || (copy = malloc(n)) == NULL)
		return;
	memcpy(copy, p, n);
	while (off < n) {
		rc = reply_parse(&r->p, copy + off, n - off, &used, &rep);
		off += used;
		if (rc == 0)
			break;
		if (rc < 0) {
			outcome(r, "garbage");
			r->done = 1;
			break;
		}
		snprintf(line, sizeof(line), "%d %s [%s]", rep.code,
		    rep.dsn[0] ? rep.dsn : "-", rep.text);
		outcome(r, line);
	}
	free(copy);
}

/* finish - "more" when the input ended inside a reply */
static void
finish(struct run *r)
{
	if (!r->done && (r->p.linelen > 0 || r->p.cur.nlines > 0))
		outcome(r, "more");
}

/* run_split - feed in pieces of at most chunk bytes, or split at -chunk */
static void
run_split(const char *in, size_t len, size_t chunk, char *out)
{
	static struct run r;
	size_t off;

	memset(&r, 0, sizeof(r));
	reply_init(&r.p);
	if (chunk == 0)
		chunk = len;
	for (off = 0; off < len; off += chunk)
		feed(&r, in + off, len - off < chunk ? len - off : chunk);
	finish(&r);
	memcpy(out, r.out, sizeof(r.out));
}

/* run_case - whole, byte by byte, and split at every offset */
static void
run_case(int lineno, const char *in, size_t len, const char *want)
{
	static char whole[OUT_MAX], other[OUT_MAX];
	static struct run r;
	size_t cut;
	int same = 1;

	run_split(in, len, 0, whole);
	tap_is(whole, want, "cases.txt:%d", lineno);
	run_split(in, len, 1, other);
	same = strcmp(whole, other) == 0;
	for (cut = 1; cut < len && same; cut++) {
		memset(&r, 0, sizeof(r));
		reply_init(&r.p);
		feed(&r, in, cut);
		feed(&r, in + cut, len - cut);
		finish(&r);
		same = strcmp(whole, r.out) == 0;
	}
	if (!same)
		tap_diag("differs when split at %zu: '%s'", cut - 1, r.out);
	tap_ok(same, "cases.txt:%d same result fed byte by byte and split",
	    lineno);
}

/* run_line - parse and run one line of the golden file */
static void
run_line(int lineno, char *line)
{
	static char in[CASE_MAX];
	char *tab;
	size_t len;

	if ((tab = strchr(line, '\t')) == NULL ||
	    tap_unescape(line, (size_t)(tab - line), in, CASE_MAX, &len) == -1) {
		tap_ok(0, "cases.txt:%d is well-formed", lineno);
		return;
	}
	run_case(lineno, in, len, tab + 1);
}

/* run_golden - every case of <dir>/reply/cases.txt */
static void
run_golden(const char *dir)
{
	char path[4096];
	char *text, *line, *next;
	int lineno = 0, cases = 0;

	snprintf(path, sizeof(path), "%s/reply/cases.txt", dir);
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
		cases++;
	}
	tap_ok(cases >= 60, "%d golden cases (at least 60)", cases);
	free(text);
}

/* run_direct - what the golden format cannot say */
static void
run_direct(void)
{
	static const char ehlo[] = "250-mx.example\r\n250-PIPELINING\r\n"
	    "250-SIZE 1000\r\n250 XFORWARD NAME ADDR\r\n250 next\r\n";
	static struct reply_parser p;
	static struct reply r;
	const char *s;
	size_t used, n;

	reply_init(&p);
	tap_ok(reply_parse(&p, ehlo, sizeof(ehlo) - 1, &used, &r) == 1 &&
	    used == sizeof(ehlo) - 1 - 10, "consumed stops after the reply");
	tap_ok(r.nlines == 4, "four lines");
	s = reply_line(&r, 2, &n);
	tap_ok(n == 9 && memcmp(s, "SIZE 1000", 9) == 0, "line 2 is SIZE 1000");
	s = reply_line(&r, 3, &n);
	tap_ok(n == 18 && memcmp(s, "XFORWARD NAME ADDR", 18) == 0,
	    "line 3 is XFORWARD NAME ADDR");
	s = reply_line(&r, 4, &n);
	tap_ok(n == 0 && *s == '\0', "no line 4");
	tap_ok(reply_parse(&p, "x\r\n", 3, &used, &r) == -1 && used == 1,
	    "garbage after the first byte");
	tap_ok(reply_parse(&p, "250 ok\r\n", 8, &used, &r) == -1 && used == 0,
	    "garbage is sticky");
	reply_init(&p);
	tap_ok(reply_parse(&p, "250 ok\r\n", 8, &used, &r) == 1 &&
	    r.code == 250, "reply_init starts afresh");
	tap_ok(reply_parse(&p, "", 0, &used, &r) == 0 && used == 0,
	    "empty input needs more");
}

/* xorshift - a fixed pseudo-random sequence */
static uint64_t
xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* printable - the reply obeys its documented shape */
static int
printable(const struct reply *r)
{
	size_t i;

	if (r->code < 200 || r->code > 599 || r->nlines < 1 ||
	    r->nlines > REPLY_LINES_MAX || strlen(r->text) >= REPLY_TEXT_MAX)
		return 0;
	if (r->dsn[0] && r->dsn[0] != '0' + r->code / 100)
		return 0;
	for (i = 0; r->text[i]; i++)
		if ((unsigned char)r->text[i] < 0x20 ||
		    (unsigned char)r->text[i] >= 0x7f)
			return 0;
	return 1;
}

/* run_fuzz - random reply-like input: no crash, same result in pieces */
static void
run_fuzz(void)
{
	static const char *const tok[] = { "250 ", "250-", "550", "4", "-",
	    " ", "\r", "\n", "\r\n", "\r\n", "2.0.0", "5.1.1 ", "x", "\xff",
	    "\0", "199", "." };
	static char in[FUZZ_LEN_MAX + 16], a[OUT_MAX], b[OUT_MAX];
	static struct reply_parser p;
	static struct reply r;
	size_t len, used, t;
	long i, bad = 0, good = 0;

	for (i = 0; i < FUZZ_ROUNDS; i++) {
		for (len = 0; len < FUZZ_LEN_MAX && xorshift() % 16;) {
			t = xorshift() % (sizeof(tok) / sizeof(tok[0]));
			memcpy(in + len, tok[t], strlen(tok[t]) + (t == 14));
			len += strlen(tok[t]) + (t == 14);
		}
		run_split(in, len, 0, a);
		run_split(in, len, 1 + xorshift() % 7, b);
		reply_init(&p);
		if (reply_parse(&p, in, len, &used, &r) == 1) {
			good++;
			bad += !printable(&r);
		}
		bad += strcmp(a, b) != 0;
	}
	tap_diag("fuzz: %ld inputs, %ld gave a reply", (long)FUZZ_ROUNDS, good);
	tap_ok(bad == 0 && good > 0, "fuzz: replies well-formed, pieces agree");
}

int
main(int argc, char *argv[])
{
	run_golden(argc > 1 ? argv[1] : "tests/golden");
	run_direct();
	run_fuzz();
	return tap_done();
}
