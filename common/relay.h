/*
 * relay.h - the relay policy: who may send to which recipient. One rule,
 * applied by smap at RCPT time and again by smapd to every envelope it
 * picks up, because a compromised smap could write any envelope
 * (relay.c); and the settings that would make that rule an open relay,
 * refused when the configuration is loaded (conf_relay.c, which also
 * has conf_warnings(), see conf.h).
 */
#ifndef SMAP_RELAY_H
#define SMAP_RELAY_H

#include "addr.h"
#include "conf.h"

/* May a client send to this recipient? Yes for <postmaster>, for a
 * trusted client (in mynetworks, or with a certificate listed in
 * relay_clientcerts: the caller decides that), and for a domain in
 * relay_domains; never for an address literal otherwise. */
int relay_allowed(const struct conf *cf, const struct addr *a, int trusted);

/* Does a domain (already lowercase, no trailing dot) match the list?
 * "example.com" matches itself; ".example.com" matches its
 * subdomains but not itself. Comparison ignores case. */
int domain_match(const struct strlist *l, const char *domain);

/* How relay_check() says what it refuses: the key concerned and why. */
typedef void relay_say_fn(void *arg, const char *key, const char *msg);

/* Unless allow_open_relay = yes: each network in mynetworks wide
 * enough to make an open relay (IPv4 shorter than /8, IPv6 shorter than
 * /16, outside loopback, RFC 1918, unique-local and link-local space)
 * and each ".tld" in relay_domains, one say() each. Returns how many. */
int relay_check(const struct conf *c, relay_say_fn *say, void *arg);

#endif
