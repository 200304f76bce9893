/*
 * smtp.h - the parts of the SMTP and LMTP client (deliver_smtp() in
 * transport.h) and what they share: one connection (struct conn) and
 * one message's transaction on it (struct txn).
 *
 * The client is split along the seams of Postfix's: each file calls
 * only the ones below it, never one above:
 *
 *	smtp_connect.c	deliver_smtp(): connect, reuse the cached
 *	     |		connection, one attempt (and one more when the
 *	     |		cached connection was dead), QUIT
 *	smtp_proto.c	greeting, EHLO and its features, XFORWARD,
 *	     |		MAIL/RCPT/DATA with PIPELINING, the message,
 *	     |		LMTP's per-recipient replies, RSET, the verdicts
 *	     |		the replies give
 *	smtp_tls.c  smtp_sasl.c
 *	     |		STARTTLS: policy, handshake, certificate checks;
 *	     |		AUTH PLAIN/LOGIN with sasl.c's credentials
 *	smtp_chat.c	deadlines, bytes in and out (plain or TLS), one
 *	     |		command, one reply, every reply of a transaction
 *	     |		counted
 *	reply.c		the bounded reply parser
 *
 * smtp_connect.c also calls tls_level() and smtp_chat.c directly; no
 * call goes up. Nothing here is for the rest of smapd, which sees only
 * transport.h.
 */
#ifndef SMAPD_SMTP_H
#define SMAPD_SMTP_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "reply.h"
#include "transport.h"

#define SMTP_CMD_MAX	512	/* one command line, CRLF included */

/* XFORWARD attributes the server named in its EHLO reply. */
#define XF_ADDR		0x01
#define XF_PORT		0x02
#define XF_HELO		0x04
#define XF_PROTO	0x08
#define XF_IDENT	0x10
#define XF_SOURCE	0x20

/* AUTH mechanisms the server named that we can use. */
#define AUTH_OFFERED	0x01	/* AUTH with any mechanism */
#define AUTH_PLAIN	0x02
#define AUTH_LOGIN	0x04

enum ioerr { IO_OK, IO_LOST, IO_TIMEOUT, IO_GARBAGE, IO_SURPLUS };

/* One connection to the relay: smtp_connect.c caches one. */
struct conn {
	int fd;			/* -1: none */
	struct transport key;	/* where it goes, to match the cache */
	char peer[320];		/* "host[addr]", or the socket path */
	char relay[320];	/* "host[addr]:port", or the socket path */
	int lmtp;
	const char *ident;	/* for what it logs: the delivery's */
	int reused;		/* from the cache: may be dead */
	int broken;		/* not fit for another transaction */
	enum ioerr err;		/* why the last I/O failed */
	const char *stage;	/* what we were doing, for the text */
	int pipelining, eightbit, size, starttls;
	long long size_max;	/* SIZE limit; 0: none */
	unsigned xforward;	/* XF_* offered; 0 once refused */
	unsigned auth;		/* AUTH_* */
	enum tlslevel level;	/* what smtp_tls_security_level asks */
	SSL *ssl;		/* after STARTTLS; NULL: plaintext */
	int named;		/* a name or address to match the cert to */
	int seen;		/* the verify callback saw the leaf */
	int chain_err;		/* first X509_V_ERR_* but a name mismatch */
	int name_err;		/* first name or address mismatch */
	struct reply_parser rp;
	size_t inpos, inlen;
	char in[4096];
};

/* One message's transaction on a connection. */
struct txn {
	struct conn *c;
	const struct conf *cf;
	struct delivery *d;
	unsigned char *acc;	/* acc[i]: RCPT of idx[i] got 2xx */
	size_t nacc;
	size_t sent;		/* commands written: replies due */
	size_t replies;		/* replies read so far */
	int stop;		/* decided by MAIL, DATA or 421: no more */
	int data;		/* DATA got 354: send the message */
	long long deadline;	/* for writing the message */
	char xf[SMTP_CMD_MAX + 3];	/* XFORWARD to send ahead of MAIL */
	struct spool_out o;	/* the message, buffered so that a small
				 * one and its "." leave in one write */
};

/*
 * smtp_chat.c
 */

/* The moment secs seconds from now, on now_ms()'s clock. */
long long deadline_s(long long secs);

/* Poll fd for ev until deadline: 1 ready, 0 timed out, -1 error. */
int wait_fd(int fd, short ev, long long deadline);

/* An SSL call on c returned ret: wait for what it wants and return 1
 * (call it again), or 0 with c->err (failed, timed out). */
int tls_retry(struct conn *c, int ret, long long deadline);

/* All n bytes of p to the server before deadline, plain or TLS; 0, or
 * -1 with c->err. */
int conn_write(struct conn *c, const char *p, size_t n, long long deadline);

/* The next complete reply within secs seconds: 0, or -1 with c->err
 * and c->broken (a malformed reply is logged). */
int read_reply(struct conn *c, long long secs, struct reply *r);

/* Bytes from the server that no command has asked for yet? */
int surplus(const struct conn *c);

/* One command outside a transaction (EHLO, STARTTLS, AUTH, QUIT),
 * CRLF added, and its reply with the same timeout; a 421 breaks c. */
int command(struct conn *c, long long secs, struct reply *r,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* When every command of x has had its reply: bytes still unread answer
 * nothing; 1: said once (IO_SURPLUS), the connection given up. */
int out_of_step(struct txn *x);

/* The reply to the oldest command of x not yet answered, counted. */
int next_reply(struct txn *x, long long secs, struct reply *r);

/* One command of x (CRLF added), alone, counted, and its reply. */
int txn_command(struct txn *x, long long secs, struct reply *r,
    const char *cmd);

/*
 * smtp_tls.c
 */

/* smtp_tls_security_level for the next hop t ("": verify for a name,
 * may for an [address] or a unix socket). */
enum tlslevel tls_level(const struct conf *cf, const struct transport *t);

/* After EHLO: STARTTLS as c->level asks, the handshake and the
 * certificate checks; 0 go on (over TLS: EHLO must be said again; or
 * in plaintext, for may), 1 every recipient decided, -1 I/O. */
int starttls(struct conn *c, const struct conf *cf, struct delivery *d);

/*
 * smtp_sasl.c
 */

/* AUTH with the credentials smtp_sasl_password_maps has for c's next
 * hop, when there are any and the server offers it; 0 go on, 1 every
 * recipient decided (deferred), -1 I/O. */
int authenticate(struct conn *c, const struct conf *cf, struct delivery *d);

/*
 * smtp_proto.c
 */

/* smtp_helo_name, or myhostname when it is empty. */
const char *helo_name(const struct conf *cf);

/* The 220 greeting, EHLO, STARTTLS (and EHLO again) and AUTH as
 * configured; 0, 1 (every recipient decided) or -1 (I/O, see c->err). */
int greet(struct conn *c, const struct conf *cf, struct delivery *d);

/* One message on x->c: 0 (verdicts set) or -1 (I/O, see c->err). */
int transaction(struct txn *x);

#endif
