/*
 * net.h - IP networks (CIDR) and address matching for mynetworks.
 *
 * Pure functions on text and bytes: no DNS, no I/O. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) are unmapped before they are matched, so
 * an xinetd "flags = IPv6" client in 127.0.0.0/8 still matches it.
 */
#ifndef SMAP_NET_H
#define SMAP_NET_H

#include <stddef.h>

struct net {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16];	/* network bytes, host bits cleared */
	int prefix;		/* 0..32 or 0..128 */
};

struct netlist {
	struct net *v;
	size_t n;
};

/* Parse "192.0.2.0/24", "10.1.2.3", "2001:db8::/32", "[::1]/128" or
 * "[2001:db8::1]". Host bits set beyond the prefix are an error (as
 * Postfix warns): "10.0.0.1/8" is refused. Returns 0 or -1. */
int net_parse(const char *s, struct net *out);

/* Parse a textual address (IPv4, IPv6, or IPv4-mapped IPv6, which is
 * unmapped) into family and bytes. Returns 0 or -1. */
int net_addr_parse(const char *s, int *family, unsigned char addr[16]);

/* Does the address match any network in the list? */
int net_match(const struct netlist *l, int family, const unsigned char addr[16]);

/* Does any network in the list cover every address of a family
 * (prefix 0)? Used to refuse an open relay. */
int net_covers_all(const struct netlist *l);

/* Format a network as "a.b.c.d/n" or "[x::y]/n" (Postfix style). */
void net_format(const struct net *n, char *buf, size_t len);

#endif
