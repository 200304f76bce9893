/*
 * smtp_client.c - the SMTP and LMTP transport: one configured relay,
 * one connection kept open from one message to the next.
 *
 * PROTOCOL: RFC 5321 with PIPELINING (RFC 2920), SIZE (RFC 1870),
 * 8BITMIME (RFC 6152) and Postfix's XFORWARD; LMTP (RFC 2033) with one
 * final reply per accepted recipient. A session: 220 greeting, EHLO
 * (LHLO; HELO when SMTP's EHLO gets 5xx), then per message XFORWARD
 * (when offered), MAIL, RCPT..., DATA, the message, ".". With
 * PIPELINING, MAIL, the RCPTs and DATA go out in groups of at most
 * SMTP_PIPE_MAX commands, XFORWARD ahead of the first group, and the
 * replies are read in order; a refused XFORWARD then drops the
 * connection, since MAIL and the rest are already on their way.
 *
 * RESULTS: a recipient is R_SENT only after the final reply to the
 * message; 4xx defers and 5xx bounces it; a failed MAIL decides every
 * recipient. Anything unexpected at session level (a greeting other
 * than 220, EHLO/HELO refused, XFORWARD refused) defers the whole
 * attempt, even for a 5xx: there is one relay and nowhere else to try.
 * A timeout, a lost connection or a malformed reply defers every
 * recipient not yet decided, with 4.4.2 (4.4.1 when connecting fails).
 * A 421 decides (defers) every recipient not yet decided.
 *
 * CACHE: the connection stays open for the next message when it is in
 * a known state. A transaction that ends before the message (MAIL
 * refused, no recipient accepted) gets its RSET at once, so a cached
 * connection never needs one; when that RSET fails, and after a 421, a
 * timeout, a malformed or a surplus reply, the connection is closed
 * instead. A cached connection that the server spoke on or hung up
 * while idle is replaced; one that dies before its first reply (write
 * error, EOF, 421) is replaced once and the transaction starts over.
 * smtp_close_cached() says QUIT and waits at most SMTP_QUIT_WAIT s.
 *
 * TRUST: the envelope was checked by spool_read_envelope; still, no
 * byte outside 0x21..0x7e of it ever reaches the wire (checked, and
 * the message deferred). The server is not trusted: replies go through
 * reply.c's bounded parser, every read and write has a deadline taken
 * from smtp_connect_timeout, smtp_helo_timeout (greeting, EHLO, MAIL,
 * RCPT, RSET, QUIT) or smtp_data_done_timeout (DATA, the whole message
 * with its ".", each final reply), and every loop is bounded by a count
 * or a deadline.
 * No shell, no MX lookup: a name is resolved with getaddrinfo(3), an
 * [address] literal never is. All socket I/O after connect(2) goes
 * through io_read() and io_write(), plain or TLS.
 *
 * TLS: smtp_tls_security_level "" is verify for a host name and may for
 * an [address] or lmtp:unix. After EHLO, may, encrypt, verify and
 * fingerprint send STARTTLS when it is offered. may goes on in
 * plaintext when it is not offered or refused (454); every other level
 * then defers every recipient (4.7.4 not offered, 4.7.5 refused) and
 * never speaks plaintext past EHLO. A handshake that fails or outlasts
 * smtp_starttls_timeout defers at every level (4.7.5): no plaintext
 * retry on that connection. Bytes buffered when the 220 to STARTTLS
 * arrived were sent in plaintext and are thrown away (CVE-2011-0411);
 * EHLO is repeated over TLS and only its capabilities count. verify
 * wants a chain to a CA of smtp_tls_CAfile/smtp_tls_CApath (OpenSSL's
 * default store when neither is set) and a match of the next-hop name
 * (SNI too) or, for an [address], of its IP address; fingerprint wants
 * the certificate's SHA-256 in smtp_tls_fingerprint_cert_match; either
 * failing defers with 4.7.5. The peer is verified with a callback that
 * only records errors, under SSL_VERIFY_PEER so that a verification
 * that could not run at all ends the handshake. One line per TLS
 * session is logged, Postfix style. The SSL_CTX is made on first use
 * (after the privilege drop: its files must be readable by smapd_user)
 * and kept until its settings change. OpenSSL writes with write(2):
 * smapd ignores SIGPIPE (main.c).
 *
 * AUTH: with smtp_sasl_password_maps set, sasl.c is asked on every new
 * connection, after the (TLS) EHLO, for "[host]:port" then "[host]"
 * ("host:port", "host"; "unix:/path"); a file it refuses defers with
 * 4.7.0. When there are credentials and the server offers AUTH, they
 * are sent only over TLS (else 4.7.0, nothing sent), by PLAIN, else
 * LOGIN (else 4.7.0: no common mechanism). Any reply but 235 defers
 * (never bounces: a wrong password is ours to fix), with the server's
 * words. Credentials go straight from wiped buffers to io_write(), are
 * never logged, and are wiped after use.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "reply.h"
#include "sasl.h"
#include "tls.h"
#include "transport.h"

#define SMTP_ADDRS_MAX	8	/* addresses of one name tried */
#define SMTP_PIPE_MAX	100	/* commands written before reading replies */
#define SMTP_QUIT_WAIT	10	/* seconds at most for QUIT */
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

enum ioerr { IO_OK, IO_LOST, IO_TIMEOUT, IO_GARBAGE };

enum tlslevel { TLS_NONE, TLS_MAY, TLS_ENCRYPT, TLS_VERIFY, TLS_FPRINT };

/* One word of an EHLO keyword's list and its bit. */
struct word {
	const char *name;
	unsigned bit;
};

struct conn {
	int fd;			/* -1: none */
	struct transport key;	/* where it goes, to match the cache */
	char peer[320];		/* "host[addr]", or the socket path */
	char relay[320];	/* "host[addr]:port", or the socket path */
	int lmtp;
	int reused;		/* from the cache: may be dead */
	int broken;		/* not fit for another transaction */
	enum ioerr err;		/* why the last I/O failed */
	const char *stage;	/* what we were doing, for the text */
	int pipelining, eightbit, size, starttls;
	long long size_max;	/* SIZE limit; 0: none */
	unsigned xforward;	/* XF_* */
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
	size_t replies;		/* replies read so far */
	int stop;		/* decided by MAIL, DATA or 421: no more */
	int data;		/* DATA got 354: send the message */
	long long deadline;	/* for writing the message */
	char xf[SMTP_CMD_MAX + 3];	/* XFORWARD to send ahead of MAIL */
	size_t olen;		/* message bytes in out[], not yet written */
	char out[65536];
};

