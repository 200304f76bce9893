/*
 * route.c - a recipient's next hop (see route.h).
 *
 * The table is root's configuration, opened by map.c with its bounds;
 * its values are parsed here, each with the same parser as
 * default_transport (transport_parse), at open (to count and name the
 * bad ones) and again at each lookup. Recipients come from an envelope
 * spool_read_envelope() checked.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "route.h"

static const char *const kind_names[] = { [T_SMTP] = "smtp",
	[T_LMTP] = "lmtp", [T_SENDMAIL] = "sendmail", [T_MAILDIR] = "maildir" };

/* kind_of - a transport's name into its kind; -1 when smapd has none */
static int
kind_of(const char *name, size_t n)
{
	size_t k;

	if (n == 5 && memcmp(name, "relay", 5) == 0)
		return T_SMTP;	/* Postfix's relay transport is smtp too */
	for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (strlen(kind_names[k]) == n && memcmp(kind_names[k], name, n) == 0)
			return (int)k;
	return -1;
}

/* route_hop - transport kind k with next hop hop ("" for its default) */
static int
route_hop(const struct transport *def, int k, const char *hop,
    struct transport *t, char *why, size_t len)
{
	char spec[ROUTE_NAME_MAX];

	if (k == T_SENDMAIL && *hop != '\0') {
		snprintf(why, len, "sendmail: takes no next hop");
		return -1;
	}
	if (k == T_SENDMAIL)
		return transport_parse("sendmail", t, why, len);
	if (*hop == '\0' && (int)def->kind != k) {
		snprintf(why, len, "%s: with no next hop takes default_transport's, "
		    "which is not %s", kind_names[k], kind_names[k]);
		return -1;
	}
	if (*hop == '\0') {
		*t = *def;
		return 0;
	}
	snprintf(spec, sizeof(spec), "%s:%s", kind_names[k], hop);
	return transport_parse(spec, t, why, len);
}

/* route_value - "transport:nexthop" into t */
int
route_value(const struct transport *def, const char *v, size_t vlen,
    struct transport *t, char *why, size_t len)
{
	char buf[ROUTE_NAME_MAX];
	const char *colon;
	size_t i, n;
	int k;

	if (vlen == 0 || vlen >= sizeof(buf)) {
		snprintf(why, len, "%s", vlen ? "value too long" : "empty value");
		return -1;
	}
	for (i = 0; i < vlen; i++)
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f) {
			snprintf(why, len, "value holds white space or a byte "
			    "that is not printable ASCII");
			return -1;
		}
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	colon = strchr(buf, ':');
	n = colon ? (size_t)(colon - buf) : vlen;
	k = n == 0 ? (int)def->kind : kind_of(buf, n);
	if (k < 0) {
		snprintf(why, len, "\"%.*s\" is not a transport smapd has (smtp, "
		    "lmtp, sendmail, maildir)", (int)(n > 64 ? 64 : n), buf);
		return -1;
	}
	return route_hop(def, k, colon ? colon + 1 : "", t, why, len);
}

/* fallbacks - smtp_fallback_relay: next hops split at white space and
 * commas, each "host[:port]" or "[address][:port]" (SMTP), or a whole
 * "smtp:..." or "lmtp:..." value */
static int
fallbacks(struct routes *r, const char *list, char *why, size_t len)
{
	char hop[ROUTE_NAME_MAX], spec[ROUTE_NAME_MAX + 8];
	const char *sep = " \t,";
	size_t n;

	for (list += strspn(list, sep); *list; list += strspn(list, sep)) {
		n = strcspn(list, sep);
		if (n >= sizeof(hop) || r->nfallback == FALLBACK_MAX) {
			snprintf(why, len, "%s", n >= sizeof(hop) ? "next hop too "
			    "long" : "more than 8 next hops");
			return -1;
		}
		memcpy(hop, list, n);
		hop[n] = '\0';
		list += n;
		snprintf(spec, sizeof(spec), "%s%s",
		    strncmp(hop, "smtp:", 5) != 0 &&
		    strncmp(hop, "lmtp:", 5) != 0 ? "smtp:" : "", hop);
		if (transport_parse(spec, &r->fallback[r->nfallback++], why,
		    len) < 0)
			return -1;
	}
	return 0;
}

/* Walking the table: what each entry is checked against, and who hears. */
struct walk {
	struct routes *r;
	void (*say)(void *, const char *);
	void *ctx;
	size_t bad;
};

