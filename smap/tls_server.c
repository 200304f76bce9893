/*
 * tls_server.c - smap-tls.so: the OpenSSL side of smap's STARTTLS.
 *
 * Built as a shared object that smap loads only when TLS is on (see
 * tls_server.h). Holds one server context per process, made before the
 * jail. Everything the client sends goes through OpenSSL and back to
 * smap's bounded reader; nothing here interprets it.
 */
#include <errno.h>
#include <poll.h>

#include "tls.h"
#include "tls_server.h"

static SSL_CTX *ctx;

/* init - the context, from files root can read */
static int
init(const char *cert, const char *key, const char *cafile, int ask_cert,
    char *why, size_t len)
{
	ctx = tls_server_ctx(cert, key, cafile, ask_cert, why, len);
	return ctx == NULL ? -1 : 0;
}

/* conn - a connection on the client's descriptors */
static void *
conn(int rfd, int wfd)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl != NULL && (SSL_set_rfd(ssl, rfd) != 1 || SSL_set_wfd(ssl, wfd) != 1)) {
		SSL_free(ssl);
		ssl = NULL;
	}
	return ssl;
}

/* step - one handshake, read or write call, mapped onto errno */
static ssize_t
step(void *c, int op, void *buf, size_t n, short *ev)
{
	int r = op == 'a' ? SSL_accept(c) : op == 'r' ? SSL_read(c, buf, (int)n) :
	    SSL_write(c, buf, (int)n);

	if (r > 0)
		return r;
	switch (SSL_get_error(c, r)) {
	case SSL_ERROR_WANT_READ:
		*ev = POLLIN;
		break;
	case SSL_ERROR_WANT_WRITE:
		*ev = POLLOUT;
		break;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		errno = EIO;
		return -1;
	}
	errno = EAGAIN;
	return -1;
}

/* pending - decrypted bytes waiting inside OpenSSL */
static int
pending(void *c)
{
	return SSL_pending(c) > 0;
}

/* describe - tls_describe() behind an opaque handle */
static int
describe(void *c, char *info, size_t infolen, char *fp, char *subject,
    size_t sublen)
{
	return tls_describe(c, info, infolen, fp, subject, sublen);
}

/* close - send close_notify without waiting for the answer */
static void
close_conn(void *c)
{
	(void)SSL_shutdown(c);
}

const struct tls_server smap_tls_server = {
	TLS_SERVER_ABI, { step, pending }, init, conn, describe, tls_fp_listed,
	tls_error, close_conn
};
