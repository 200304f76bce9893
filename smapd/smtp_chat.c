/*
 * smtp_chat.c - the SMTP client's conversation (see smtp.h): deadlines,
 * bytes in and out of the connection, one command written, one reply
 * read, and every reply of a transaction counted.
 *
 * TRUST: the server is not trusted: replies go through reply.c's
 * bounded parser, every read and write has a deadline taken from
 * smtp_connect_timeout, smtp_helo_timeout (greeting, EHLO, MAIL, RCPT,
 * RSET, QUIT) or smtp_data_done_timeout (DATA, the whole message with
 * its ".", each final reply), and every loop is bounded by a count or a
 * deadline. All socket I/O after connect(2) goes through conn_read()
 * and conn_write(), plain or TLS.
 *
 * COUNTING: a transaction counts the commands it wrote (txn.sent) and
 * the replies it read (txn.replies); every reply of a transaction is
 * read by next_reply(). Bytes left unread once every command has had
 * its reply are a surplus reply: logged once ("sent more replies than
 * commands") and the connection closed; found before a write (of a
 * command or the message), where it would pass for the next reply, it
 * also defers what is undecided (4.4.2). A reused connection whose
 * first reply is 421 was dead before the transaction began.
 */
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "log.h"
#include "smtp.h"

/* deadline_s - the moment secs seconds from now */
long long
deadline_s(long long secs)
{
	return now_ms() + secs * 1000;
}

/* wait_fd - poll for ev until deadline: 1 ready, 0 timed out, -1 error */
int
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
int
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

/* conn_write - all of p before deadline, or -1 with c->err */
int
conn_write(struct conn *c, const char *p, size_t n, long long deadline)
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

/* conn_read - some bytes before deadline; -1 with c->err (EOF: lost) */
static ssize_t
conn_read(struct conn *c, char *buf, size_t len, long long deadline)
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
int
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
			log_warn_as(c->ident, "malformed SMTP reply from %s",
			    c->peer);
			c->err = IO_GARBAGE;
			c->broken = 1;
			return -1;
		}
		if ((got = conn_read(c, c->in, sizeof(c->in), deadline)) < 0) {
			c->broken = 1;
			return -1;
		}
		c->inpos = 0;
		c->inlen = (size_t)got;
	}
}

/* surplus - bytes from the server that no command has asked for yet */
int
surplus(const struct conn *c)
{
	return c->inpos < c->inlen || (c->ssl != NULL &&
	    SSL_pending(c->ssl) > 0);
}

/* send_line - format one command, add CRLF, write it */
static int __attribute__((format(printf, 3, 4)))
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
	if (conn_write(c, line, (size_t)n + 2, deadline_s(secs)) < 0) {
		c->broken = 1;
		return -1;
	}
	return 0;
}

/* command - send one command and read its reply, same timeout */
int
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

/* out_of_step - when every command of x has had its reply: bytes still
 * unread answer nothing (and before a write would be taken for the
 * reply to what comes next); 1: said once, the connection given up */
int
out_of_step(struct txn *x)
{
	struct conn *c = x->c;

	if (c->err == IO_SURPLUS)
		return 1;
	if (!surplus(c))
		return 0;
	log_warn_as(c->ident, "%s sent more replies than commands",
	    c->peer);
	c->err = IO_SURPLUS;
	c->broken = 1;
	return 1;
}

/* next_reply - the reply to the oldest command of x not yet answered:
 * every reply of a transaction is read here, and counted */
int
next_reply(struct txn *x, long long secs, struct reply *r)
{
	if (read_reply(x->c, secs, r) < 0 || dead_cache(x, r))
		return -1;
	x->replies++;
	return 0;
}

/* txn_command - one command of x (CRLF added), alone, and its reply */
int
txn_command(struct txn *x, long long secs, struct reply *r, const char *cmd)
{
	if (out_of_step(x))
		return -1;
	x->sent++;
	if (send_line(x->c, secs, "%s", cmd) < 0 ||
	    next_reply(x, secs, r) < 0)
		return -1;
	x->c->broken |= r->code == 421;
	return 0;
}
