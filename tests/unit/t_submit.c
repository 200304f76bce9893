/*
 * t_submit.c - unit tests for smap-sendmail's input side:
 * smapd/submit_addr.c (address lists, senders) and smapd/submit_msg.c
 * (line ends, the "." line, header fields kept, dropped and added, -t),
 * with a fuzz loop over both.
 *
 * Usage: t_submit
 *
 * Each input is copied into a buffer of exactly its length, so that
 * valgrind or ASan catch a read past it. msg_read() is fed through a
 * pipe, as smap-sendmail's standard input is.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../../smapd/submit_addr.h"
#include "../../smapd/submit_msg.h"
#include "log.h"
#include "tap.h"

#define DOMAIN "host.example"
#define FUZZ_ROUNDS 20000
#define FUZZ_LEN_MAX 400

struct lcase {
	const char *in;		/* an address list */
	int rc;			/* alist_add()'s result */
	const char *want;	/* the set joined by " ", or part of why */
};

static const struct lcase lcases[] = {
	{ "a@b.example", 0, "a@b.example" },
	{ "root", 0, "root@host.example" },
	{ "\"Doe, John\" <jd@x.example>, other@y.example (Other Person)", 0,
	  "jd@x.example other@y.example" },
	{ "undisclosed-recipients:;", 0, "" },
	{ "", 0, "" },
	{ " , ,", 0, "" },
	{ "team: a@x.example, b@x.example;, c@x.example", 0,
	  "a@x.example b@x.example c@x.example" },
	{ "a @ b . example", 0, "a@b.example" },
	{ "a@b.example (a (nested) comment)", 0, "a@b.example" },
	{ "Ops <ops@X.Example>", 0, "ops@x.example" },
	{ "a@b.example, a@b.example, A@B.EXAMPLE", 0,
	  "a@b.example A@b.example" },
	{ "a@b.example;c@d.example", 0, "a@b.example c@d.example" },
	{ "<@relay.example:a@b.example>", 0, "a@b.example" },
	{ "\"x\\\"y\" <q@b.example>", 0, "q@b.example" },
	{ "\r\n\tfolded@b.example\r\n", 0, "folded@b.example" },
	{ "John Doe", -1, "a name without an address" },
	{ "John Doe <>", -1, "To: John Doe <>: an empty address" },
	{ "<a@b.example> <c@d.example>", -1, "cannot be read" },
	{ "<a@b.example", -1, "cannot be read" },
	{ "a@b.example>", -1, "cannot be read" },
	{ "(unbalanced a@b.example", -1, "cannot be read" },
	{ "\"open a@b.example", -1, "cannot be read" },
	{ "-oi@x.example", -1, "may not start" },
	{ "|cmd@x.example", -1, "may not start" },
	{ "\"quoted\"@x.example", -1, "Quoted" },
	{ "a%b@x.example", -1, "Unsafe" },
	{ "a@b.example, x y@c.example", -1, "To: x y@c.example: a name" },
	{ "a b c d e f", -1, "a name without an address" },
	{ "a@-bad-.example", -1, "domain" },
	{ "u1@x.example, u2@x.example, u3@x.example, u4@x.example, "
	  "u5@x.example, u6@x.example", -1, "more than 5 recipients" },
};

/* joined - the set's addresses joined by spaces */
static void
joined(const struct rcptset *s, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < s->n && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "",
		    s->v[i]);
}

/* run_lcase - one address list */
static void
run_lcase(const struct lcase *c)
{
	struct rcptset s = { NULL, 0, 5 };
	char why[512] = "", got[2048];
	size_t n = strlen(c->in);
	char *copy = malloc(n ? n : 1);
	char name[96];
	int rc, ok;

	log_esc(name, sizeof(name), c->in, n);
	if (copy == NULL)
		tap_fatal("malloc");
	memcpy(copy, c->in, n);
	rc = alist_add(&s, "To:", copy, n, DOMAIN, why, sizeof(why));
	joined(&s, got, sizeof(got));
	if (c->rc == 0)
		ok = tap_ok(rc == 0 && strcmp(got, c->want) == 0,
		    "list \"%s\": %s", name, c->want);
	else
		ok = tap_ok(rc == c->rc && strstr(why, c->want) != NULL,
		    "list \"%s\": refused, %s", name, c->want);
	if (!ok)
		tap_diag("rc %d, set \"%s\", why \"%s\"", rc, got, why);
	rcptset_free(&s);
	free(copy);
}

