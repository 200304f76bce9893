/*
 * io.c - bounded, timed I/O on one connection (see io.h).
 *
 * Trusts nothing it reads. Both descriptors are made non-blocking so
 * that no read or write can outlast the timeout or the deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "io.h"

/* io_init - set up buffers and make the descriptors non-blocking */
void
io_init(struct io *io, int rfd, int wfd, int timeout, time_t deadline)
{
	memset(io, 0, offsetof(struct io, in));	/* not the buffers */
	io->rfd = rfd;
	io->wfd = wfd;
	io->timeout = timeout;
	io->deadline = deadline;
	io->end_ms = now_ms() + (long long)(deadline - time(NULL)) * 1000;
	(void)fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	(void)fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
}

/* wait_ms - the next wait: for a read, what is left of the line's
 * time; for a write, the timeout; never past the session's deadline */
static int
wait_ms(const struct io *io, int wr)
{
	long long now = now_ms(), end = wr ? now + io->timeout * 1000LL :
	    io->rec_end;

	if (end > io->end_ms)
		end = io->end_ms;
	return end > now ? (int)(end - now) : 0;
}

/* io_poll - wait for one event; 1 ready, 0 timeout, -1 error */
static int
io_poll(struct io *io, int fd, short ev, int ms)
{
	struct pollfd p = { fd, ev, 0 };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		io->err = IO_TIMEOUT;
	else if (n < 0)
		io->err = IO_ERROR;
	return n < 0 ? -1 : n;
}

/* xfer - one read or write, plain or TLS, waiting as long as the
 * timeout allows; the bytes moved, or 0 with io->err set */
static size_t
xfer(struct io *io, int wr, void *buf, size_t n)
{
	ssize_t r;
	short ev;

	for (;;) {
		ev = wr ? POLLOUT : POLLIN;
		if (io->ssl == NULL)
			r = wr ? write(io->wfd, buf, n) : read(io->rfd, buf, n);
		else
			r = io->tls->step(io->ssl, wr ? 'w' : 'r', buf, n, &ev);
		if (r > 0)
			return (size_t)r;
		if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			io->err = r == 0 && !wr ? IO_EOF : IO_ERROR;
			return 0;
		}
		if (errno == EAGAIN && io_poll(io, ev == POLLIN ? io->rfd :
		    io->wfd, ev, wait_ms(io, wr || ev == POLLOUT)) <= 0)
			return 0;
	}
}

/* io_flush - send every queued reply, within the timeout */
int
io_flush(struct io *io)
{
	size_t done = 0, want = io->olen, w;

	io->olen = 0;
	while (done < want && (w = xfer(io, 1, io->out + done, want - done)) > 0)
		done += w;
	return done == want ? 0 : -1;
}

/* io_reply - queue one reply line */
void
io_reply(struct io *io, const char *line)
{
	size_t n = strlen(line);

	if (n > sizeof(io->out) - 2)
		n = sizeof(io->out) - 2;
	if (io->olen + n + 2 > sizeof(io->out))
		(void)io_flush(io);
	memcpy(io->out + io->olen, line, n);
	memcpy(io->out + io->olen + n, "\r\n", 2);
	io->olen += n + 2;
}

/* io_fill - flush replies, keep unread bytes, read more; >0, or 0 on failure */
static size_t
io_fill(struct io *io)
{
	size_t r;

	if (io_flush(io) < 0)
		return 0;
	memmove(io->in, io->in + io->ipos, io->ilen - io->ipos);
	io->ilen -= io->ipos;
	io->ipos = 0;
	r = xfer(io, 0, io->in + io->ilen, sizeof(io->in) - io->ilen);
	io->ilen += r;
	return r;
}

/* io_wait - is input there within ms? (the greeting pause) */
int
io_wait(struct io *io, int ms)
{
	if (io->ipos < io->ilen)
		return 1;
	return io_poll(io, io->rfd, POLLIN, ms);
}

/* io_eof - the peer closed without another byte */
int
io_eof(struct io *io)
{
	io->rec_end = now_ms() + io->timeout * 1000LL;
	return io->ipos == io->ilen && io_fill(io) == 0 && io->err == IO_EOF;
}

/* io_pending - bytes from the peer available without waiting */
int
io_pending(struct io *io)
{
	return (io->ssl && io->tls->pending(io->ssl)) || io_wait(io, 0) > 0;
}

/* io_starttls - the handshake, bounded by ms */
int
io_starttls(struct io *io, const struct io_tls *tls, void *ssl, int ms)
{
	time_t end = time(NULL) + (ms + 999) / 1000;
	short ev = POLLIN;
	ssize_t r;

	io->tls = tls;
	if ((io->ssl = ssl) == NULL)
		return -1;
	while ((r = tls->step(io->ssl, 'a', NULL, 0, &ev)) != 1) {
		if (r != -1 || errno != EAGAIN ||
		    io_poll(io, ev == POLLIN ? io->rfd : io->wfd, ev,
		    (int)(end - time(NULL)) * 1000) <= 0)
			return -1;
	}
	return 0;
}

/* io_discard - drop buffered input */
void
io_discard(struct io *io)
{
	io->ipos = io->ilen = 0;
}

/* io_getline - one CRLF-terminated command line, capped */
enum io_status
io_getline(struct io *io, char *line, size_t *len)
{
	size_t n = 0;
	int cr = 0, toolong = 0;
	char c;

	io->rec_end = now_ms() + io->timeout * 1000LL;
	for (;;) {
		if (io->ipos == io->ilen && io_fill(io) == 0)
			return io->err;
		c = io->in[io->ipos++];
		if (c == '\n' && cr)
			break;
		cr = c == '\r';
		if (n < SMTP_LINE_MAX - 1)
			line[n++] = c;
		else
			toolong = 1;
	}
	if (toolong)
		return IO_LONG;
	line[--n] = '\0';	/* the CR */
	*len = n;
	return IO_OK;
}

/* io_getchunk - a piece of data that never splits CRLF or a "." line */
enum io_status
io_getchunk(struct io *io, int bol, const char **p, size_t *len)
{
	const char *start, *nl;
	size_t avail;

	if (bol)
		io->rec_end = now_ms() + io->timeout * 1000LL;
	for (;;) {
		start = io->in + io->ipos;
		avail = io->ilen - io->ipos;
		nl = memchr(start, '\n', avail);
		if (nl != NULL) {
			avail = (size_t)(nl - start) + 1;
			break;
		}
		if (avail > 0 && start[avail - 1] == '\r')
			avail--;
		if (avail > 0 && (!bol || avail >= 3))
			break;
		if (io_fill(io) == 0)
			return io->err;
	}
	*p = start;
	*len = avail;
	io->ipos += avail;
	return IO_OK;
}
