/*
 * smtp_connect.c - the SMTP and LMTP transport (deliver_smtp, see
 * transport.h and smtp.h): one configured relay, one connection kept
 * open from one message to the next.
 *
 * CONNECT: no shell, no MX lookup: a name is resolved with
 * getaddrinfo(3) and at most SMTP_ADDRS_MAX of its addresses are tried
 * in turn, an [address] literal never is; lmtp:unix:/path is a stream
 * socket. Each connect(2) waits at most smtp_connect_timeout. A
 * timeout, a lost connection or a malformed reply defers every
 * recipient not yet decided, with 4.4.2 (4.4.1 when connecting fails).
 *
 * CACHE: the connection stays open for the next message when it is in
 * a known state. When the RSET that ends a transaction before its
 * message fails, and after a 421, a timeout, a malformed reply, a
 * surplus reply or a reply not read, the connection is closed instead.
 * A cached connection that the server spoke on or hung up while idle
 * is replaced; one that dies before its first reply (write error, EOF,
 * 421) is replaced once and the transaction starts over.
 * smtp_close_cached() says QUIT and waits at most SMTP_QUIT_WAIT s.
 *
 * TRUST: the envelope was checked by spool_read_envelope; still, no
 * byte outside 0x21..0x7e of it ever reaches the wire (checked, and
 * the message deferred).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "log.h"
#include "smtp.h"

#define SMTP_ADDRS_MAX	8	/* addresses of one name tried */
#define SMTP_QUIT_WAIT	10	/* seconds at most for QUIT */

static struct conn cache = { .fd = -1 };

/* connect_one - non-blocking connect, waited for until deadline */
static int
connect_one(int fd, const struct sockaddr *sa, socklen_t len,
    long long deadline)
{
	socklen_t elen = sizeof(int);
	int err = 0, rc;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	if ((rc = wait_fd(fd, POLLOUT, deadline)) <= 0)
		return rc == 0 ? ETIMEDOUT : errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return errno;
	return err;
}

/* open_unix - lmtp:unix:/path; 0, or -1 with every recipient deferred */
static int
open_unix(struct conn *c, const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	struct sockaddr_un sun;
	int err = ENAMETOOLONG;

	snprintf(d->relay, sizeof(d->relay), "%.300s", t->path);
	snprintf(c->peer, sizeof(c->peer), "%.300s", t->path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(t->path) < sizeof(sun.sun_path)) {
		memcpy(sun.sun_path, t->path, strlen(t->path) + 1);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		err = c->fd < 0 ? errno : connect_one(c->fd,
		    (struct sockaddr *)&sun, sizeof(sun),
		    deadline_s(cf->smtp_connect_timeout));
	}
	if (err == 0)
		return 0;
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.1", "connect to %s: %s", t->path,
	    strerror(err));
	return -1;
}

/* try_addr - one address of the relay: 0, or an errno value */
static int
try_addr(struct conn *c, const struct transport *t, const struct addrinfo *ai,
    long long secs, struct delivery *d)
{
	char addr[64];
	int err, one = 1;

	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr),
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(addr, sizeof(addr), "unknown");
	snprintf(c->peer, sizeof(c->peer), "%.255s[%.56s]", t->host, addr);
	snprintf(d->relay, sizeof(d->relay), "%.313s:%hu", c->peer,
	    (unsigned short)t->port);
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	err = c->fd < 0 ? errno : connect_one(c->fd, ai->ai_addr,
	    ai->ai_addrlen, deadline_s(secs));
	if (err != 0 && c->fd >= 0) {
		(void)close(c->fd);
		c->fd = -1;
	}
	/* Commands and the final dot go out as whole writes already; Nagle
	 * would only hold the last small one back for a delayed ACK. */
	if (err == 0)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return err;
}

/* open_tcp - resolve (names only) and try each address in turn */
static int
open_tcp(struct conn *c, const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	struct addrinfo hints, *res, *ai;
	char port[8];
	int rc, n, err = EHOSTUNREACH;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (t->literal ? AI_NUMERICHOST : 0);
	snprintf(port, sizeof(port), "%u", t->port);
	snprintf(d->relay, sizeof(d->relay), "%s:%u", t->host, t->port);
	if ((rc = getaddrinfo(t->host, port, &hints, &res)) != 0) {
		deliver_set(d, SET_UNDECIDED, R_DEFER, rc == EAI_AGAIN ? "4.4.3" : "4.4.4",
		    "Host or domain name not found. Name service error for "
		    "name=%s: %s", t->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res, n = 0; ai != NULL && n < SMTP_ADDRS_MAX && err != 0;
	    ai = ai->ai_next, n++)
		err = try_addr(c, t, ai, cf->smtp_connect_timeout, d);
	freeaddrinfo(res);
	if (err == 0)
		return 0;
	deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.1", "connect to %s: %s", d->relay,
	    strerror(err));
	return -1;
}

/* conn_close - end a connection, politely (QUIT) when quit is set */
static void
conn_close(struct conn *c, int quit)
{
	struct reply r;

	if (c->fd < 0)
		return;
	if (quit && !c->broken)
		(void)command(c, SMTP_QUIT_WAIT, &r, "QUIT");
	/* No close_notify: after QUIT the server hangs up itself, and
	 * a broken session gets nothing more. */
	SSL_free(c->ssl);
	c->ssl = NULL;
	ERR_clear_error();
	(void)close(c->fd);
	c->fd = -1;
}

