/*
 * smtp_sasl.c - AUTH for the SMTP client (see smtp.h): the credentials
 * sasl.c finds for the next hop, sent by PLAIN or LOGIN.
 *
 * AUTH: with smtp_sasl_password_maps set, sasl.c is asked on every new
 * connection, after the (TLS) EHLO, for "[host]:port" then "[host]"
 * ("host:port", "host"; "unix:/path"); a file it refuses defers with
 * 4.7.0. When there are credentials and the server offers AUTH, they
 * are sent only over TLS (else 4.7.0, nothing sent), by PLAIN, else
 * LOGIN (else 4.7.0: no common mechanism). Any reply but 235 defers
 * (never bounces: a wrong password is ours to fix), with the server's
 * words. Credentials go straight from wiped buffers to conn_write(),
 * are never logged, and are wiped after use.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "log.h"
#include "sasl.h"
#include "smtp.h"

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
	int rc = n == 0 ? -1 : conn_write(c, line, n, deadline_s(secs));

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
int
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
		log_warn_as(c->ident, "smtp_sasl_password_maps: %s", why);
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
