/*
 * submit.c - smap-sendmail's SMTP dialogue with the local smap (see
 * submit.h).
 *
 * TRUST: smap is our own receiver, but its replies are read as any
 * server's: reply.c caps every line and every reply, and anything that
 * is no reply ends the session as a temporary failure. Each wait is
 * bounded: the connection by connect_timeout, each reply before the
 * message by cmd_timeout, each write of the message and its final
 * reply by data_timeout. What is sent is trusted: the addresses passed
 * addr_parse(), the EHLO name is the configured myhostname, and the
 * message is CRLF lines (submit_msg.c), dot-stuffed here. Anything
 * smap says between its 354 and the final "." (a reply sent ahead, a
 * 250 too) answers nothing: the session is lost, never a success.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "reply.h"
#include "submit.h"

#define QUIT_TIMEOUT 10		/* seconds: QUIT's reply, at most */
#define EXT_SIZE 1		/* EHLO offered SIZE */
#define EXT_8BIT 2		/* and 8BITMIME */

struct conn {
	int fd;
	int broken;		/* no QUIT: the session is out of step */
	const struct submit_server *srv;
	struct submit_result *res;
	struct reply_parser rp;
	size_t ilen, ioff;
	char in[4096];
	size_t olen;
	char out[16384];
};

/* now_ms - the monotonic clock in milliseconds */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd - until fd is ready for ev or the deadline: 1, 0 late, -1 */
static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd p = { fd, ev, 0 };
	long long left;
	int rc;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* lost - the session failed before smap's 250: say so; EX_TEMPFAIL */
static int
lost(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->res->text, sizeof(c->res->text), "smap at %s: ",
	    c->srv->name);
	va_start(ap, fmt);
	vsnprintf(c->res->text + n, sizeof(c->res->text) - (size_t)n, fmt, ap);
	va_end(ap);
	c->broken = 1;
	return EX_TEMPFAIL;
}

/* send_all - n bytes; each wait for room at most timeout seconds */
static int
send_all(struct conn *c, const char *p, size_t n, int timeout)
{
	ssize_t k;

	while (n > 0) {
		if ((k = send(c->fd, p, n, MSG_NOSIGNAL)) > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(c->fd, POLLOUT, now_ms() + timeout * 1000LL) > 0)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			errno = ETIMEDOUT;
		return lost(c, "cannot send: %s", strerror(errno));
	}
	return 0;
}

/* get_reply - the next complete reply within timeout seconds */
static int
get_reply(struct conn *c, struct reply *r, int timeout)
{
	long long deadline = now_ms() + timeout * 1000LL;
	size_t used;
	ssize_t k;
	int rc;

	for (;;) {
		if (c->ioff < c->ilen) {
			rc = reply_parse(&c->rp, c->in + c->ioff,
			    c->ilen - c->ioff, &used, r);
			c->ioff += used;
			if (rc == 1)
				return 0;
			if (rc < 0)
				return lost(c, "its reply is not SMTP");
		}
		if (wait_fd(c->fd, POLLIN, deadline) <= 0)
			return lost(c, "no reply within %ds", timeout);
		if ((k = recv(c->fd, c->in, sizeof(c->in), 0)) == 0)
			return lost(c, "the connection was closed");
		if (k < 0 && errno != EINTR && errno != EAGAIN)
			return lost(c, "cannot read: %s", strerror(errno));
		c->ilen = k < 0 ? 0 : (size_t)k;
		c->ioff = 0;
	}
}

/* expect - send cmd (NULL: none) and want a reply of class want; a 5xx
 * is the status perm, anything else unwanted EX_TEMPFAIL */
static int
expect(struct conn *c, const char *cmd, const char *what, int want,
    int perm, int timeout, struct reply *r)
{
	char line[SMTP_LINE_MAX];
	int n, rc;

	memset(r, 0, sizeof(*r));
	if (cmd != NULL) {
		n = snprintf(line, sizeof(line), "%s\r\n", cmd);
		if (n < 0 || (size_t)n >= sizeof(line))
			return lost(c, "%s: command too long", what);
		if ((rc = send_all(c, line, (size_t)n, timeout)) != 0)
			return rc;
	}
	if ((rc = get_reply(c, r, timeout)) != 0)
		return rc;
	if (r->code / 100 == want)
		return 0;
	snprintf(c->res->text, sizeof(c->res->text), "smap at %s answered "
	    "%s with %d%s%s %s", c->srv->name, what, r->code,
	    r->dsn[0] ? " " : "", r->dsn, r->text);
	return r->code >= 500 ? perm : EX_TEMPFAIL;
}