/* fail_io - defer what is undecided after a timeout, EOF or garbage */
static void
fail_io(struct delivery *d, const struct conn *c)
{
	const char *stage = c->stage ? c->stage : "talking to it";

	if (c->err == IO_TIMEOUT)
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.2", "conversation with %s timed "
		    "out while %s", c->peer, stage);
	else if (c->err == IO_GARBAGE)
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.2", "protocol error: %s sent a "
		    "malformed reply while %s", c->peer, stage);
	else if (c->err == IO_SURPLUS)
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.2", "protocol error: %s sent "
		    "more replies than commands while %s", c->peer, stage);
	else
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.2", "lost connection with %s "
		    "while %s", c->peer, stage);
}

/* envelope_ok - nothing from the spool file could break a command line */
static int
envelope_ok(const struct delivery *d)
{
	const struct envelope *e = d->env;
	const char *v[] = { e->sender, e->helo, e->proto, e->client, e->id };
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!spool_token_ok(v[i], SPOOL_LINE_MAX))
			return 0;
	for (i = 0; i < d->n; i++)
		if (d->idx[i] >= e->nrcpt ||
		    !spool_token_ok(e->rcpt[d->idx[i]], SPOOL_LINE_MAX))
			return 0;
	return 1;
}

/* same_relay - is the cached connection for transport t? */
static int
same_relay(const struct conn *c, const struct transport *t)
{
	return c->key.kind == t->kind && c->key.literal == t->literal &&
	    c->key.port == t->port && strcmp(c->key.host, t->host) == 0 &&
	    strcmp(c->key.path, t->path) == 0;
}

/* stale - did the idle server speak or hang up (421, EOF)? Over TLS,
 * records that carry no data (TLS 1.3 session tickets) do not count. */
static int
stale(const struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	size_t got;
	char b;
	int rc;

	if (surplus(c))
		return 1;
	if (poll(&pfd, 1, 0) == 0)
		return 0;
	if (c->ssl == NULL)
		return 1;
	ERR_clear_error();
	if ((rc = SSL_peek_ex(c->ssl, &b, 1, &got)) == 1)
		return 1;
	rc = SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ;
	ERR_clear_error();
	return rc;
}

/* conn_get - the cached connection, or a new one greeted and EHLO'd;
 * NULL when every recipient has been given a verdict */
static struct conn *
conn_get(const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	struct conn *c = &cache;
	int rc;

	if (c->fd >= 0 && (!same_relay(c, t) || stale(c)))
		conn_close(c, same_relay(c, t) ? 0 : 1);
	if (c->fd >= 0) {
		c->reused = 1;
		c->ident = d->ident;
		snprintf(d->relay, sizeof(d->relay), "%.319s", c->relay);
		return c;
	}
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->key = *t;
	c->lmtp = t->kind == T_LMTP;
	c->ident = d->ident;
	c->level = tls_level(cf, t);
	reply_init(&c->rp);
	rc = c->lmtp && t->path[0] ? open_unix(c, t, cf, d) :
	    open_tcp(c, t, cf, d);
	if (rc < 0)
		return NULL;
	snprintf(c->relay, sizeof(c->relay), "%.319s", d->relay);
	if ((rc = greet(c, cf, d)) == 0)
		return c;
	if (rc < 0)
		fail_io(d, c);
	conn_close(c, rc > 0);
	return NULL;
}

/* attempt - one connection, one transaction; 1: the cached connection
 * was dead before anything was decided, try again on a new one */
static int
attempt(const struct transport *t, const struct conf *cf,
    struct delivery *d, unsigned char *acc, int again)
{
	struct txn x;
	struct conn *c;
	long long t0 = now_ms();

	c = conn_get(t, cf, d);
	d->setup += (double)(now_ms() - t0) / 1000;
	if (c == NULL)
		return 0;
	memset(&x, 0, sizeof(x));
	memset(acc, 0, d->n);
	x.c = c;
	x.cf = cf;
	x.d = d;
	x.acc = acc;
	if (transaction(&x) < 0) {
		if (again && c->reused && x.replies == 0 && c->err == IO_LOST) {
			conn_close(c, 0);
			return 1;
		}
		fail_io(d, c);
	}
	if (x.replies < x.sent)
		c->broken = 1;	/* not read to the end: never reused */
	else
		(void)out_of_step(&x);
	if (c->broken)
		conn_close(c, 0);
	return 0;
}

/* deliver_smtp - the message to the SMTP or LMTP relay */
void
deliver_smtp(const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	unsigned char *acc;

	snprintf(d->relay, sizeof(d->relay), "%.300s", t->kind == T_LMTP &&
	    t->path[0] ? t->path : t->host);
	deliver_all(d, R_PENDING, "", "%s", "");
	if (!spool_token_ok(helo_name(cf), SPOOL_LINE_MAX)) {
		deliver_all(d, R_DEFER, "4.3.5", "smtp_helo_name is not usable "
		    "in an EHLO command");
		return;
	}
	if (!envelope_ok(d)) {
		log_warn_as(d->ident, "%s: envelope holds bytes unsafe for "
		    "SMTP", d->env->id);
		deliver_all(d, R_DEFER, "4.3.0", "envelope holds bytes unsafe "
		    "for SMTP");
		return;
	}
	if (d->n == 0)
		return;
	if ((acc = calloc(d->n, 1)) == NULL) {
		deliver_all(d, R_DEFER, "4.3.0", "out of memory");
		return;
	}
	if (attempt(t, cf, d, acc, 1) == 1) {
		deliver_all(d, R_PENDING, "", "%s", "");
		(void)attempt(t, cf, d, acc, 0);
	}
	free(acc);
	deliver_set(d, SET_UNDECIDED, R_DEFER, "4.3.0", "no verdict from %s", d->relay);
}

/* smtp_close_cached - QUIT and close the cached connection, if any */
void
smtp_close_cached(void)
{
	conn_close(&cache, 1);
}