static struct conn cache = { .fd = -1 };

static long long now_ms(void);
static long long deadline_s(long long);
static int	wait_fd(int, short, long long);
static int	tls_retry(struct conn *, int, long long);
static int	io_write(struct conn *, const char *, size_t, long long);
static ssize_t	io_read(struct conn *, char *, size_t, long long);
static int	read_reply(struct conn *, long long, struct reply *);
static int	send_line(struct conn *, long long, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	command(struct conn *, long long, struct reply *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	conn_close(struct conn *, int);
static int	envelope_ok(const struct delivery *);
static const char *helo_name(const struct conf *);
static void	set_result(struct rcpt_result *, enum rstatus, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	from_reply(struct rcpt_result *, enum rstatus,
		    const struct reply *, const char *, const char *);
static void	undecided_from(struct delivery *, enum rstatus,
		    const struct reply *, const char *, const char *);
static void	fail_io(struct delivery *, const struct conn *);
static int	connect_one(int, const struct sockaddr *, socklen_t, long long);
static int	open_unix(struct conn *, const struct transport *,
		    const struct conf *, struct delivery *);
static int	try_addr(struct conn *, const struct transport *,
		    const struct addrinfo *, long long, struct delivery *);
static int	open_tcp(struct conn *, const struct transport *,
		    const struct conf *, struct delivery *);
static int	word_is(const char *, size_t, const char *, size_t *);
static unsigned	ehlo_words(const char *, size_t, const struct word *,
		    size_t);
static void	ehlo_features(struct conn *, const struct reply *);
static int	hello(struct conn *, const struct conf *, struct delivery *);
static enum tlslevel tls_level(const struct conf *,
		    const struct transport *);
static int	verify_cb(int, X509_STORE_CTX *);
static SSL_CTX	*client_ctx(const struct conf *, char *, size_t);
static int	tls_new(struct conn *, SSL_CTX *, char *, size_t);
static int	handshake(struct conn *, const struct conf *, SSL_CTX *,
		    struct delivery *);
static void	tls_log(const struct conn *, const char *, const char *);
static int	tls_check(struct conn *, const struct conf *,
		    struct delivery *);
static int	starttls(struct conn *, const struct conf *,
		    struct delivery *);
static void	sasl_keys(const struct transport *, char [2][4200]);
static size_t	b64_line(char *, size_t, const char *, const char *,
		    size_t);
static int	secret(struct conn *, long long, char *, size_t,
		    struct reply *);
static int	auth_plain(struct conn *, long long, const struct sasl_cred *,
		    struct reply *);
static int	auth_login(struct conn *, long long, const struct sasl_cred *,
		    struct reply *);
static int	auth_with(struct conn *, const struct conf *,
		    const struct sasl_cred *, struct delivery *);
static int	authenticate(struct conn *, const struct conf *,
		    struct delivery *);
static int	greet(struct conn *, const struct conf *, struct delivery *);
static int	same_relay(const struct conn *, const struct transport *);
static int	stale(const struct conn *);
static struct conn *conn_get(const struct transport *, const struct conf *,
		    struct delivery *);
static size_t	xtext(char *, size_t, const char *);
static int	dead_cache(struct txn *, const struct reply *);
static int	xforward(struct txn *);
static int	xforward_reply(struct txn *, const struct reply *);
static int	cmd_line(const struct txn *, size_t, char *, size_t);
static long long cmd_timeout(const struct txn *, size_t);
static const char *cmd_stage(const struct txn *, size_t);
static void	on_mail(struct txn *, const struct reply *);
static void	on_rcpt(struct txn *, size_t, const struct reply *);
static void	on_data(struct txn *, const struct reply *);
static int	on_reply(struct txn *, size_t, const struct reply *);
static int	send_group(struct txn *, size_t, size_t *);
static int	envelope(struct txn *);
static int	put_body(void *, const char *, size_t);
static int	final_replies(struct txn *);
static int	message(struct txn *);
static void	rset(struct txn *);
static int	transaction(struct txn *);
static int	attempt(const struct transport *, const struct conf *,
		    struct delivery *, unsigned char *, int);

/* now_ms - a monotonic clock in milliseconds */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* deadline_s - the moment secs seconds from now */
static long long
deadline_s(long long secs)
{
	return now_ms() + secs * 1000;
}

/* wait_fd - poll for ev until deadline: 1 ready, 0 timed out, -1 error */
static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = ev };
	long long left;
	int rc;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* tls_retry - an SSL call returned ret: wait for what it wants and
 * return 1 (call it again), or 0 with c->err (failed, timed out) */
static int
tls_retry(struct conn *c, int ret, long long deadline)
{
	int e = SSL_get_error(c->ssl, ret), rc;

	ERR_clear_error();
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
		c->err = IO_LOST;
		return 0;
	}
	rc = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
	    deadline);
	if (rc <= 0)
		c->err = rc == 0 ? IO_TIMEOUT : IO_LOST;
	return rc > 0;
}

/* io_write - all of p before deadline, or -1 with c->err */
static int
io_write(struct conn *c, const char *p, size_t n, long long deadline)
{
	size_t done;
	ssize_t w;
	int rc;

	while (n > 0) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			/* no partial writes: on retry, the same p and n */
			if ((rc = SSL_write_ex(c->ssl, p, n, &done)) != 1) {
				if (!tls_retry(c, rc, deadline))
					return -1;
				continue;
			}
			p += done;
			n -= done;
			continue;
		}
		/* Write first; wait only when the socket buffer is full. */
		w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((rc = wait_fd(c->fd, POLLOUT, deadline)) <= 0) {
				c->err = rc == 0 ? IO_TIMEOUT : IO_LOST;
				return -1;
			}
			continue;
		}
		if (w <= 0) {
			c->err = IO_LOST;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* io_read - some bytes before deadline; -1 with c->err (EOF: lost) */
static ssize_t
io_read(struct conn *c, char *buf, size_t len, long long deadline)
{
	size_t done;
	ssize_t got;
	int rc;

	for (;;) {
		if (c->ssl != NULL) {
			/* read first: OpenSSL may hold decrypted bytes */
			ERR_clear_error();
			if ((rc = SSL_read_ex(c->ssl, buf, len, &done)) == 1)
				return (ssize_t)done;
			if (!tls_retry(c, rc, deadline))
				return -1;
			continue;
		}
		if ((rc = wait_fd(c->fd, POLLIN, deadline)) <= 0) {
			c->err = rc == 0 ? IO_TIMEOUT : IO_LOST;
			return -1;
		}
		got = recv(c->fd, buf, len, 0);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			c->err = IO_LOST;
			return -1;
		}
		return got;
	}
}

