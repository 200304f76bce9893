/*
 * tls.c - OpenSSL contexts and certificate helpers (see tls.h).
 *
 * Trusts the configuration for file names. Certificates from peers are
 * only hashed and printed through tls_token(); nothing from them is
 * ever interpreted.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls.h"

/* accept_any - request a client certificate without failing on it */
static int
accept_any(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

/* common_opts - what both sides want of every connection */
static void
common_opts(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

/* tls_error - the newest OpenSSL error, and forget the rest */
const char *
tls_error(void)
{
	static char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, sizeof(buf), "unknown TLS error");
	else
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* tls_server_ctx - see tls.h */
SSL_CTX *
tls_server_ctx(const char *cert, const char *key, const char *cafile,
    int ask_cert, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *step = "SSL_CTX_new";

	if (ctx == NULL)
		goto fail;
	common_opts(ctx);
	step = cert;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		goto fail;
	step = key;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	step = cafile;
	if (cafile && *cafile &&
	    SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
		goto fail;
	if (ask_cert || (cafile && *cafile))
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
	return ctx;
fail:
	snprintf(why, len, "%s: %s", step, tls_error());
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_client_ctx - see tls.h */
SSL_CTX *
tls_client_ctx(const char *cafile, const char *capath, const char *cert,
    const char *key, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *step = "SSL_CTX_new";

	if (ctx == NULL)
		goto fail;
	common_opts(ctx);
	step = "CA file or path";
	if (((cafile && *cafile) || (capath && *capath)) &&
	    SSL_CTX_load_verify_locations(ctx, cafile && *cafile ? cafile : NULL,
	    capath && *capath ? capath : NULL) != 1)
		goto fail;
	step = cert;
	if (cert && *cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key && *key ? key : cert,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1))
		goto fail;
	return ctx;
fail:
	snprintf(why, len, "%s: %s", step ? step : "", tls_error());
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_fingerprint - "AB:CD:..." of the DER certificate */
int
tls_fingerprint(X509 *cert, char *fp)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (cert == NULL || X509_digest(cert, EVP_sha256(), md, &n) != 1 ||
	    n != 32)
		return -1;
	for (i = 0; i < n; i++)
		snprintf(fp + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
	return 0;
}

/* hexonly - the hex digits of s, upper-case, into out */
static void
hexonly(const char *s, size_t n, char *out, size_t len)
{
	size_t o = 0;

	for (; n > 0 && o + 1 < len; s++, n--)
		if (isxdigit((unsigned char)*s))
			out[o++] = (char)toupper((unsigned char)*s);
	out[o] = '\0';
}

/* tls_fp_listed - is fp in the list? */
int
tls_fp_listed(const char *fp, const char *list)
{
	char want[80], have[80];
	size_t n;

	hexonly(fp, strlen(fp), want, sizeof(want));
	while (list && *list) {
		list += strspn(list, " ,\t");
		n = strcspn(list, " ,\t");
		hexonly(list, n, have, sizeof(have));
		if (n > 0 && strlen(want) == 64 && strcmp(want, have) == 0)
			return 1;
		list += n;
	}
	return 0;
}

/* tls_token - escape a peer-supplied string into one printable token */
void
tls_token(char *dst, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c > 0x20 && c < 0x7f && c != '\\')
			dst[o++] = (char)c;
		else
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", c);
	}
	if (len > 0)
		dst[o < len ? o : len - 1] = '\0';
}

/* tls_describe - protocol, cipher and the peer's certificate */
int
tls_describe(SSL *ssl, char *info, size_t infolen, char *fp, char *subject,
    size_t sublen)
{
	char proto[32], cipher[96], name[512];
	X509 *peer = SSL_get1_peer_certificate(ssl);
	int ok = 0;

	tls_token(proto, sizeof(proto), SSL_get_version(ssl));
	tls_token(cipher, sizeof(cipher), SSL_get_cipher_name(ssl));
	snprintf(info, infolen, "%s %s", proto, cipher);
	fp[0] = subject[0] = '\0';
	if (peer != NULL) {
		if (tls_fingerprint(peer, fp) < 0)
			fp[0] = '\0';
		X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof(name));
		tls_token(subject, sublen, name);
		ok = SSL_get_verify_result(ssl) == X509_V_OK;
		X509_free(peer);
	}
	return ok;
}
