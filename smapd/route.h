/*
 * route.h - which next hop a recipient goes to: transport_maps, looked
 * up as Postfix's transport(5) says, else default_transport; and the
 * next hops of smtp_fallback_relay.
 *
 * A value is Postfix's "transport:nexthop" with smapd's transports
 * (transport.h): "smtp:[10.0.0.5]:25", "smtp:mx.example", "lmtp:[::1]:24",
 * "lmtp:unix:/run/lmtp", "sendmail:", "maildir:/var/mail/x/"; "relay"
 * is another name of smtp, as in Postfix's master.cf. An empty next hop
 * ("smtp:", "smtp") takes default_transport's when that is the same
 * transport (smapd does no MX lookups); an empty transport (":[host]")
 * takes default_transport's transport. Anything else (Postfix's error:,
 * discard:, local:) does not parse.
 */
#ifndef SMAPD_ROUTE_H
#define SMAPD_ROUTE_H

#include <stddef.h>
#include "conf.h"
#include "map.h"
#include "transport.h"

#define FALLBACK_MAX	8	/* next hops in smtp_fallback_relay */
#define ROUTE_NAME_MAX	(sizeof(((struct transport *)0)->path) + 16)

struct routes {
	struct transport def;		/* default_transport */
	struct map map;			/* transport_maps; MAP_CLOSED: none */
	const char *delim;		/* recipient_delimiter */
	struct transport fallback[FALLBACK_MAX];	/* smtp_fallback_relay */
	size_t nfallback;
	int sendmail;			/* a next hop is the sendmail transport */
	size_t bad;			/* entries of transport_maps that do not
					 * parse (smapd -t names them) */
};

/* Parse default_transport and smtp_fallback_relay, open transport_maps
 * and parse each of its entries (r->bad, r->sendmail). r->delim points
 * into cf. Returns 0, or -1 with *key the key at fault and why the
 * reason ("/etc/smap/transport.cdb: no such file"); then nothing is
 * left open. */
int routes_open(struct routes *r, const struct conf *cf, const char **key,
    char *why, size_t len);

/* Release what routes_open took; safe twice. */
void routes_close(struct routes *r);

/* A transport(5) value of vlen bytes (not NUL-terminated) into t, with
 * def for what it leaves out (see above). 0, or -1 with why. */
int route_value(const struct transport *def, const char *v, size_t vlen,
    struct transport *t, char *why, size_t len);

/* The next hop of a recipient as the envelope stores it ("<u@dom>"):
 * transport_maps' entry (full address, address without its extension,
 * domain, ".parent" domains, "*"), else default_transport. 0, or -1
 * with why (the entry does not parse, the table cannot be read): the
 * recipient must be deferred, never delivered elsewhere. */
int route_of(const struct routes *r, const char *rcpt, struct transport *t,
    char *why, size_t len);

/* Say each entry of transport_maps that does not parse, one line each:
 * "FILE:LINE: key: reason" (texthash:) or "FILE.cdb: key KEY: reason"
 * (cdb:). Returns how many. */
size_t route_check(const struct routes *r, void (*say)(void *ctx,
    const char *line), void *ctx);

/* t as a transport(5) value: "smtp:[10.0.0.5]:25", "lmtp:unix:/run/x",
 * "sendmail:", "maildir:/var/mail/smap/". Returns buf. */
const char *route_name(const struct transport *t, char *buf, size_t len);

/* Do a and b name the same next hop? */
int route_same(const struct transport *a, const struct transport *b);

#endif
