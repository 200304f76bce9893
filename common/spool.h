/*
 * spool.h - the spool file format (the directories: layout.h).
 *
 * The format is documented at the top of spool.c and in smap-spool(5).
 * The writer (smap) and the reader (smapd, tests) both live here, so
 * what one writes the other reads with the same rules. The reader
 * treats every file as hostile.
 */
#ifndef SMAP_SPOOL_H
#define SMAP_SPOOL_H

#include <stddef.h>
#include <sys/types.h>
#include "bounds.h"

#define SPOOL_VERSION 1
#define SPOOL_MAGIC "SMAP"

struct envelope {
	int version;
	char id[SPOOL_ID_MAX + 1];
	long long arrival;		/* seconds since the epoch */
	long arrival_us;		/* and microseconds (0 when not recorded) */
	char client[64];		/* numeric address, or "unknown" */
	unsigned port;			/* client port, 0 when unknown */
	char helo[HELO_MAX + 1];	/* printable, no spaces, not empty */
	char proto[8];			/* "SMTP", "ESMTP" or "ESMTPS" */
	char tls[160];			/* "" or "PROTOCOL CIPHER" */
	char ccert[512];		/* "" or "FINGERPRINT SUBJECT" */
	int body8;			/* BODY=8BITMIME declared or 8-bit seen */
	off_t body_flag_offset;		/* where the 7 or 8 of "body" is (writer) */
	char sender[ADDR_PATH_MAX + 3];	/* with angle brackets: "<>" */
	char **rcpt;			/* each with angle brackets */
	size_t nrcpt;
	long long size;			/* bytes of message after the envelope */
	off_t body_offset;		/* where the message starts (reader) */
	off_t size_offset;		/* where the size digits are (writer) */
};

/* Write the envelope records and the blank line that ends them at the
 * start of fd (a new, empty file), with the size field as a fixed-width
 * placeholder; sets e->size_offset. Returns 0 or -1 with errno. */
int spool_write_envelope(int fd, struct envelope *e);

/* Fill in the body flag (e->body8) and the size (e->size), which are
 * known only at the end of the message. */
int spool_write_final(int fd, const struct envelope *e);

/* write(2) all of p, retrying on EINTR. Returns 0 or -1 with errno. */
int spool_write(int fd, const char *p, size_t n);

/* A buffered writer that keeps the first error (an errno value), so a
 * whole message can be written and judged once, at the end. */
struct spool_out {
	int fd;
	int err;
	size_t len;
	int (*sink)(void *ctx, const char *p, size_t n);	/* or NULL */
	void *ctx;
	char buf[65536];
};

/* Start writing to fd; buffers, then spool_write()s, what it is given. */
void spool_out_init(struct spool_out *o, int fd);
/* Start writing through sink(ctx, p, n), which returns 0 or -1 (an SMTP
 * connection), instead of to a descriptor. */
void spool_out_to(struct spool_out *o,
    int (*sink)(void *ctx, const char *p, size_t n), void *ctx);
void spool_put(struct spool_out *o, const char *p, size_t n);
/* spool_put() in the shape of msg_copy()'s put: o is the spool_out;
 * 0, or -1 once a write has failed. */
int spool_out_put(void *o, const char *p, size_t n);
/* Write what is buffered: 0, or -1 when any write failed (see o->err). */
int spool_flush(struct spool_out *o);

/*
 * Read and check the envelope of an open spool file. Enforces: magic
 * and version, every record once and in order, values of the right
 * shape, addresses that pass addr_check_stored, at most max_rcpt
 * recipients, a record at most SPOOL_LINE_MAX bytes, and a file whose
 * length is exactly body_offset + size. Leaves the offset of fd
 * unspecified. Returns 0, or -1 with a reason in why.
 */
int spool_read_envelope(int fd, struct envelope *e, size_t max_rcpt,
    char *why, size_t whylen);

void spool_free_envelope(struct envelope *e);

/* Is s a value the format allows: non-empty printable ASCII without
 * spaces, at most max bytes (HELO names, addresses, ids)? */
int spool_token_ok(const char *s, size_t max);

#endif