/* read_reply - the next complete reply within secs seconds */
static int
read_reply(struct conn *c, long long secs, struct reply *r)
{
	long long deadline = deadline_s(secs);
	size_t used;
	ssize_t got;
	int rc;

	for (;;) {
		rc = reply_parse(&c->rp, c->in + c->inpos, c->inlen - c->inpos,
		    &used, r);
		c->inpos += used;
		if (rc == 1)
			return 0;
		if (rc < 0) {
			log_warn("malformed SMTP reply from %s", c->peer);
			c->err = IO_GARBAGE;
			c->broken = 1;
			return -1;
		}
		if ((got = io_read(c, c->in, sizeof(c->in), deadline)) < 0) {
			c->broken = 1;
			return -1;
		}
		c->inpos = 0;
		c->inlen = (size_t)got;
	}
}

/* send_line - format one command, add CRLF, write it */
static int
send_line(struct conn *c, long long secs, const char *fmt, ...)
{
	char line[SMTP_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		c->err = IO_LOST;	/* cannot happen: inputs are bounded */
		c->broken = 1;
		return -1;
	}
	memcpy(line + n, "\r\n", 2);
	if (io_write(c, line, (size_t)n + 2, deadline_s(secs)) < 0) {
		c->broken = 1;
		return -1;
	}
	return 0;
}

/* command - send one command and read its reply, same timeout */
static int
command(struct conn *c, long long secs, struct reply *r, const char *fmt, ...)
{
	char line[SMTP_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		c->err = IO_LOST;	/* cannot happen: inputs are bounded */
		c->broken = 1;
		return -1;
	}
	if (send_line(c, secs, "%s", line) < 0 || read_reply(c, secs, r) < 0)
		return -1;
	if (r->code == 421)
		c->broken = 1;
	return 0;
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

/* helo_name - smtp_helo_name, or myhostname when it is empty */
static const char *
helo_name(const struct conf *cf)
{
	const char *h = cf->smtp_helo_name;

	if (h == NULL || *h == '\0')
		h = cf->myhostname;
	return h == NULL ? "" : h;
}

/* set_result - one recipient's verdict */
static void
set_result(struct rcpt_result *res, enum rstatus st, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	res->status = st;
	snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
}

/* from_reply - a verdict in the server's words, Postfix style; the
 * enhanced code keeps its detail but takes the verdict's class */
static void
from_reply(struct rcpt_result *res, enum rstatus st, const struct reply *r,
    const char *peer, const char *cmd)
{
	char cls = st == R_SENT ? '2' : st == R_BOUNCE ? '5' : '4';
	char dsn[16];
	const char *sp = r->dsn[0] ? " " : "";

	snprintf(dsn, sizeof(dsn), "%c%s", cls, r->dsn[0] ? r->dsn + 1 : ".0.0");
	if (st == R_SENT)
		set_result(res, st, dsn, "%d %s%s%s", r->code, r->dsn, sp,
		    r->text);
	else if (cmd == NULL)
		set_result(res, st, dsn, "%s refused to talk to me: %d %s%s%s",
		    peer, r->code, r->dsn, sp, r->text);
	else
		set_result(res, st, dsn, "%s said: %d %s%s%s (in reply to %s "
		    "command)", peer, r->code, r->dsn, sp, r->text, cmd);
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
	else
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.4.2", "lost connection with %s "
		    "while %s", c->peer, stage);
}

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

/* word_is - does line s start with keyword w (any case)? *after: past it */
static int
word_is(const char *s, size_t n, const char *w, size_t *after)
{
	size_t wl = strlen(w);

	if (n < wl || strncasecmp(s, w, wl) != 0 || (n > wl && s[wl] != ' '))
		return 0;
	*after = n > wl ? wl + 1 : wl;
	return 1;
}

/* ehlo_words - the bits of the words of list w found in s (any case) */
static unsigned
ehlo_words(const char *s, size_t n, const struct word *w, size_t nw)
{
	size_t i, k, len;
	unsigned bits = 0;

	for (i = 0; i < n; i += len + 1) {
		for (len = 0; i + len < n && s[i + len] != ' '; len++)
			;
		for (k = 0; k < nw; k++)
			if (len == strlen(w[k].name) &&
			    strncasecmp(s + i, w[k].name, len) == 0)
				bits |= w[k].bit;
	}
	return bits;
}

/* ehlo_features - what the lines after the first announce */
static void
ehlo_features(struct conn *c, const struct reply *r)
{
	static const struct word xf[] = {
		{ "ADDR", XF_ADDR }, { "PORT", XF_PORT }, { "HELO", XF_HELO },
		{ "PROTO", XF_PROTO }, { "IDENT", XF_IDENT },
		{ "SOURCE", XF_SOURCE },
	};
	static const struct word mech[] = {
		{ "PLAIN", AUTH_PLAIN }, { "LOGIN", AUTH_LOGIN },
	};
	const char *s;
	size_t i, n, at;
	char *end, num[24];

	for (i = 1; i < r->nlines; i++) {
		s = reply_line(r, i, &n);
		if (word_is(s, n, "PIPELINING", &at))
			c->pipelining = 1;
		else if (word_is(s, n, "8BITMIME", &at))
			c->eightbit = 1;
		else if (word_is(s, n, "STARTTLS", &at))
			c->starttls = 1;
		else if (word_is(s, n, "XFORWARD", &at))
			c->xforward |= ehlo_words(s + at, n - at, xf,
			    sizeof(xf) / sizeof(xf[0]));
		else if (word_is(s, n, "AUTH", &at))
			c->auth |= AUTH_OFFERED | ehlo_words(s + at, n - at,
			    mech, sizeof(mech) / sizeof(mech[0]));
		else if (word_is(s, n, "SIZE", &at)) {
			c->size = 1;
			snprintf(num, sizeof(num), "%.*s", (int)(n - at), s + at);
			c->size_max = strtoll(num, &end, 10);
			if (*end || end == num || c->size_max < 0 ||
			    n - at > 18)
				c->size_max = 0;	/* no usable limit */
		}
	}
}

