/*
 * tls.h - the OpenSSL setup smap (server) and smapd (client) share.
 *
 * Contexts are made before any jail, from files root can read; the
 * private key is loaded once and never reopened. Everything a peer
 * sends (certificate names, protocol and cipher) is escaped here before
 * it can reach a header, a spool file or a log.
 */
#ifndef SMAP_TLS_H
#define SMAP_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "bounds.h"

/* A server context: TLS 1.2 or later, no renegotiation, no
 * compression, no session tickets; cert (chain) and key from files; if
 * ask_cert, client certificates are requested (never required: their
 * fingerprint decides, see relay_clientcerts), checked against cafile
 * when one is given. NULL with a reason on failure. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *cafile,
    int ask_cert, char *why, size_t len);

/* A client context: TLS 1.2 or later, with the CA file/path for
 * verification and an optional client certificate. */
SSL_CTX *tls_client_ctx(const char *cafile, const char *capath,
    const char *cert, const char *key, char *why, size_t len);

/* SHA-256 fingerprint of a certificate into fp[TLS_FP_LEN]; 0 or -1. */
int tls_fingerprint(X509 *cert, char *fp);

/* Is fp one of the fingerprints in a list (space/comma separated, case
 * and colons ignored)? */
int tls_fp_listed(const char *fp, const char *list);

/* Copy s as a token: printable ASCII other than space and backslash as
 * is, anything else as \xHH; always NUL-terminated, cut to fit. */
void tls_token(char *dst, size_t len, const char *s);

/* What a connection negotiated: info = "PROTOCOL CIPHER" (tokens); when
 * the peer sent a certificate, its fingerprint into fp (else "") and its
 * subject as a token into subject; returns 1 when that certificate
 * verified against the context's CAs, else 0. */
int tls_describe(SSL *ssl, char *info, size_t infolen, char *fp,
    char *subject, size_t sublen);

/* The last OpenSSL error as text (for logs); empties the error queue. */
const char *tls_error(void);

#endif
