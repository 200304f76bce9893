/*
 * session.h - one SMTP session: its state, its transaction, its counters,
 * and what every command shares (session.c).
 *
 * Calls go one way: smtpd.c (the loop) -> commands.c (each command) ->
 * session.c and data.c (the store) -> io.c. All of them trust the
 * configuration and nothing that arrives on the connection.
 */
#ifndef SMAP_SESSION_H
#define SMAP_SESSION_H

#include "anvil.h"
#include "conf.h"
#include "io.h"
#include "bounds.h"
#include "peer.h"
#include "map.h"
#include "spool.h"
#include "tls_server.h"

enum state { S_INIT, S_HELO, S_MAIL, S_RCPT };

#define SESSION_CMDS 32		/* rows of the command table, at most */

/* What smap opens before the jail, for the session to use inside it. */
struct opened {
	const struct tls_server *tls;	/* NULL: no STARTTLS */
	struct map rcpt;		/* relay_recipient_maps, when open */
	char rcpt_why[MAP_WHY_MAX];	/* why it is not, or "" */
};

struct session {
	const struct conf *cf;
	struct peer peer;
	enum state state;
	int esmtp, quit, errors, junk, messages, after_failed_data;
	long long overshoot;		/* recipients past the limit, this session */
	/* the transaction (id, sender, recipients, body) and what the spool
	 * file records of the session (helo, client, proto, tls, ccert),
	 * handed to the store as it is */
	struct envelope tx;
	long long declared_size;	/* MAIL ... SIZE= */
	size_t rcpt_refused;
	int ok[SESSION_CMDS], total[SESSION_CMDS];	/* by command table row */
	const struct tls_server *tls;	/* NULL: no STARTTLS */
	const struct opened *opened;
	const char *verb;		/* the command being served, for logs */
	char reply[512];		/* the last reply sent */
	struct io io;			/* last: io_init() leaves its buffers be */
};

/* Queue a reply (printf-style) and remember it; 4xx/5xx count as errors. */
void session_reply(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A last reply, "WHY after VERB from ..." logged, and the end. */
void session_close(struct session *s, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "ID: reject: STAGE from ...: <last reply>; from=<> [to=<to>] ..." */
void session_reject_log(struct session *s, const char *stage, const char *to,
    size_t tolen);
/* Count event ev of the client (anvil.h): 1 after the reply when it is
 * past a limit, else 0. */
int session_limited(struct session *s, enum anvil_event ev);
/* Forget the transaction (back to S_HELO when past it). */
void session_reset(struct session *s);
/* After a refused DATA the text may follow: what is pipelined behind it
 * ends the session; the next line must be a command. */
void session_data_refused(struct session *s);
/* The TLS handshake and its log line: 0, or -1 (the session must end). */
int session_tls(struct session *s);

#endif
