/*
 * session.h - one SMTP session: state, transaction, counters.
 *
 * session.c holds the state machine, the commands and every reply and
 * log line; data.c only stores a message's text and says what became of
 * it. Both trust the configuration and nothing that arrives on the
 * connection.
 */
#ifndef SMAP_SESSION_H
#define SMAP_SESSION_H

#include "conf.h"
#include "io.h"
#include "bounds.h"
#include "peer.h"
#include "spool.h"

enum state { S_INIT, S_HELO, S_MAIL, S_RCPT };

#define SESSION_CMDS 32		/* rows of the command table, at most */

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
	const char *verb;		/* the command being served, for logs */
	char reply[512];		/* the last reply sent */
	struct io io;			/* last: io_init() leaves its buffers be */
};

/* Run one session on fds rfd/wfd, offering TLS when tls is not NULL;
 * returns when it is over. */
void session_run(struct session *s, const struct conf *cf,
    const struct tls_server *tls, int rfd, int wfd);

#endif
