/*
 * relay.h - the relay policy: who may send to which recipient. One rule,
 * applied by smap at RCPT time and again by smapd to every envelope it
 * picks up, because a compromised smap could write any envelope.
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

#endif