/* check_entry - one entry of transport_maps: does its value parse? */
static int
check_entry(void *ctx, const char *key, size_t klen, const char *val,
    size_t vlen, int line)
{
	struct walk *w = ctx;
	struct transport t;
	char why[512], msg[MAP_PATH_MAX + 1024];
	const char *path = strchr(w->r->map.spec, ':') + 1;

	if (route_value(&w->r->def, val, vlen, &t, why, sizeof(why)) == 0) {
		w->r->sendmail |= t.kind == T_SENDMAIL;
		return 0;
	}
	w->bad++;
	if (w->say == NULL)
		return 0;
	if (w->r->map.type == MAP_TEXTHASH)
		snprintf(msg, sizeof(msg), "%s:%d: %.*s: %s", path, line,
		    (int)(klen > 200 ? 200 : klen), key, why);
	else
		snprintf(msg, sizeof(msg), "%s.cdb: key %.*s: %s", path,
		    (int)(klen > 200 ? 200 : klen), key, why);
	w->say(w->ctx, msg);
	return 0;
}

/* route_check - name each entry that does not parse */
size_t
route_check(const struct routes *r, void (*say)(void *, const char *),
    void *ctx)
{
	struct walk w = { (struct routes *)r, say, ctx, 0 };

	if (r->map.type != MAP_CLOSED && map_walk(&r->map, check_entry, &w) < 0 &&
	    say != NULL)
		say(ctx, "transport_maps: the table is damaged");
	return w.bad;
}

/* routes_open - default_transport, smtp_fallback_relay, transport_maps */
int
routes_open(struct routes *r, const struct conf *cf, const char **key,
    char *why, size_t len)
{
	struct walk w = { r, NULL, NULL, 0 };

	memset(r, 0, sizeof(*r));
	r->delim = cf->recipient_delimiter;
	*key = "default_transport";
	if (transport_parse(cf->default_transport, &r->def, why, len) < 0)
		return -1;
	r->sendmail = r->def.kind == T_SENDMAIL;
	*key = "smtp_fallback_relay";
	if (fallbacks(r, cf->smtp_fallback_relay, why, len) < 0)
		return -1;
	*key = "transport_maps";
	if (cf->transport_maps[0] == '\0')
		return 0;
	if (map_open(&r->map, cf->transport_maps, why, len) < 0)
		return -1;
	if (map_walk(&r->map, check_entry, &w) < 0) {
		snprintf(why, len, "%s: the table is damaged", cf->transport_maps);
		map_close(&r->map);
		return -1;
	}
	r->bad = w.bad;
	return 0;
}

/* routes_close - the table */
void
routes_close(struct routes *r)
{
	map_close(&r->map);
}

/* route_of - transport_maps' next hop for rcpt, else default_transport */
int
route_of(const struct routes *r, const char *rcpt, struct transport *t,
    char *why, size_t len)
{
	char bare[ADDR_PATH_MAX + 3], e[256];
	const char *v = NULL, *at;
	size_t vlen = 0;
	int rc = 0;

	addr_bare(bare, sizeof(bare), rcpt);
	if (r->map.type != MAP_CLOSED && (at = strrchr(bare, '@')) != NULL &&
	    at[1] != '\0') {
		*(char *)at = '\0';
		rc = map_transport(&r->map, bare, at + 1, r->delim, &v, &vlen);
		*(char *)at = '@';
	}
	if (rc < 0) {
		snprintf(why, len, "transport_maps %s: lookup failed: %s",
		    r->map.spec, strerror(errno));
		return -1;
	}
	if (rc == 0) {
		*t = r->def;
		return 0;
	}
	if (route_value(&r->def, v, vlen, t, e, sizeof(e)) == 0)
		return 0;
	snprintf(why, len, "transport_maps %s: the entry for %s does not "
	    "parse: %s", r->map.spec, bare, e);
	return -1;
}

/* route_name - t in transport(5)'s words */
const char *
route_name(const struct transport *t, char *buf, size_t len)
{
	if (t->kind == T_SENDMAIL)
		snprintf(buf, len, "sendmail:");
	else if (t->kind == T_MAILDIR)
		snprintf(buf, len, "maildir:%s", t->path);
	else if (t->path[0] != '\0')
		snprintf(buf, len, "lmtp:unix:%s", t->path);
	else
		snprintf(buf, len, "%s:%s%s%s:%u", kind_names[t->kind],
		    t->literal ? "[" : "", t->host, t->literal ? "]" : "", t->port);
	return buf;
}

/* route_same - one next hop? */
int
route_same(const struct transport *a, const struct transport *b)
{
	return a->kind == b->kind && a->literal == b->literal &&
	    a->port == b->port && strcmp(a->host, b->host) == 0 &&
	    strcmp(a->path, b->path) == 0;
}
