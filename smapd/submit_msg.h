/*
 * submit_msg.h - the message a local program gives smap-sendmail, made
 * ready for smap.
 *
 * msg_read() takes the caller's bytes up to end of file (or up to a
 * line holding only "." unless dots are ignored, as sendmail does
 * without -i) and turns every line end, LF, CRLF or a lone CR, into
 * CRLF: local input is trusted to mean lines, unlike the network's.
 * msg_build() writes the message smap gets: the header fields without
 * Bcc: and Resent-Bcc:, then Date:, Message-ID: and From: when they are
 * missing, one empty line and the body; with -t it also collects the
 * recipients of To:, Cc: and Bcc:. Every buffer is bounded by its max
 * (message_size_limit).
 */
#ifndef SMAPD_SUBMIT_MSG_H
#define SMAPD_SUBMIT_MSG_H

#include <stddef.h>
#include <time.h>
#include "submit_addr.h"

#define FROM_NAME_MAX 128	/* bytes of a display name used for From: */

/* A growing buffer that never holds more than max bytes. */
struct mbuf {
	char *p;
	size_t len, cap, max;
};

/* What msg_build() adds. */
struct msg_ids {
	const char *domain;	/* myhostname: Message-ID's right side, and
				 * the domain of addresses without one */
	const char *from_addr;	/* From: when missing, "user@domain" */
	const char *from_name;	/* its display name (-F, GECOS), "" none */
	time_t now;		/* for Date: and Message-ID: */
	unsigned long long unique;	/* random, for Message-ID: */
};

/* Append n bytes; 0, or -1 with errno EFBIG (over max) or ENOMEM. */
int mbuf_put(struct mbuf *b, const char *s, size_t n);
void mbuf_free(struct mbuf *b);

/*
 * Read fd to its end into out (out->max set by the caller). Returns 0,
 * or a sysexits status with a reason in why: EX_DATAERR (more than
 * out->max bytes), EX_IOERR (read failed), EX_OSERR (no memory).
 */
int msg_read(int fd, int ignore_dots, struct mbuf *out, char *why,
    size_t whylen);

/*
 * Build the message from in (as msg_read() left it) into out, adding
 * the recipients of To:, Cc: and Bcc: to rcpts unless it is NULL.
 * Returns 0, or EX_DATAERR (an address that cannot be used, too many
 * recipients, over out->max, a Bcc: field after a line that is no
 * field ended the header) or EX_OSERR, with a reason in why.
 */
int msg_build(const struct mbuf *in, const struct msg_ids *id,
    struct rcptset *rcpts, struct mbuf *out, char *why, size_t whylen);

/* Does the message hold a byte outside ASCII (BODY=8BITMIME)? */
int msg_8bit(const struct mbuf *m);

#endif
