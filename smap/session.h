/*
 * session.h - one SMTP session: state, transaction, counters.
 *
 * session.c holds the state machine and the commands; data.c receives
 * a message into the spool. Both trust the configuration and nothing
 * that arrives on the connection.
 */
#ifndef SMAP_SESSION_H
#define SMAP_SESSION_H

#include "conf.h"
#include "io.h"
#include "bounds.h"
#include "peer.h"

enum state { S_INIT, S_HELO, S_MAIL, S_RCPT };

/* Per-command counters for the "disconnect" log line. */
enum counter { C_HELO, C_EHLO, C_MAIL, C_RCPT, C_DATA, C_RSET, C_NOOP,
	C_VRFY, C_EXPN, C_HELP, C_QUIT, C_STARTTLS, C_UNIMPL, C_UNKNOWN,
	C_NCOUNTERS };

struct session {
	const struct conf *cf;
	struct peer peer;
	enum state state;
	int esmtp, quit, errors, junk, messages, after_failed_data;
	long long overshoot;		/* recipients past the limit, this session */
	int got_354;			/* DATA of this command went past 354 */
	char helo[HELO_MAX + 1];
	/* the transaction */
	char id[SPOOL_ID_MAX + 1];	/* given at the first accepted RCPT */
	char sender[ADDR_PATH_MAX + 3];	/* "<...>" */
	long long declared_size;
	int body8;
	char **rcpt;			/* "<...>" each */
	size_t nrcpt, rcpt_refused;
	int ok[C_NCOUNTERS], total[C_NCOUNTERS];
	const struct tls_server *tls;	/* NULL: no STARTTLS */
	char tls_info[160];		/* after STARTTLS: "PROTOCOL CIPHER" */
	char ccert[512];		/* a trusted client certificate: "FP SUBJECT" */
	const char *verb;		/* the command being served, for logs */
	char reply[512];		/* the last reply sent */
	struct io io;			/* last: io_init() leaves its buffers be */
};

/* Run one session on fds rfd/wfd, offering TLS when tls is not NULL;
 * returns when it is over. */
void session_run(struct session *s, const struct conf *cf,
    const struct tls_server *tls, int rfd, int wfd);

/* Send a reply; a 4xx or 5xx counts as an error of the client. */
void session_reply(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Log the last reply as a refusal, in Postfix's "reject:" shape;
 * to is the recipient as received (escaped here), or NULL. */
void session_reject_log(struct session *s, const char *stage,
    const char *to, size_t tolen);

/* Send a 421 (or other closing) reply, log why, and end the session. */
void session_close(struct session *s, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Forget the transaction (RSET, HELO, after DATA). */
void session_reset(struct session *s);

/* The DATA command and the message (data.c). */
void data_receive(struct session *s);

#endif