/* undecided_from - every pending recipient gets the server's reply */
static void
undecided_from(struct delivery *d, enum rstatus st, const struct reply *r,
    const char *peer, const char *cmd)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->res[i].status == R_PENDING)
			from_reply(&d->res[i], st, r, peer, cmd);
}

/* hello - EHLO (LHLO), or HELO when SMTP's EHLO gets 5xx */
static int
hello(struct conn *c, const struct conf *cf, struct delivery *d)
{
	const char *cmd = c->lmtp ? "LHLO" : "EHLO";
	struct reply r;

	c->stage = c->lmtp ? "performing the LHLO handshake" :
	    "performing the EHLO handshake";
	c->pipelining = c->eightbit = c->size = c->starttls = 0;
	c->size_max = 0;
	c->xforward = c->auth = 0;
	if (command(c, cf->smtp_helo_timeout, &r, "%s %s", cmd,
	    helo_name(cf)) < 0)
		return -1;
	if (r.code / 100 == 2) {
		ehlo_features(c, &r);
		return 0;
	}
	if (!c->lmtp && r.code / 100 == 5) {
		cmd = "HELO";
		c->stage = "performing the HELO handshake";
		if (command(c, cf->smtp_helo_timeout, &r, "HELO %s",
		    helo_name(cf)) < 0)
			return -1;
		if (r.code / 100 == 2)
			return 0;
	}
	undecided_from(d, R_DEFER, &r, c->peer, cmd);
	return 1;
}

/* tls_level - smtp_tls_security_level, "" decided by the next hop */
static enum tlslevel
tls_level(const struct conf *cf, const struct transport *t)
{
	static const char *const names[] = { "none", "may", "encrypt",
	    "verify", "fingerprint" };
	const char *l = cf->smtp_tls_security_level;
	size_t i;

	if (l == NULL || *l == '\0')
		return t->literal || t->path[0] ? TLS_MAY : TLS_VERIFY;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(l, names[i]) == 0)
			return (enum tlslevel)i;
	return TLS_VERIFY;	/* conf.c lets nothing else through */
}

/* verify_cb - note what is wrong with the peer's chain, go on: the
 * level decides after the handshake (tls_check) */
static int
verify_cb(int ok, X509_STORE_CTX *sctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sctx,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	int err = X509_STORE_CTX_get_error(sctx);

	if (c == NULL)
		return 0;
	if (X509_STORE_CTX_get_error_depth(sctx) == 0)
		c->seen = 1;
	if (ok)
		return 1;
	if (err == X509_V_ERR_HOSTNAME_MISMATCH ||
	    err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		if (c->name_err == 0)
			c->name_err = err;
	} else if (c->chain_err == 0)
		c->chain_err = err != X509_V_OK ? err : X509_V_ERR_UNSPECIFIED;
	return 1;
}

