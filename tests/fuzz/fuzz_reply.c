/*
 * fuzz_reply - libFuzzer harness for smapd/reply.c. The first byte
 * gives a chunk size (1..256); the rest is parsed once whole and once
 * fed in chunks of that size. Both must yield the same replies and the
 * same end (garbage or not). Each reply is checked for its invariants.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXREPLIES 4096

struct outcome {
	size_t n;
	int garbage;
	struct reply r[MAXREPLIES];
};

static struct outcome whole, pieces;

static void
check_reply(const struct reply *r)
{
	size_t i, len, tl = strnlen(r->text, sizeof(r->text));
	const char *t;

	assert(tl < sizeof(r->text));
	assert(r->code >= 200 && r->code <= 599);
	assert(memchr(r->dsn, '\0', sizeof(r->dsn)) != NULL);
	for (i = 0; i < tl; i++)
		assert(r->text[i] >= 0x20 && r->text[i] < 0x7f);
	assert(r->nlines >= 1 && r->nlines <= REPLY_LINES_MAX);
	for (i = 0; i < r->nlines; i++) {
		t = reply_line(r, i, &len);
		assert(t >= r->text && t + len <= r->text + sizeof(r->text));
	}
}

/* Feed data in chunks of at most chunk bytes; record the outcomes. */
static void
run(const char *data, size_t size, size_t chunk, struct outcome *o)
{
	static struct reply_parser p;
	size_t off = 0, end, used;
	int rc;

	reply_init(&p);
	o->n = 0;
	o->garbage = 0;
	while (off < size) {
		end = size - off < chunk ? size : off + chunk;
		while (off < end) {
			used = (size_t)-1;
			rc = reply_parse(&p, data + off, end - off, &used,
			    &o->r[o->n < MAXREPLIES ? o->n : MAXREPLIES - 1]);
			if (rc < 0) {
				o->garbage = 1;
				return;
			}
			assert(used <= end - off);
			off += used;
			if (rc == 0) {
				assert(off == end);
				break;
			}
			assert(rc == 1);
			check_reply(&o->r[o->n < MAXREPLIES ? o->n : MAXREPLIES - 1]);
			if (o->n < MAXREPLIES)
				o->n++;
			/* A reply needs at least one byte: no endless loop. */
			assert(used > 0);
		}
	}
}

static int
same(const struct reply *a, const struct reply *b)
{
	size_t i;

	if (a->code != b->code || strcmp(a->dsn, b->dsn) != 0 ||
	    strcmp(a->text, b->text) != 0 || a->nlines != b->nlines)
		return 0;
	for (i = 0; i < a->nlines; i++)
		if (a->line[i].off != b->line[i].off ||
		    a->line[i].len != b->line[i].len)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk, i;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++;
	size--;
	run((const char *)data, size, size + 1, &whole);
	run((const char *)data, size, chunk, &pieces);
	if (!whole.garbage && !pieces.garbage)
		assert(whole.n == pieces.n);
	/* Garbage may be detected a little later or earlier across
	 * pieces only if the parser is not byte-exact; it must be. */
	assert(whole.garbage == pieces.garbage);
	assert(whole.n == pieces.n);
	for (i = 0; i < whole.n; i++)
		assert(same(&whole.r[i], &pieces.r[i]));
	return 0;
}
