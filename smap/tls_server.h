/*
 * tls_server.h - every OpenSSL call smap makes, behind one table.
 *
 * smap itself links no OpenSSL: loading libssl and libcrypto costs a
 * session about 3.4 M instructions and 2.5 MB before it reads a byte,
 * TLS or not. When TLS is on, smap loads smap-tls.so (tls_server.c and
 * common/tls.c, linked with OpenSSL) from shlib_directory before the
 * jail, and reaches OpenSSL only through this table.
 */
#ifndef SMAP_TLS_SERVER_H
#define SMAP_TLS_SERVER_H

#include <stddef.h>
#include <sys/types.h>
#include "bounds.h"
#include "io.h"

#define TLS_SERVER_SYMBOL "smap_tls_server"
#define TLS_SERVER_ABI 2	/* raise when the table changes */

struct tls_server {
	int abi;
	struct io_tls io;	/* step and pending, for io.c (io.h) */
	/* The server context (see tls_server_ctx() in tls.h): 0, or -1 and why. */
	int (*init)(const char *cert, const char *key, const char *cafile,
	    int ask_cert, char *why, size_t len);
	/* A connection on rfd/wfd, or NULL. */
	void *(*conn)(int rfd, int wfd);
	/* See tls_describe(), tls_fp_listed() and tls_error() in tls.h. */
	int (*describe)(void *conn, char *info, size_t infolen, char *fp,
	    char *subject, size_t sublen);
	int (*fp_listed)(const char *fp, const char *list);
	const char *(*error)(void);
	void (*close)(void *conn);	/* close_notify, no waiting */
};

#endif