/* client_ctx - the SSL_CTX for smtp_tls_*, made once per settings */
static SSL_CTX *
client_ctx(const struct conf *cf, char *why, size_t len)
{
	static SSL_CTX *ctx;
	static char *made;	/* the settings ctx was made from */
	const char *ca = cf->smtp_tls_CAfile ? cf->smtp_tls_CAfile : "";
	const char *cp = cf->smtp_tls_CApath ? cf->smtp_tls_CApath : "";
	const char *cert = cf->smtp_tls_cert_file ? cf->smtp_tls_cert_file : "";
	const char *key = cf->smtp_tls_key_file ? cf->smtp_tls_key_file : "";
	char *want;

	if (asprintf(&want, "%s\n%s\n%s\n%s", ca, cp, cert, key) < 0) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	if (ctx != NULL && strcmp(want, made) == 0) {
		free(want);
		return ctx;
	}
	SSL_CTX_free(ctx);
	free(made);
	made = NULL;
	ctx = tls_client_ctx(ca, cp, cert, key, why, len);
	/* Neither CAfile nor CApath: OpenSSL's default store. */
	if (ctx != NULL && *ca == '\0' && *cp == '\0' &&
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(why, len, "default CA locations: %s", tls_error());
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	if (ctx == NULL)
		free(want);
	else
		made = want;
	return ctx;
}

/* tls_new - c->ssl on c->fd: SNI and the name (or address) to verify */
static int
tls_new(struct conn *c, SSL_CTX *ctx, char *why, size_t len)
{
	const char *host = c->key.host;
	int ok;

	c->named = c->seen = c->chain_err = c->name_err = 0;
	if ((c->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_app_data(c->ssl, c) != 1)
		goto fail;
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, verify_cb);
	if (c->key.path[0] == '\0') {
		if (c->key.literal)
			ok = X509_VERIFY_PARAM_set1_ip_asc(
			    SSL_get0_param(c->ssl), host) == 1;
		else {
			SSL_set_hostflags(c->ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set_tlsext_host_name(c->ssl, host) == 1 &&
			    SSL_set1_host(c->ssl, host) == 1;
		}
		if (!ok)
			goto fail;
		c->named = 1;
	}
	return 0;
fail:
	snprintf(why, len, "%s", tls_error());
	return -1;
}

/* handshake - TLS on c within smtp_starttls_timeout; 0, or 1 with
 * every recipient deferred and c broken */
static int
handshake(struct conn *c, const struct conf *cf, SSL_CTX *ctx,
    struct delivery *d)
{
	long long deadline = deadline_s(cf->smtp_starttls_timeout);
	char why[256];
	int rc;

	c->stage = "performing the TLS handshake";
	if (tls_new(c, ctx, why, sizeof(why)) == 0) {
		for (;;) {
			ERR_clear_error();
			if ((rc = SSL_connect(c->ssl)) == 1)
				return 0;
			if (SSL_get_error(c->ssl, rc) == SSL_ERROR_SSL ||
			    ERR_peek_error() != 0) {
				snprintf(why, sizeof(why), "%s", tls_error());
				break;
			}
			if (!tls_retry(c, rc, deadline)) {
				snprintf(why, sizeof(why), "%s", c->err ==
				    IO_TIMEOUT ? "timed out" : "lost connection");
				break;
			}
		}
	}
	c->broken = 1;
	deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.5", "Cannot start TLS: handshake with "
	    "%s failed: %s", c->peer, why);
	return 1;
}

/* tls_log - "Verified TLS connection established to ..." */
static void
tls_log(const struct conn *c, const char *how, const char *info)
{
	const char *sp = strchr(info, ' ');

	log_ident(c->lmtp ? "smap/lmtp" : "smap/smtp");
	log_info("%s TLS connection established to %s: %.*s with cipher %s",
	    how, c->relay, sp ? (int)(sp - info) : (int)strlen(info), info,
	    sp ? sp + 1 : "unknown");
}

/* tls_check - log the session; what verify or fingerprint asks of the
 * certificate; 0 go on, 1 every recipient deferred */
static int
tls_check(struct conn *c, const struct conf *cf, struct delivery *d)
{
	char info[160], fp[TLS_FP_LEN], subject[256], why[1024] = "";
	int cert, trusted, matched, pinned;

	(void)tls_describe(c->ssl, info, sizeof(info), fp, subject,
	    sizeof(subject));
	cert = SSL_get0_peer_certificate(c->ssl) != NULL;
	trusted = cert && c->seen && c->chain_err == 0;
	matched = trusted && c->named && c->name_err == 0;
	pinned = cert && fp[0] != '\0' &&
	    tls_fp_listed(fp, cf->smtp_tls_fingerprint_cert_match);
	tls_log(c, matched || (c->level == TLS_FPRINT && pinned) ? "Verified" :
	    trusted ? "Trusted" : cert ? "Untrusted" : "Anonymous", info);
	if (c->level == TLS_VERIFY && !cert)
		snprintf(why, sizeof(why), "host %s sent no certificate",
		    c->peer);
	else if (c->level == TLS_VERIFY && !trusted)
		snprintf(why, sizeof(why), "the certificate of host %s is not "
		    "trusted: %s", c->peer, X509_verify_cert_error_string(
		    c->chain_err ? c->chain_err : X509_V_ERR_UNSPECIFIED));
	else if (c->level == TLS_VERIFY && !c->named)
		snprintf(why, sizeof(why), "%s has no name to verify its "
		    "certificate against", c->peer);
	else if (c->level == TLS_VERIFY && !matched)
		snprintf(why, sizeof(why), "the certificate of host %s does "
		    "not match %s%s%s", c->peer, c->key.literal ? "[" : "",
		    c->key.host, c->key.literal ? "]" : "");
	else if (c->level == TLS_FPRINT && !pinned)
		snprintf(why, sizeof(why), "the certificate of host %s "
		    "(SHA-256 %s) is not in smtp_tls_fingerprint_cert_match",
		    c->peer, fp[0] ? fp : "none");
	if (why[0] == '\0')
		return 0;
	deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.5", "TLS is required, but %s", why);
	return 1;
}

/* starttls - TLS as the level asks, then EHLO again; 0 go on (TLS or,
 * for may, plaintext), 1 decided, -1 I/O */
static int
starttls(struct conn *c, const struct conf *cf, struct delivery *d)
{
	int need = c->level >= TLS_ENCRYPT;
	SSL_CTX *ctx;
	struct reply r;
	char why[512];

	if (c->level == TLS_NONE || (!c->starttls && !need))
		return 0;
	if (!c->starttls) {
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.4", "TLS is required, but was "
		    "not offered by host %s", c->peer);
		return 1;
	}
	if ((ctx = client_ctx(cf, why, sizeof(why))) == NULL) {
		log_warn("cannot set up TLS for %s: %s", c->peer, why);
		if (!need)
			return 0;
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.5", "TLS is required, but "
		    "cannot be set up: %s", why);
		return 1;
	}
	c->stage = "sending STARTTLS";
	if (command(c, cf->smtp_helo_timeout, &r, "STARTTLS") < 0)
		return -1;
	if (r.code != 220 && (need || r.code == 421)) {
		deliver_set(d, SET_UNDECIDED, R_DEFER, r.code == 421 ? "4.4.2" : "4.7.5",
		    "TLS is required, but host %s refused to start TLS: %d %s%s%s",
		    c->peer, r.code, r.dsn, r.dsn[0] ? " " : "", r.text);
		return 1;
	}
	if (r.code != 220)
		return 0;		/* may: on in plaintext */
	/* Whatever came with the 220 was plaintext: never a reply. */
	c->inpos = c->inlen = 0;
	reply_init(&c->rp);
	if (handshake(c, cf, ctx, d) != 0 || tls_check(c, cf, d) != 0)
		return 1;
	return hello(c, cf, d);
}

/* sasl_keys - the next hop as smtp_sasl_password_maps names it: with
 * the port, then without; "unix:/path" for lmtp:unix */
static void
sasl_keys(const struct transport *t, char k[2][4200])
{
	const char *l = t->literal ? "[" : "", *r = t->literal ? "]" : "";

	if (t->path[0]) {
		snprintf(k[0], sizeof(k[0]), "unix:%s", t->path);
		snprintf(k[1], sizeof(k[1]), "unix:%s", t->path);
		return;
	}
	snprintf(k[0], sizeof(k[0]), "%s%s%s:%u", l, t->host, r, t->port);
	snprintf(k[1], sizeof(k[1]), "%s%s%s", l, t->host, r);
}

/* b64_line - pre, then base64 of n bytes of src, then CRLF; its length,
 * or 0 when it does not fit */
static size_t
b64_line(char *dst, size_t len, const char *pre, const char *src, size_t n)
{
	size_t out = 4 * ((n + 2) / 3), pl = strlen(pre);

	if (pl + out + 3 > len || n > INT_MAX / 2)
		return 0;
	snprintf(dst, len, "%s", pre);
	(void)EVP_EncodeBlock((unsigned char *)dst + pl,
	    (const unsigned char *)src, (int)n);
	memcpy(dst + pl + out, "\r\n", 3);
	return pl + out + 2;
}