/* run_lists - the table, and cases that need bytes or sizes */
static void
run_lists(void)
{
	struct rcptset s = { NULL, 0, 100 };
	char why[512] = "", buf[600];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++)
		run_lcase(&lcases[i]);
	rc = alist_add(&s, "To:", "x\0y@b.example", 13, DOMAIN, why,
	    sizeof(why));
	tap_ok(rc == -1 && s.n == 0, "a NUL inside an address is refused");
	memset(buf, 'a', sizeof(buf));
	memcpy(buf + 300, "@b.example", 10);
	rc = alist_add(&s, "To:", buf, 310, DOMAIN, why, sizeof(why));
	tap_ok(rc == -1 && strstr(why, "too long") != NULL,
	    "a 300-byte local part is refused: %s", why);
	memset(buf, '(', 40);
	rc = alist_add(&s, "To:", buf, 40, DOMAIN, why, sizeof(why));
	tap_ok(rc == -1, "comments nested 40 deep are refused");
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "Name ", 5);
	buf[500] = '<';
	memcpy(buf + 501, "n@b.example>", 12);
	rc = alist_add(&s, "To:", buf, 513, DOMAIN, why, sizeof(why));
	tap_ok(rc == 0 && s.n == 1 && strcmp(s.v[0], "n@b.example") == 0,
	    "a display name longer than a path is dropped, not refused");
	rcptset_free(&s);
}

/* run_senders - sender_parse() */
static void
run_senders(void)
{
	static const struct {
		const char *in, *want;	/* want NULL: refused */
	} c[] = {
		{ "", "" }, { "<>", "" }, { "root", "root@host.example" },
		{ "<a@B.example>", "a@b.example" }, { "a b", NULL },
		{ "-f@x.example", NULL }, { "<a@b.example", NULL },
		{ "a@b.example, c@d.example", NULL },
	};
	struct addr a;
	const char *why;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		rc = sender_parse(c[i].in, DOMAIN, &a, &why);
		if (c[i].want == NULL)
			tap_ok(rc < 0, "sender \"%s\" refused", c[i].in);
		else
			tap_ok(rc == 0 && strcmp(a.text, c[i].want) == 0,
			    "sender \"%s\" is <%s>", c[i].in, c[i].want);
	}
}

/* read_via_pipe - msg_read() of in through a pipe; its status */
static int
read_via_pipe(const char *in, size_t n, int dots, size_t max,
    struct mbuf *out)
{
	char why[256];
	int p[2], rc;

	if (pipe(p) < 0)
		tap_fatal("pipe");
	if (write(p[1], in, n) != (ssize_t)n)
		tap_fatal("write");
	close(p[1]);
	out->p = NULL;
	out->len = out->cap = 0;
	out->max = max;
	rc = msg_read(p[0], dots, out, why, sizeof(why));
	close(p[0]);
	return rc;
}

/* run_reads - line ends and the "." line */
static void
run_reads(void)
{
	static const struct {
		const char *in, *want;
		int dots;
	} c[] = {
		{ "a\nb\n", "a\r\nb\r\n", 0 }, { "a\r\nb", "a\r\nb\r\n", 0 },
		{ "a\rb\r", "a\r\nb\r\n", 0 }, { "\r\r\n", "\r\n\r\n", 0 },
		{ "a\n.\nb\n", "a\r\n", 0 }, { "a\n.\nb\n", "a\r\n.\r\nb\r\n", 1 },
		{ ".\n", "", 0 }, { "a\n.", "a\r\n", 0 }, { "a\n.", "a\r\n.\r\n", 1 },
		{ "a\n..\n.x\n", "a\r\n..\r\n.x\r\n", 0 },
		{ "a\n.\r\nrest", "a\r\n", 0 }, { "", "", 0 },
		{ "x\r", "x\r\n", 0 },
	};
	struct mbuf m;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		rc = read_via_pipe(c[i].in, strlen(c[i].in), c[i].dots, 1000, &m);
		tap_ok(rc == 0 && m.len == strlen(c[i].want) &&
		    memcmp(m.p ? m.p : "", c[i].want, m.len) == 0,
		    "read %zu%s: line ends are CRLF, '.' handled", i,
		    c[i].dots ? " (-i)" : "");
		mbuf_free(&m);
	}
	rc = read_via_pipe("0123456789\n", 11, 0, 12, &m);
	tap_ok(rc == 0 && m.len == 12, "read: exactly max bytes is fine");
	mbuf_free(&m);
	rc = read_via_pipe("0123456789\n", 11, 0, 11, &m);
	tap_ok(rc == EX_DATAERR, "read: one byte over max is EX_DATAERR");
	mbuf_free(&m);
	rc = read_via_pipe("a\0b\n", 4, 0, 100, &m);
	tap_ok(rc == 0 && m.len == 5 && memcmp(m.p, "a\0b\r\n", 5) == 0,
	    "read: a NUL byte is kept");
	mbuf_free(&m);
}