/* extensions - SIZE and 8BITMIME among the EHLO reply's lines */
static int
extensions(const struct reply *r)
{
	size_t i, n;
	const char *s;
	int ext = 0;

	for (i = 1; i < r->nlines; i++) {
		s = reply_line(r, i, &n);
		if (n >= 4 && strncasecmp(s, "SIZE", 4) == 0 &&
		    (n == 4 || s[4] == ' '))
			ext |= EXT_SIZE;
		if (n == 8 && strncasecmp(s, "8BITMIME", 8) == 0)
			ext |= EXT_8BIT;
	}
	return ext;
}

/* hello - EHLO, or HELO when smap refuses it; sets *ext */
static int
hello(struct conn *c, const struct submit_job *j, int *ext)
{
	char cmd[SMTP_LINE_MAX];
	struct reply r;
	int rc;

	*ext = 0;
	snprintf(cmd, sizeof(cmd), "EHLO %s", j->helo);
	rc = expect(c, cmd, "EHLO", 2, EX_UNAVAILABLE, j->cmd_timeout, &r);
	if (rc == 0)
		*ext = extensions(&r);
	if (rc != EX_UNAVAILABLE)
		return rc;
	snprintf(cmd, sizeof(cmd), "HELO %s", j->helo);
	return expect(c, cmd, "HELO", 2, EX_UNAVAILABLE, j->cmd_timeout, &r);
}

/* put - bytes of the message into the output buffer */
static int
put(struct conn *c, const char *p, size_t n, int timeout)
{
	int rc;

	if (c->olen + n > sizeof(c->out)) {
		if ((rc = send_all(c, c->out, c->olen, timeout)) != 0)
			return rc;
		c->olen = 0;
	}
	if (n > sizeof(c->out))
		return send_all(c, p, n, timeout);
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	return 0;
}

/* early - did smap say anything since its 354 (buffered, or waiting in
 * the socket)? A reply then answers no end of message: were it a 250,
 * it must not be taken for the message's */
static int
early(const struct conn *c)
{
	char b;

	return c->ioff < c->ilen ||
	    recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;
}

/* send_data - the message, dot-stuffed, and the final "." */
static int
send_data(struct conn *c, const struct submit_job *j)
{
	const char *p = j->data, *end = j->data + j->len, *nl;
	int rc = 0, t = j->data_timeout;
	size_t n;

	while (p < end && rc == 0) {
		if (*p == '.' && (rc = put(c, ".", 1, t)) != 0)
			break;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl + 1 - p) : (size_t)(end - p);
		rc = put(c, p, n, t);
		if (rc == 0 && nl == NULL)
			rc = put(c, "\r\n", 2, t);	/* not from submit_msg.c */
		p += n;
	}
	if (rc == 0 && early(c))
		rc = lost(c, "it spoke before the end of the message");
	if (rc == 0)
		rc = put(c, ".\r\n", 3, t);
	if (rc == 0)
		rc = send_all(c, c->out, c->olen, t);
	c->olen = 0;
	return rc;
}

/* queue_id - "queued as ID" in the final reply */
static void
queue_id(const struct reply *r, char *id, size_t len)
{
	const char *s = strstr(r->text, "queued as ");
	size_t n = 0;

	if (s != NULL)
		for (s += 10; n + 1 < len && ((*s >= '0' && *s <= '9') ||
		    (*s >= 'A' && *s <= 'Z')); s++)
			id[n++] = *s;
	id[n] = '\0';
}

/* mail_from - "MAIL FROM:<sender>" with SIZE= and BODY= as offered */
static void
mail_from(char *cmd, size_t len, const struct submit_job *j, int ext)
{
	int n = snprintf(cmd, len, "MAIL FROM:<%s>", j->sender);

	if ((ext & EXT_SIZE) && n > 0 && (size_t)n < len)
		n += snprintf(cmd + n, len - (size_t)n, " SIZE=%zu", j->len);
	if (j->eightbit && (ext & EXT_8BIT) && n > 0 && (size_t)n < len)
		snprintf(cmd + n, len - (size_t)n, " BODY=8BITMIME");
}