/* secret - write a line holding credentials, read the reply; wipes it */
static int
secret(struct conn *c, long long secs, char *line, size_t n,
    struct reply *r)
{
	int rc = n == 0 ? -1 : io_write(c, line, n, deadline_s(secs));

	explicit_bzero(line, n);
	if (n == 0)
		c->err = IO_LOST;	/* cannot happen: inputs are bounded */
	if (rc < 0 || read_reply(c, secs, r) < 0) {
		c->broken = 1;
		return -1;
	}
	c->broken |= r->code == 421;
	return 0;
}

/* auth_plain - AUTH PLAIN base64("\0user\0pass") */
static int
auth_plain(struct conn *c, long long secs, const struct sasl_cred *cr,
    struct reply *r)
{
	char raw[2 * SASL_LINE_MAX + 2], line[3 * SASL_LINE_MAX + 32];
	size_t ul = strnlen(cr->user, SASL_LINE_MAX - 1);
	size_t pl = strnlen(cr->pass, SASL_LINE_MAX - 1), n;
	int rc;

	raw[0] = '\0';
	memcpy(raw + 1, cr->user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, cr->pass, pl);
	n = b64_line(line, sizeof(line), "AUTH PLAIN ", raw, ul + pl + 2);
	explicit_bzero(raw, sizeof(raw));
	rc = secret(c, secs, line, n, r);
	explicit_bzero(line, sizeof(line));
	return rc;
}

/* auth_login - AUTH LOGIN, then base64 user and password on 334 */
static int
auth_login(struct conn *c, long long secs, const struct sasl_cred *cr,
    struct reply *r)
{
	char line[2 * SASL_LINE_MAX];
	int rc;

	if (command(c, secs, r, "AUTH LOGIN") < 0)
		return -1;
	if (r->code != 334)
		return 0;
	rc = secret(c, secs, line, b64_line(line, sizeof(line), "", cr->user,
	    strnlen(cr->user, SASL_LINE_MAX - 1)), r);
	if (rc == 0 && r->code == 334)
		rc = secret(c, secs, line, b64_line(line, sizeof(line), "",
		    cr->pass, strnlen(cr->pass, SASL_LINE_MAX - 1)), r);
	explicit_bzero(line, sizeof(line));
	return rc;
}

/* auth_with - AUTH by PLAIN or LOGIN over TLS; 0 go on, 1 decided, -1 I/O */
static int
auth_with(struct conn *c, const struct conf *cf, const struct sasl_cred *cr,
    struct delivery *d)
{
	struct reply r;
	char dsn[16];
	int rc;

	if (c->ssl == NULL) {
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.0", "SASL credentials for %s "
		    "not sent without TLS", c->peer);
		return 1;
	}
	if (!(c->auth & (AUTH_PLAIN | AUTH_LOGIN))) {
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.0", "SASL authentication with "
		    "%s failed: no common mechanism (PLAIN, LOGIN)", c->peer);
		return 1;
	}
	c->stage = "performing the AUTH exchange";
	rc = c->auth & AUTH_PLAIN ? auth_plain(c, cf->smtp_helo_timeout, cr,
	    &r) : auth_login(c, cf->smtp_helo_timeout, cr, &r);
	if (rc < 0 || r.code == 235)
		return rc;
	/* 4xx or 5xx alike: deferred, never bounced. */
	snprintf(dsn, sizeof(dsn), "4%.14s", r.dsn[0] ? r.dsn + 1 : ".7.0");
	deliver_set(d, SET_UNDECIDED, R_DEFER, dsn, "SASL authentication failed; server %s "
	    "said: %d %s%s%s", c->peer, r.code, r.dsn, r.dsn[0] ? " " : "",
	    r.text);
	return 1;
}

/* authenticate - smtp_sasl_password_maps; 0 go on, 1 decided, -1 I/O */
static int
authenticate(struct conn *c, const struct conf *cf, struct delivery *d)
{
	static char keys[2][4200];
	const char *kv[2] = { keys[0], keys[1] };
	const char *map = cf->smtp_sasl_password_maps;
	struct sasl_cred cr;
	char why[512];
	int rc;

	if (map == NULL || *map == '\0')
		return 0;
	sasl_keys(&c->key, keys);
	if ((rc = sasl_lookup(map, kv, 2, &cr, why, sizeof(why))) < 0) {
		log_warn("smtp_sasl_password_maps: %s", why);
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.7.0", "SASL password file "
		    "refused: %s", why);
		return 1;
	}
	if (rc > 0 && (c->auth & AUTH_OFFERED))
		rc = auth_with(c, cf, &cr, d);
	else
		rc = 0;		/* no credentials, or no AUTH: go on */
	sasl_wipe(&cr);
	return rc;
}

/* greet - the 220 greeting, EHLO, STARTTLS and AUTH as configured;
 * 0, 1 (decided) or -1 (I/O) */
static int
greet(struct conn *c, const struct conf *cf, struct delivery *d)
{
	struct reply r;
	int rc;

	c->stage = "receiving the initial server greeting";
	if (read_reply(c, cf->smtp_helo_timeout, &r) < 0)
		return -1;
	if (r.code != 220) {
		c->broken = r.code == 421;
		undecided_from(d, R_DEFER, &r, c->peer, NULL);
		return 1;
	}
	if ((rc = hello(c, cf, d)) != 0 || (rc = starttls(c, cf, d)) != 0)
		return rc;
	return authenticate(c, cf, d);
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

	if (c->inpos < c->inlen || (c->ssl && SSL_pending(c->ssl) > 0))
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
		snprintf(d->relay, sizeof(d->relay), "%.319s", c->relay);
		return c;
	}
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->key = *t;
	c->lmtp = t->kind == T_LMTP;
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

