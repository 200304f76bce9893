/*
 * smtp_tls.c - STARTTLS for the SMTP client (see smtp.h): the policy of
 * smtp_tls_security_level, the handshake, the verification of the
 * server's certificate, the one log line per TLS session.
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
 * EHLO is repeated over TLS (smtp_proto.c) and only its capabilities
 * count. verify wants a chain to a CA of smtp_tls_CAfile/smtp_tls_CApath
 * (OpenSSL's default store when neither is set) and a match of the
 * next-hop name (SNI too) or, for an [address], of its IP address;
 * fingerprint wants the certificate's SHA-256 in
 * smtp_tls_fingerprint_cert_match; either failing defers with 4.7.5.
 * The peer is verified with a callback that only records errors, under
 * SSL_VERIFY_PEER so that a verification that could not run at all
 * ends the handshake. One line per TLS session is logged, Postfix
 * style. The SSL_CTX is made on first use (after the privilege drop:
 * its files must be readable by smapd_user) and kept until its settings
 * change. OpenSSL writes with write(2): smapd ignores SIGPIPE (main.c).
 *
 * TRUST: the server's certificate is only compared (chain, name,
 * fingerprint), never believed; what the log shows of the session
 * comes through tls_describe() as tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "smtp.h"
#include "tls.h"

/* tls_level - smtp_tls_security_level, TLS_NEXTHOP decided by the next
 * hop */
enum tlslevel
tls_level(const struct conf *cf, const struct transport *t)
{
	if (cf->smtp_tls_security_level == TLS_NEXTHOP)
		return t->literal || t->path[0] ? TLS_MAY : TLS_VERIFY;
	return cf->smtp_tls_security_level;
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

	log_info_as(c->ident, "%s TLS connection established to %s: %.*s "
	    "with cipher %s", how, c->relay, sp ? (int)(sp - info) :
	    (int)strlen(info), info, sp ? sp + 1 : "unknown");
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

/* starttls - TLS as the level asks; 0 go on (TLS, then EHLO again, or,
 * for may, plaintext), 1 decided, -1 I/O */
int
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
		log_warn_as(c->ident, "cannot set up TLS for %s: %s", c->peer,
		    why);
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
	return 0;
}