/* transaction - MAIL, RCPT..., DATA, the message, its reply */
static int
transaction(struct conn *c, const struct submit_job *j, int ext)
{
	char cmd[SMTP_LINE_MAX];
	struct reply r;
	size_t i;
	int rc;

	mail_from(cmd, sizeof(cmd), j, ext);
	if ((rc = expect(c, cmd, cmd, 2, EX_DATAERR, j->cmd_timeout, &r)) != 0)
		return rc;
	for (i = 0; i < j->nrcpt; i++) {
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", j->rcpt[i]);
		if ((rc = expect(c, cmd, cmd, 2, EX_NOUSER, j->cmd_timeout,
		    &r)) != 0)
			return rc;
	}
	if ((rc = expect(c, "DATA", "DATA", 3, EX_UNAVAILABLE,
	    j->cmd_timeout, &r)) != 0 || (rc = send_data(c, j)) != 0)
		return rc;
	if ((rc = expect(c, NULL, "the end of the message", 2, EX_DATAERR,
	    j->data_timeout, &r)) != 0)
		return rc;
	snprintf(c->res->text, sizeof(c->res->text), "%d%s%s %s", r.code,
	    r.dsn[0] ? " " : "", r.dsn, r.text);
	queue_id(&r, c->res->id, sizeof(c->res->id));
	return 0;
}

/* connect_to - the TCP connection, within timeout seconds */
static int
connect_to(struct conn *c, int timeout)
{
	int err = 0, rc;
	socklen_t elen = sizeof(err);

	c->fd = socket(c->srv->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return lost(c, "cannot make a socket: %s", strerror(errno));
	if (connect(c->fd, (const struct sockaddr *)&c->srv->ss,
	    c->srv->len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return lost(c, "cannot connect: %s", strerror(errno));
	if ((rc = wait_fd(c->fd, POLLOUT, now_ms() + timeout * 1000LL)) == 0)
		return lost(c, "no connection within %ds", timeout);
	if (rc < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
	    &elen) < 0)
		err = errno;
	if (err != 0)
		return lost(c, "cannot connect: %s", strerror(err));
	return 0;
}

/* submit - one message to smap */
int
submit(const struct submit_server *srv, const struct submit_job *job,
    struct submit_result *res)
{
	static struct conn c;
	struct reply r;
	int rc, ext, quit = job->cmd_timeout < QUIT_TIMEOUT ?
	    job->cmd_timeout : QUIT_TIMEOUT;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.srv = srv;
	c.res = res;
	res->text[0] = res->id[0] = '\0';
	if ((rc = connect_to(&c, job->connect_timeout)) == 0 &&
	    (rc = expect(&c, NULL, "the connection", 2, EX_UNAVAILABLE,
	    job->cmd_timeout, &r)) == 0 && (rc = hello(&c, job, &ext)) == 0)
		rc = transaction(&c, job, ext);
	if (c.fd >= 0 && !c.broken && send_all(&c, "QUIT\r\n", 6, quit) == 0)
		(void)get_reply(&c, &r, quit);
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

/* parse_port - ":digits" 1..65535, or nothing for 25 */
static int
parse_port(const char *s, unsigned *port)
{
	unsigned long v = 0;
	size_t i;

	*port = 25;
	if (*s == '\0')
		return 0;
	if (*s++ != ':' || *s == '\0' || strlen(s) > 5)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* submit_server_parse - "[address]:port" into a socket address */
int
submit_server_parse(const char *spec, struct submit_server *s, char *why,
    size_t whylen)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&s->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->ss;
	const char *end = spec[0] == '[' ? strchr(spec, ']') : NULL;
	char host[INET6_ADDRSTRLEN + 8];
	size_t off = 1;
	unsigned port;

	memset(s, 0, sizeof(*s));
	if (end != NULL && strncasecmp(spec + 1, "IPv6:", 5) == 0)
		off = 6;
	if (end == NULL || end < spec + off ||
	    (size_t)(end - spec) - off >= sizeof(host) ||
	    parse_port(end + 1, &port) < 0)
		goto bad;
	memcpy(host, spec + off, (size_t)(end - spec) - off);
	host[(size_t)(end - spec) - off] = '\0';
	if (off == 1 && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((unsigned short)port);
		s->len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)port);
		s->len = sizeof(*in6);
	} else
		goto bad;
	snprintf(s->name, sizeof(s->name), "%s", spec);
	return 0;
bad:
	snprintf(why, whylen, "submit_server: \"%.100s\" is not [address] or "
	    "[address]:port (an IP address: no names are looked up)", spec);
	return -1;
}
