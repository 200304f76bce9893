/*
 * submit.h - handing one message to the local smap over SMTP, for
 * smap-sendmail.
 *
 * One connection, one transaction, one command at a time: the
 * greeting, EHLO (HELO when EHLO is refused), MAIL, a RCPT for each
 * recipient, DATA, the message dot-stuffed, the final reply, QUIT.
 * Nothing follows a failed step but QUIT. Every reply is read with
 * smapd/reply.c's bounded parser and every wait has a timeout.
 *
 * submit() returns a sysexits status, the exit status of smap-sendmail:
 *   0               smap answered 250 to the end of the message: it is
 *                   in smap's spool; nothing later changes this
 *   EX_TEMPFAIL     no connection, a timeout, a 4xx reply, a reply that
 *                   is none, anything said between the 354 and the
 *                   final "." (which is then not sent), or the
 *                   connection lost, before that 250
 *   EX_UNAVAILABLE  5xx to the greeting, to HELO, or to DATA
 *   EX_DATAERR      5xx to MAIL or to the end of the message
 *   EX_NOUSER       5xx to a RCPT (no message was sent)
 * and says in res->text what happened, in words for a person.
 */
#ifndef SMAPD_SUBMIT_H
#define SMAPD_SUBMIT_H

#include <stddef.h>
#include <sys/socket.h>

/* Where smap listens: submit_server, "[address]:port". */
struct submit_server {
	struct sockaddr_storage ss;
	socklen_t len;
	char name[80];		/* as given, for messages */
};

struct submit_job {
	const char *helo;		/* the EHLO name (myhostname) */
	const char *sender;		/* "" for the null sender */
	char *const *rcpt;		/* addr_parse()'d, without <> */
	size_t nrcpt;
	const char *data;		/* CRLF lines, not dot-stuffed */
	size_t len;
	int eightbit;			/* BODY=8BITMIME when offered */
	int connect_timeout;		/* seconds: the TCP connection */
	int cmd_timeout;		/* each reply before the message */
	int data_timeout;		/* each write of it, its final reply */
};

struct submit_result {
	char text[2400];	/* what went wrong, or the final reply */
	char id[32];		/* smap's queue id ("queued as"), or "" */
};

/*
 * Parse submit_server: "[127.0.0.1]:25", "[::1]:2525", "[127.0.0.1]"
 * (port 25); an IPv6 address may carry Postfix's "IPv6:" prefix. No
 * names: nothing is looked up. Returns 0, or -1 with a reason in why.
 */
int submit_server_parse(const char *spec, struct submit_server *s,
    char *why, size_t whylen);

/* Run the transaction; the status above. */
int submit(const struct submit_server *srv, const struct submit_job *job,
    struct submit_result *res);

#endif