#define ADDED "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n" \
	"Message-ID: <19700101000000.00000000000abcde@host.example>\r\n" \
	"From: \"Me Myself\" <me@host.example>\r\n"

struct bcase {
	const char *in;		/* as msg_read() leaves it */
	int extract;		/* -t */
	int rc;
	const char *want;	/* the message, or part of why */
	const char *rcpts;	/* the set after -t */
};

static const struct bcase bcases[] = {
	{ "Subject: x\r\n\r\nbody\r\n", 0, 0,
	  "Subject: x\r\n" ADDED "\r\nbody\r\n", "" },
	{ "Date: d\r\nMessage-ID: <m@x>\r\nFROM: f@x\r\n\r\nb\r\n", 0, 0,
	  "Date: d\r\nMessage-ID: <m@x>\r\nFROM: f@x\r\n\r\nb\r\n", "" },
	{ "From : spaced@x\r\nDate: d\r\nmessage-id: <m>\r\n\r\n", 0, 0,
	  "From : spaced@x\r\nDate: d\r\nmessage-id: <m>\r\n\r\n", "" },
	{ "To: a@x.example\r\nBcc: b@x.example,\r\n c@x.example\r\n"
	  "Subject: s\r\n\r\nbody\r\n", 1, 0,
	  "To: a@x.example\r\nSubject: s\r\n" ADDED "\r\nbody\r\n",
	  "a@x.example b@x.example c@x.example" },
	{ "To: a@x.example\r\nBcc: b@x.example\r\n\r\n", 0, 0,
	  "To: a@x.example\r\n" ADDED "\r\n", "" },
	{ "Resent-Bcc: r@x.example\r\nTO: a@x.example\r\ncc: b@x.example\r\n"
	  "\r\n", 1, 0, "TO: a@x.example\r\ncc: b@x.example\r\n" ADDED "\r\n",
	  "a@x.example b@x.example" },
	{ "hello world\r\n", 0, 0, ADDED "\r\nhello world\r\n", "" },
	{ "", 0, 0, ADDED "\r\n", "" },
	{ "From someone Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nb\r\n",
	  0, 0, "Subject: x\r\n" ADDED "\r\nb\r\n", "" },
	{ "Subject: x\r\nnot a header\r\nmore\r\n", 0, 0,
	  "Subject: x\r\n" ADDED "\r\nnot a header\r\nmore\r\n", "" },
	{ " leading space\r\n", 0, 0, ADDED "\r\n leading space\r\n", "" },
	{ "Subject: x\r\n\r\nTo: body@x.example\r\n", 1, 0,
	  "Subject: x\r\n" ADDED "\r\nTo: body@x.example\r\n", "" },
	{ "To: John Doe\r\n\r\n", 1, EX_DATAERR, "To: John Doe: a name", "" },
	{ "To: Bcc-only:;\r\nBcc: cron@x.example\r\n\r\nout\r\n", 1, 0,
	  "To: Bcc-only:;\r\n" ADDED "\r\nout\r\n", "cron@x.example" },
	/* a line that is no field cuts the header short: a Bcc: after it
	 * would be body text that every recipient reads */
	{ "To: a@x.example\r\nnot a field\r\nBcc: blind@x.example\r\n"
	  "\r\nbody\r\n", 1, EX_DATAERR, "a Bcc: field after it", "" },
	{ "To: a@x.example\r\nX y: 1\r\nSubject: s\r\n"
	  "Resent-Bcc : blind@x.example\r\n", 0, EX_DATAERR,
	  "a Bcc: field after it", "" },
	{ "Subject: x\r\nnot a field\r\n\r\nBcc: text@x.example\r\n", 0, 0,
	  "Subject: x\r\n" ADDED "\r\nnot a field\r\n\r\n"
	  "Bcc: text@x.example\r\n", "" },
};