/* xtext - RFC 3461 xtext of a printable token; its length, or len */
static size_t
xtext(char *dst, size_t len, const char *src)
{
	size_t o = 0;
	unsigned char ch;

	for (; *src && o + 4 < len; src++) {
		ch = (unsigned char)*src;
		if (ch <= 0x20 || ch >= 0x7f || ch == '+' || ch == '=')
			o += (size_t)snprintf(dst + o, len - o, "+%02X", ch);
		else
			dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	return *src ? len : o;
}

/* dead_cache - a reused connection's first reply is 421: it was dead */
static int
dead_cache(struct txn *x, const struct reply *r)
{
	if (r->code != 421 || !x->c->reused || x->replies > 0)
		return 0;
	x->c->err = IO_LOST;
	x->c->broken = 1;
	return 1;
}

/*
 * xforward - tell the backend who the client was, when it listens.
 * Sent only when ADDR and HELO are offered. An unknown client (or port)
 * is left out: the server starts every attribute at [UNAVAILABLE] on
 * the first XFORWARD (XFORWARD_README). 0 go on, 1 decided, -1 I/O.
 */
static int
xforward(struct txn *x)
{
	const struct envelope *e = x->d->env;
	struct conn *c = x->c;
	char line[SMTP_CMD_MAX], helo[256];
	struct reply r;
	int known = strcmp(e->client, "unknown") != 0, n;

	if ((c->xforward & (XF_ADDR | XF_HELO)) != (XF_ADDR | XF_HELO))
		return 0;
	if (xtext(helo, sizeof(helo), e->helo) >= sizeof(helo))
		snprintf(helo, sizeof(helo), "[UNAVAILABLE]");
	n = snprintf(line, sizeof(line), "XFORWARD HELO=%s", helo);
	if (known)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " ADDR=%s%s",
		    strchr(e->client, ':') ? "IPV6:" : "", e->client);
	if (known && e->port > 0 && (c->xforward & XF_PORT))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " PORT=%u",
		    e->port);
	if (c->xforward & XF_PROTO)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " PROTO=%s",
		    e->proto);
	if (c->xforward & XF_IDENT)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " IDENT=%s",
		    e->id);
	if (c->xforward & XF_SOURCE)
		snprintf(line + n, sizeof(line) - (size_t)n, " SOURCE=REMOTE");
	if (c->pipelining) {	/* sent ahead of MAIL, in its group */
		snprintf(x->xf, sizeof(x->xf), "%s\r\n", line);
		return 0;
	}
	c->stage = "performing the XFORWARD handshake";
	if (command(c, x->cf->smtp_helo_timeout, &r, "%s", line) < 0 ||
	    dead_cache(x, &r))
		return -1;
	return xforward_reply(x, &r);
}

/* xforward_reply - 0 go on, or 1: refused, the message is deferred */
static int
xforward_reply(struct txn *x, const struct reply *r)
{
	x->replies++;
	if (r->code / 100 == 2)
		return 0;
	undecided_from(x->d, R_DEFER, r, x->c->peer, "XFORWARD");
	return 1;
}

/* cmd_line - command j of the transaction (MAIL, RCPTs, DATA) + CRLF */
static int
cmd_line(const struct txn *x, size_t j, char *buf, size_t len)
{
	const struct envelope *e = x->d->env;
	char size[32] = "";
	int n;

	if (j == 0) {
		if (x->c->size)
			snprintf(size, sizeof(size), " SIZE=%lld", e->size);
		/* Without 8BITMIME an 8-bit message is sent all the same,
		 * without BODY=: what Postfix does by default. */
		n = snprintf(buf, len, "MAIL FROM:%s%s%s\r\n", e->sender, size,
		    e->body8 && x->c->eightbit ? " BODY=8BITMIME" : "");
	} else if (j <= x->d->n)
		n = snprintf(buf, len, "RCPT TO:%s\r\n",
		    e->rcpt[x->d->idx[j - 1]]);
	else
		n = snprintf(buf, len, "DATA\r\n");
	return n < 0 || (size_t)n >= len || n > SMTP_CMD_MAX ? -1 : n;
}

/* cmd_timeout - DATA waits smtp_data_done_timeout, the rest helo */
static long long
cmd_timeout(const struct txn *x, size_t j)
{
	return j > x->d->n ? x->cf->smtp_data_done_timeout :
	    x->cf->smtp_helo_timeout;
}

/* cmd_stage - what we are doing around command j, for the texts */
static const char *
cmd_stage(const struct txn *x, size_t j)
{
	return j == 0 ? "sending MAIL FROM" : j <= x->d->n ?
	    "sending RCPT TO" : "sending DATA command";
}

/* on_mail - a refused MAIL decides every recipient */
static void
on_mail(struct txn *x, const struct reply *r)
{
	if (r->code / 100 == 2)
		return;
	undecided_from(x->d, r->code >= 500 ? R_BOUNCE : R_DEFER, r,
	    x->c->peer, "MAIL FROM");
	x->stop = 1;
}

/* on_rcpt - accepted for now, or deferred or bounced for good */
static void
on_rcpt(struct txn *x, size_t i, const struct reply *r)
{
	if (x->stop)
		return;
	if (r->code / 100 == 2) {
		x->acc[i] = 1;
		x->nacc++;
		return;
	}
	from_reply(&x->d->res[i], r->code >= 500 ? R_BOUNCE : R_DEFER, r,
	    x->c->peer, "RCPT TO");
}

/* on_data - 354 means go; anything else decides the accepted ones */
static void
on_data(struct txn *x, const struct reply *r)
{
	if (r->code == 354 && !x->stop && x->nacc > 0) {
		x->data = 1;
		return;
	}
	if (r->code == 354) {
		/* No valid recipient, yet the server waits for a message:
		 * drop the connection rather than send anything. */
		log_warn("%s accepted DATA without a valid recipient",
		    x->c->peer);
		x->c->broken = 1;
		return;
	}
	if (!x->stop && x->nacc > 0)
		undecided_from(x->d, r->code >= 500 ? R_BOUNCE : R_DEFER, r,
		    x->c->peer, "DATA");
	x->stop = 1;
}

/* on_reply - the reply to command j; -1 when a reused connection died */
static int
on_reply(struct txn *x, size_t j, const struct reply *r)
{
	if (dead_cache(x, r))
		return -1;
	x->replies++;
	if (r->code == 421) {
		/* The server is going away: this is the last word. */
		x->c->broken = 1;
		undecided_from(x->d, R_DEFER, r, x->c->peer,
		    j == 0 ? "MAIL FROM" : j <= x->d->n ? "RCPT TO" : "DATA");
		x->stop = 1;
	} else if (j == 0)
		on_mail(x, r);
	else if (j <= x->d->n)
		on_rcpt(x, j - 1, r);
	else
		on_data(x, r);
	return 0;
}

