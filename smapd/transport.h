/*
 * transport.h - handing one message to the backend.
 *
 * smapd's queue manager gives a transport a message that has passed
 * every check of spool_read_envelope() and the recipients still pending;
 * the transport reports one result per recipient. Transports trust the
 * envelope's values (they were re-checked) but not the backend: every
 * reply, exit status and output of the backend is bounded and parsed
 * strictly, and anything unexpected is a temporary failure.
 */
#ifndef SMAPD_TRANSPORT_H
#define SMAPD_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include "conf.h"
#include "spool.h"

enum rstatus { R_PENDING, R_SENT, R_DEFER, R_BOUNCE };

/* The word for each status, as the log ("status=sent"), state files and
 * smapq write it; at R_RETURNED, a state file's word for a bounce whose
 * DSN went out. */
#define R_RETURNED 4
extern const char *const status_names[R_RETURNED + 1];

struct rcpt_result {
	enum rstatus status;
	char dsn[16];		/* "2.0.0", "4.4.1", "5.1.1" */
	char text[512];		/* what the backend said, printable ASCII */
	int notified;		/* R_BOUNCE: the sender has had its DSN */
};

struct delivery {
	const struct envelope *env;	/* env->rcpt: every recipient */
	int fd;			/* the spool file; the message is the env->size
				 * bytes at env->body_offset, CRLF line ends */
	const size_t *idx;	/* indexes into env->rcpt to deliver now */
	size_t n;		/* how many */
	struct rcpt_result *res;	/* n results, one per idx[i] */
	const char *ident;	/* the transport's log identity, for what it
				 * logs ("smap/smtp"); NULL: the program's */
	char relay[320];	/* for the log: "host[addr]:port", "local" */
	double setup;		/* seconds spent connecting (DNS, greeting,
				 * EHLO, TLS, AUTH): delays= c */
};

enum tkind { T_SMTP, T_LMTP, T_SENDMAIL, T_MAILDIR };

struct transport {
	enum tkind kind;
	char host[256];		/* smtp/lmtp: name or address, no brackets */
	int literal;		/* [host]: no name lookup wanted */
	unsigned port;		/* default 25 (smtp) or 24 (lmtp) */
	char path[4096];	/* lmtp:unix:/path, or maildir:/path/ */
};

/*
 * Parse default_transport: "smtp:[192.0.2.1]:25", "smtp:host:2525",
 * "smtp:host" (port 25), "lmtp:[::1]:24", "lmtp:unix:/run/lmtp",
 * "sendmail", "maildir:/var/mail/smap/". Returns 0, or -1 with a reason.
 */
int transport_parse(const char *spec, struct transport *t, char *why,
    size_t whylen);

/*
 * Deliver d to the backend. Sets every d->res[i] to R_SENT, R_DEFER or
 * R_BOUNCE with an enhanced status code and the backend's words, and
 * fills d->relay. Never leaves one R_PENDING.
 */
void deliver_smtp(const struct transport *t, const struct conf *cf,
    struct delivery *d);
void deliver_sendmail(const struct transport *t, const struct conf *cf,
    struct delivery *d);
void deliver_maildir(const struct transport *t, const struct conf *cf,
    struct delivery *d);

/* Close a cached SMTP/LMTP connection (QUIT), e.g. at the end of a run. */
void smtp_close_cached(void);

/* Set one recipient's result: status, enhanced code, text (printf). */
void result_set(struct rcpt_result *r, enum rstatus st, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Set results to the same status, code and text: every one (SET_ALL),
 * or only those still R_PENDING (SET_UNDECIDED). */
enum setwhich { SET_ALL, SET_UNDECIDED };
void deliver_set(struct delivery *d, enum setwhich which, enum rstatus st,
    const char *dsn, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define deliver_all(d, ...) deliver_set((d), SET_ALL, __VA_ARGS__)

/*
 * Pass the message to put() in pieces, converting line ends: MSG_SMTP
 * keeps CRLF and dot-stuffs lines starting with "." (the caller sends
 * the final "." line); MSG_LF writes LF line ends (sendmail, maildir).
 * Reads exactly env->size bytes from env->body_offset with pread; fails
 * if the file holds fewer. put returns 0 or -1. Returns 0, or -1 (errno
 * set when reading failed, 0 when put failed).
 */
enum msgform { MSG_SMTP, MSG_LF };
int msg_copy(const struct delivery *d, enum msgform form,
    int (*put)(void *ctx, const char *p, size_t n), void *ctx);

#endif