/* ids - what msg_build() adds in these cases */
static void
ids(struct msg_ids *id, const char *name)
{
	memset(id, 0, sizeof(*id));
	id->domain = DOMAIN;
	id->from_addr = "me@host.example";
	id->from_name = name;
	id->now = 0;
	id->unique = 0xabcde;
}

/* run_bcase - one msg_build() */
static void
run_bcase(size_t k, const struct bcase *c)
{
	struct rcptset s = { NULL, 0, 10 };
	struct mbuf in = { NULL, 0, 0, 100000 }, out = { NULL, 0, 0, 100000 };
	struct msg_ids id;
	char why[512] = "", got[1024], name[64];
	int rc, ok;

	log_esc(name, sizeof(name), c->in, strlen(c->in));
	ids(&id, "Me Myself");
	if (mbuf_put(&in, c->in, strlen(c->in)) < 0)
		tap_fatal("mbuf_put");
	rc = msg_build(&in, &id, c->extract ? &s : NULL, &out, why,
	    sizeof(why));
	joined(&s, got, sizeof(got));
	if (c->rc == 0)
		ok = tap_ok(rc == 0 && out.len == strlen(c->want) &&
		    memcmp(out.p, c->want, out.len) == 0 &&
		    strcmp(got, c->rcpts) == 0, "build %zu: %s", k, name);
	else
		ok = tap_ok(rc == c->rc && strstr(why, c->want) != NULL,
		    "build %zu refused: %s", k, c->want);
	if (!ok)
		tap_diag("rc %d why %s rcpts \"%s\" got \"%.*s\"", rc, why,
		    got, (int)out.len, out.p ? out.p : "");
	mbuf_free(&in);
	mbuf_free(&out);
	rcptset_free(&s);
}

/* from_of - the From: line msg_build() adds for a display name */
static void
from_of(const char *name, char *buf, size_t len)
{
	struct mbuf in = { NULL, 0, 0, 1000 }, out = { NULL, 0, 0, 10000 };
	struct msg_ids id;
	char why[256];
	const char *f;
	size_t n;

	ids(&id, name);
	buf[0] = '\0';
	if (mbuf_put(&in, "Date: d\r\nMessage-ID: <m>\r\n\r\n", 27) < 0 ||
	    msg_build(&in, &id, NULL, &out, why, sizeof(why)) != 0 ||
	    (f = memmem(out.p, out.len, "From: ", 6)) == NULL)
		tap_fatal("from_of");
	n = (size_t)((const char *)memmem(f, out.len - (size_t)(f - out.p),
	    "\r\n", 2) - f);
	snprintf(buf, len, "%.*s", (int)n, f);
	mbuf_free(&in);
	mbuf_free(&out);
}

/* words_ok - every encoded word of a From: line at most 75 bytes */
static int
words_ok(const char *s)
{
	const char *w, *e;

	for (w = strstr(s, "=?"); w != NULL; w = strstr(e, "=?")) {
		if ((e = strstr(w + 10, "?=")) == NULL || e + 2 - w > 75)
			return 0;
		e += 2;
	}
	return 1;
}

