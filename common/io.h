/*
 * io.h - bounded, timed I/O on one connection, plain or through a TLS
 * layer: smap's session (commands, message data, replies) and
 * smap-sendmail's submission to smap (commands out, replies in).
 *
 * The peer controls every byte. A whole command line, or a whole line of
 * message data, must arrive within smtpd_timeout of the first wait for
 * it (Postfix's smtpd_per_record_deadline, always on: a client trickling
 * a byte at a time holds no slot for long), never past the session
 * deadline; a write waits at most smtpd_timeout; a command line is capped at
 * SMTP_LINE_MAX and the excess is skipped to the next CRLF; only CRLF
 * ends a line. Replies are buffered and sent when smap needs more input
 * (RFC 2920 pipelining) or explicitly flushed.
 */
#ifndef SMAP_IO_H
#define SMAP_IO_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include "bounds.h"

enum io_status { IO_OK, IO_LONG, IO_EOF, IO_TIMEOUT, IO_ERROR };

/* A TLS layer under the connection (smap-tls.so's: tls_server.h). step
 * makes one handshake ('a'), read ('r') or write ('w') call: bytes (1
 * for a finished handshake), 0 at close_notify, or -1 with errno EAGAIN
 * and *ev the poll(2) event to wait for, or another errno. pending:
 * decrypted bytes waiting inside it. */
struct io_tls {
	ssize_t (*step)(void *conn, int op, void *buf, size_t n, short *ev);
	int (*pending)(void *conn);
};

struct io {
	int rfd, wfd;
	int timeout;		/* seconds for one wait */
	time_t deadline;	/* end of the session */
	long long end_ms;	/* the same, on the monotonic clock */
	long long rec_end;	/* end of the line being read, ditto */
	enum io_status err;	/* why the last call failed */
	const struct io_tls *tls;
	void *ssl;		/* after STARTTLS: all I/O goes through it */
	size_t ipos, ilen, olen;
	char in[16384];
	char out[4096];
};

void io_init(struct io *io, int rfd, int wfd, int timeout, time_t deadline);
/* Wait up to ms for input; 1 when some is there, 0 when not, -1 on error. */
int io_wait(struct io *io, int ms);
/* Are bytes from the peer waiting (buffered or in the kernel)? */
int io_pending(struct io *io);
/* After io_wait() said input is there: did the peer just close, having
 * sent nothing? (Reads what is there.) */
int io_eof(struct io *io);
/* Forget everything buffered from the peer. */
void io_discard(struct io *io);
/* A command line without its CRLF, NUL-terminated, in line[SMTP_LINE_MAX].
 * Returns IO_OK, IO_LONG (skipped), or IO_EOF/IO_TIMEOUT/IO_ERROR. */
enum io_status io_getline(struct io *io, char *line, size_t *len);
/* The next piece of message data: up to and including the next LF, or
 * what is buffered, never ending between CR and LF; at the start of a
 * line (bol) at least 3 bytes or a whole line. */
enum io_status io_getchunk(struct io *io, int bol, const char **p, size_t *len);
/* Make the TLS handshake over ssl (tls's connection on these fds) within
 * ms milliseconds; from then on all I/O goes through it. 0, or -1 (the
 * session must end). */
int io_starttls(struct io *io, const struct io_tls *tls, void *ssl, int ms);
/* Queue a reply line (CRLF added); sent by io_flush or the next read. */
void io_reply(struct io *io, const char *line);
int io_flush(struct io *io);

#endif
