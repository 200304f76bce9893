/*
 * data.c - the store (data.h): one message's text into its spool file.
 *
 * Trusts nothing from the client. Only CRLF ends a line and only
 * CRLF "." CRLF ends the data. A bare CR or bare LF anywhere in the
 * data is not a line end; the message is then refused (STORE_BARE)
 * once the real end arrives, so nothing another MTA could read as the
 * end of data is ever stored or passed on. A line starting with "." is
 * unstuffed. Size, hop count and write errors are all judged at the
 * end, after the rest of the data has been read, so the session stays
 * in step. STORED means layout_commit() made the file durable.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "data.h"
#include "layout.h"

/* The message being stored (one at a time: one session per process). */
static struct store {
	const struct conf *cf;
	struct envelope *env;
	int err;		/* of STORE_FAILED, or of store_open() */
	int bare, toobig, in_headers, hops;
	long long data;		/* message bytes after unstuffing */
	size_t plen;		/* bytes of prefix[] filled for this line */
	char prefix[9];		/* start of the current header line */
	struct spool_out o;	/* last: a 64 KiB buffer */
} store;

/* to_spool - bytes for the spool file, counted even after a write error */
static void
to_spool(struct store *st, const char *p, size_t n)
{
	st->env->size += (long long)n;
	spool_put(&st->o, p, n);
}

/* received - smap's own trace header, first in the message */
static void
received(struct store *st)
{
	const struct envelope *e = st->env;
	char line[1024], date[64], forpart[ADDR_PATH_MAX + 16] = "", tls[200] = "";
	time_t now = (time_t)e->arrival;
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (e->nrcpt == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor %s", e->rcpt[0]);
	if (e->tls[0])
		snprintf(tls, sizeof(tls), "\t(using %s)\r\n", e->tls);
	n = snprintf(line, sizeof(line), "Received: from %s (unknown [%s])\r\n"
	    "%s\tby %s with %s id %s%s; %s\r\n", e->helo, e->client, tls,
	    st->cf->myhostname, e->proto, e->id, forpart, date);
	if (n > 0 && (size_t)n < sizeof(line))
		to_spool(st, line, (size_t)n);
	else
		st->o.err = EINVAL;
}

/* store_open - the temp file, its envelope and the Received: header */
int
store_open(const struct conf *cf, struct envelope *e)
{
	struct store *st = &store;

	memset(st, 0, offsetof(struct store, o));	/* not the buffer */
	st->cf = cf;
	st->env = e;
	st->in_headers = 1;
	e->size = 0;
	spool_out_init(&st->o, layout_create(e->id, sizeof(e->id)));
	if (st->o.fd < 0 || spool_write_envelope(st->o.fd, e) < 0) {
		st->err = errno;
		if (st->o.fd >= 0)
			layout_abort(st->o.fd, e->id);
		return st->err;
	}
	received(st);
	return 0;
}

/* headers - count Received: lines until the empty line ends the header */
static void
headers(struct store *st, const char *p, size_t n, int bol, int eol)
{
	if (bol)
		st->plen = 0;
	if (bol && n == 0 && eol) {
		st->in_headers = 0;
		return;
	}
	while (st->plen < sizeof(st->prefix) && n-- > 0) {
		st->prefix[st->plen++] = *p++;
		if (st->plen == sizeof(st->prefix) &&
		    strncasecmp(st->prefix, "Received:", sizeof(st->prefix)) == 0)
			st->hops++;
	}
}

/* chunk - one piece of data; returns 1 at the end of the data */
static int
chunk(struct store *st, const char *p, size_t n, int *bol)
{
	int eol = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
	size_t text;

	if (*bol && n == 3 && memcmp(p, ".\r\n", 3) == 0)
		return 1;
	if (*bol && p[0] == '.') {
		p++;	/* dot-unstuffing */
		n--;
	}
	text = eol ? n - 2 : n;
	if (memchr(p, '\r', text) != NULL || memchr(p, '\n', text) != NULL)
		st->bare = 1;
	if (st->in_headers)
		headers(st, p, text, *bol, eol);
	if (!st->env->body8)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] & 0x80) {
				st->env->body8 = 1;
				break;
			}
	st->data += (long long)n;
	if (st->data > st->cf->message_size_limit)
		st->toobig = 1;
	if (!st->bare && !st->toobig)
		to_spool(st, p, n);
	*bol = eol;
	return 0;
}

/* finish - flush, fill in the envelope; STORE_READY or STORE_FAILED */
static enum stored
finish(struct store *st)
{
	if (spool_flush(&st->o) < 0 || spool_write_final(st->o.fd, st->env) < 0) {
		st->err = st->o.err ? st->o.err : errno;
		layout_abort(st->o.fd, st->env->id);
		return STORE_FAILED;
	}
	return STORE_READY;
}

/* store_commit - durable in new/ */
enum stored
store_commit(void)
{
	if (layout_commit(store.o.fd, store.env->id) < 0) {
		store.err = errno;
		layout_abort(-1, store.env->id);
		return STORE_FAILED;
	}
	return STORED;
}

/* store_errno - why STORE_FAILED */
int
store_errno(void)
{
	return store.err;
}

/* store_data - read to the end of the data, then judge and commit */
enum stored
store_data(struct io *io)
{
	struct store *st = &store;
	const char *p;
	size_t n;
	int bol = 1;

	for (;;) {
		if (io_getchunk(io, bol, &p, &n) != IO_OK) {
			layout_abort(st->o.fd, st->env->id);
			return io->err == IO_TIMEOUT ? STORE_TIMEOUT : STORE_LOST;
		}
		if (chunk(st, p, n, &bol))
			break;
	}
	if (st->bare || st->toobig || st->hops > st->cf->hopcount_limit) {
		layout_abort(st->o.fd, st->env->id);
		return st->bare ? STORE_BARE : st->toobig ? STORE_TOOBIG : STORE_HOPS;
	}
	return finish(st);
}