/* send_group - write commands from *j on: one, or up to SMTP_PIPE_MAX
 * with PIPELINING; *end is one past the last command written */
static int
send_group(struct txn *x, size_t j, size_t *end)
{
	static char out[(SMTP_PIPE_MAX + 1) * (SMTP_CMD_MAX + 3)];
	size_t len = 0, k, max = x->c->pipelining ? SMTP_PIPE_MAX : 1;
	int n;

	if (j == 0 && x->xf[0] != '\0') {
		len = strlen(x->xf);
		memcpy(out, x->xf, len);
	}
	for (k = j; k < x->d->n + 2 && k - j < max; k++) {
		if ((n = cmd_line(x, k, out + len, sizeof(out) - len)) < 0)
			break;
		len += (size_t)n;
	}
	*end = k;
	x->c->stage = cmd_stage(x, j);
	if (k == j || io_write(x->c, out, len,
	    deadline_s(cmd_timeout(x, k - 1))) < 0) {
		x->c->broken = 1;
		return -1;
	}
	return 0;
}

/* envelope - MAIL, RCPTs and DATA (unless no RCPT was accepted) */
static int
envelope(struct txn *x)
{
	size_t next = 0, end, j, ncmd = x->d->n + 2;
	struct reply r;

	while (next < ncmd && !x->stop) {
		if (next == ncmd - 1 && x->nacc == 0)
			break;		/* no recipient: RSET, not DATA */
		if (send_group(x, next, &end) < 0)
			return -1;
		if (next == 0 && x->xf[0] != '\0') {
			x->c->stage = "performing the XFORWARD handshake";
			if (read_reply(x->c, x->cf->smtp_helo_timeout, &r) < 0 ||
			    dead_cache(x, &r))
				return -1;
			if (xforward_reply(x, &r) != 0) {
				/* MAIL and the rest are on their way: hang up */
				x->c->broken = 1;
				return 0;
			}
		}
		for (j = next; j < end; j++) {
			x->c->stage = cmd_stage(x, j);
			if (read_reply(x->c, cmd_timeout(x, j), &r) < 0 ||
			    on_reply(x, j, &r) < 0)
				return -1;
		}
		next = end;
	}
	return 0;
}

/* put_body - msg_copy's output, buffered, so that a small message and
 * its final "." leave in one write */
static int
put_body(void *ctx, const char *p, size_t n)
{
	struct txn *x = ctx;

	if (x->olen + n > sizeof(x->out)) {
		if (io_write(x->c, x->out, x->olen, x->deadline) < 0)
			return -1;
		x->olen = 0;
	}
	if (n > sizeof(x->out))
		return io_write(x->c, p, n, x->deadline);
	memcpy(x->out + x->olen, p, n);
	x->olen += n;
	return 0;
}

/* final_replies - SMTP: one for all; LMTP: one per accepted recipient */
static int
final_replies(struct txn *x)
{
	struct delivery *d = x->d;
	struct reply r;
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (!x->acc[i] || d->res[i].status != R_PENDING)
			continue;
		if (read_reply(x->c, x->cf->smtp_data_done_timeout, &r) < 0)
			return -1;
		x->c->broken |= r.code == 421;
		if (x->c->lmtp && r.code != 421)
			from_reply(&d->res[i], r.code / 100 == 2 ? R_SENT :
			    r.code >= 500 ? R_BOUNCE : R_DEFER, &r, x->c->peer,
			    "end of DATA");
		else
			undecided_from(d, r.code / 100 == 2 ? R_SENT :
			    r.code >= 500 ? R_BOUNCE : R_DEFER, &r, x->c->peer,
			    "end of DATA");
	}
	return 0;
}

/* message - the body after 354, dot-stuffed, then "." and the replies */
static int
message(struct txn *x)
{
	struct conn *c = x->c;
	int saved;

	c->stage = "sending message body";
	x->deadline = deadline_s(x->cf->smtp_data_done_timeout);
	if (msg_copy(x->d, MSG_SMTP, put_body, x) < 0) {
		if (errno == 0) {
			c->broken = 1;
			return -1;
		}
		/* Never send "." after a short read: drop the connection. */
		saved = errno;
		c->broken = 1;
		deliver_set(x->d, SET_UNDECIDED, R_DEFER, "4.3.0", "error reading the queue "
		    "file: %s", strerror(saved));
		return 0;
	}
	c->stage = "sending end of data -- message may be sent more than once";
	if (put_body(x, ".\r\n", 3) < 0 ||
	    io_write(c, x->out, x->olen, x->deadline) < 0) {
		c->broken = 1;
		return -1;
	}
	return final_replies(x);
}

/* rset - end a transaction that did not reach the message */
static void
rset(struct txn *x)
{
	struct reply r;

	x->c->stage = "performing the RSET";
	if (command(x->c, x->cf->smtp_helo_timeout, &r, "RSET") < 0 ||
	    r.code / 100 != 2)
		x->c->broken = 1;
}

/* transaction - one message: 0 (verdicts set) or -1 (I/O, see c->err) */
static int
transaction(struct txn *x)
{
	const struct envelope *e = x->d->env;
	struct conn *c = x->c;
	int rc;

	if (c->size && c->size_max > 0 && e->size > c->size_max) {
		deliver_set(x->d, SET_UNDECIDED, R_BOUNCE, "5.3.4", "message size %lld "
		    "exceeds size limit %lld of server %s", e->size,
		    c->size_max, c->peer);
		return 0;
	}
	if ((rc = xforward(x)) != 0)
		return rc < 0 ? -1 : 0;
	if (envelope(x) < 0)
		return -1;
	if (x->data)
		return message(x);
	if (!c->broken)
		rset(x);
	return 0;
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
	if (c->inpos < c->inlen) {
		log_warn("%s sent more replies than commands", c->peer);
		c->broken = 1;
	}
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
		log_warn("%s: envelope holds bytes unsafe for SMTP",
		    d->env->id);
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