/* run_names - display names for the From: added */
static void
run_names(void)
{
	char got[2048], big[FROM_NAME_MAX * 2 + 1];
	size_t i;

	from_of("", got, sizeof(got));
	tap_is(got, "From: me@host.example", "no name: the address alone");
	from_of("Ann \"the\" O\\Brien", got, sizeof(got));
	tap_is(got, "From: \"Ann \\\"the\\\" O\\\\Brien\" <me@host.example>",
	    "quotes and backslashes are escaped");
	from_of("Jos\xc3\xa9 P", got, sizeof(got));
	tap_is(got, "From: =?UTF-8?Q?Jos=C3=A9_P?= <me@host.example>",
	    "an 8-bit name is an encoded word");
	from_of("bad\r\nBcc: x@y", got, sizeof(got));
	tap_is(got, "From: \"bad  Bcc: x@y\" <me@host.example>",
	    "CR and LF in a name are spaces: no header is injected");
	for (i = 0; i + 2 <= sizeof(big) - 1; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	from_of(big, got, sizeof(got));
	if (!tap_ok(words_ok(got) && strstr(got, "=C3=A9?= =?UTF-8?Q?=C3=A9") &&
	    strstr(got, "=C3?=") == NULL, "a long 8-bit name: words of at "
	    "most 75 bytes, split between characters"))
		tap_diag("%s", got);
}

/* run_builds - the table, and the size bound */
static void
run_builds(void)
{
	struct mbuf in = { NULL, 0, 0, 1000 }, out = { NULL, 0, 0, 150 };
	struct msg_ids id;
	char why[256];
	size_t i;

	for (i = 0; i < sizeof(bcases) / sizeof(bcases[0]); i++)
		run_bcase(i, &bcases[i]);
	ids(&id, "Me Myself");
	if (mbuf_put(&in, "Subject: x\r\n\r\nbody\r\n", 20) < 0)
		tap_fatal("mbuf_put");
	tap_ok(msg_build(&in, &id, NULL, &out, why, sizeof(why)) ==
	    EX_DATAERR && strstr(why, "message_size_limit") != NULL,
	    "build: the added fields count against the size limit");
	mbuf_free(&in);
	mbuf_free(&out);
	run_names();
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* xorshift - the next pseudo-random number */
static uint64_t
xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* fuzz_input - random bytes, biased towards the interesting ones */
static size_t
fuzz_input(char *buf)
{
	static const char bias[] = "<>(),:;\"\\@. \r\n\tabBcC:To";
	size_t n = xorshift() % FUZZ_LEN_MAX, i;

	for (i = 0; i < n; i++) {
		uint64_t r = xorshift();

		buf[i] = r % 3 ? bias[(r >> 8) % (sizeof(bias) - 1)] :
		    (char)(r >> 16);
	}
	return n;
}

/* bcc_kept - is a Bcc: or Resent-Bcc: field in out's header section? */
static int
bcc_kept(const struct mbuf *out)
{
	size_t off = 0, n, name;
	const char *nl;

	while (off < out->len) {
		nl = memchr(out->p + off, '\n', out->len - off);
		n = nl ? (size_t)(nl - (out->p + off)) + 1 : out->len - off;
		if (n == 2 && out->p[off] == '\r')
			return 0;
		for (name = 0; name < n && out->p[off + name] != ':' &&
		    out->p[off + name] > ' '; name++)
			;
		if ((name == 3 && strncasecmp(out->p + off, "Bcc", 3) == 0) ||
		    (name == 10 && strncasecmp(out->p + off, "Resent-Bcc", 10) == 0))
			return out->p[off + name] == ':' ||
			    out->p[off + name] == ' ' || out->p[off + name] == '\t';
		off += n;
	}
	return 0;
}

/* fuzz_one - one input as a list and as a message; 0 when sound */
static int
fuzz_one(const char *buf, size_t n)
{
	struct rcptset s = { NULL, 0, 50 };
	struct mbuf in = { NULL, 0, 0, 100000 }, out = { NULL, 0, 0, 100000 };
	struct msg_ids id;
	struct addr a;
	const char *why;
	char w[512], check[ADDR_PATH_MAX + 3];
	size_t i;
	int bad = 0;

	(void)alist_add(&s, "To:", buf, n, DOMAIN, w, sizeof(w));
	ids(&id, "F");
	if (mbuf_put(&in, buf, n) < 0 || mbuf_put(&in, "\r\n", 2) < 0)
		tap_fatal("mbuf_put");
	(void)msg_build(&in, &id, &s, &out, w, sizeof(w));
	for (i = 0; i < s.n; i++) {
		snprintf(check, sizeof(check), "<%s>", s.v[i]);
		bad |= addr_check_stored(check, ADDR_RECIPIENT, &a, &why) < 0;
	}
	bad |= bcc_kept(&out);
	mbuf_free(&in);
	mbuf_free(&out);
	rcptset_free(&s);
	return bad;
}

/* run_fuzz - random lists and messages: every recipient kept passes
 * addr_check_stored(), no Bcc: line survives, nothing crashes */
static void
run_fuzz(void)
{
	char buf[FUZZ_LEN_MAX], *copy;
	long i, bad = 0;
	size_t n;

	for (i = 0; i < FUZZ_ROUNDS; i++) {
		n = fuzz_input(buf);
		if ((copy = malloc(n ? n : 1)) == NULL)
			tap_fatal("malloc");
		memcpy(copy, buf, n);
		bad += fuzz_one(copy, n);
		free(copy);
	}
	tap_ok(bad == 0, "fuzz: %d inputs, every recipient a clean path, "
	    "no Bcc: kept", FUZZ_ROUNDS);
}

int
main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	run_lists();
	run_senders();
	run_reads();
	run_builds();
	run_fuzz();
	return tap_done();
}
