/*
 * net.c - IP networks (CIDR) and address matching for mynetworks.
 *
 * Pure functions on text and bytes: inet_pton/inet_ntop only, never
 * DNS, no I/O, no global state. Input text is trusted for nothing: its
 * length is capped before it is copied, prefixes are digits only and
 * range-checked, and a network with host bits set is refused. IPv4-
 * mapped IPv6 addresses (::ffff:a.b.c.d) are unmapped to AF_INET, and
 * so are mapped networks with a prefix of 96 or more.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "net.h"

/* Longest text we accept: "[" IPv6 with embedded IPv4 "]/128". */
#define NET_TEXT_MAX 64

static const unsigned char mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Is a 16-byte IPv6 address of the form ::ffff:a.b.c.d? */
static int
net_is_mapped(const unsigned char a[16])
{
	return memcmp(a, mapped_prefix, sizeof(mapped_prefix)) == 0;
}

/* Turn an IPv4-mapped IPv6 address into AF_INET in place. */
static void
net_unmap(int *family, unsigned char addr[16])
{
	if (*family != AF_INET6 || !net_is_mapped(addr))
		return;
	memmove(addr, addr + 12, 4);
	memset(addr + 4, 0, 12);
	*family = AF_INET;
}

/* Parse a prefix length: 1 to 3 digits, 0..max. Returns it or -1. */
static int
net_prefix_parse(const char *s, int max)
{
	int v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 3)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* Are all bits after the first prefix bits (of bits in all) zero? */
static int
net_host_bits_clear(const unsigned char a[16], int bits, int prefix)
{
	int i;

	for (i = prefix; i < bits; i++)
		if (a[i / 8] & (0x80 >> (i % 8)))
			return 0;
	return 1;
}

/* Do the first prefix bits of a and b agree? */
static int
net_prefix_eq(const unsigned char *a, const unsigned char *b, int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* Split "addr[/n]" or "[addr][/n]" in place. Returns 1 if bracketed,
 * 0 if not, -1 on a syntax error. *plen is NULL without a prefix. */
static int
net_split(char *buf, char **addr, char **plen)
{
	char *p;
	int bracket = buf[0] == '[';

	*plen = NULL;
	*addr = buf + bracket;
	if (bracket) {
		if ((p = strchr(buf, ']')) == NULL)
			return -1;
		*p++ = '\0';
		if (*p != '\0' && *p != '/')
			return -1;
	} else
		p = strchr(buf, '/');
	if (p != NULL && *p == '/') {
		*p = '\0';
		*plen = p + 1;
	}
	return bracket;
}

/* Parse a network in CIDR notation; see net.h. */
int
net_parse(const char *s, struct net *out)
{
	char buf[NET_TEXT_MAX + 1], *addr, *plen;
	int bracket, bits;

	if (s == NULL || strlen(s) > NET_TEXT_MAX)
		return -1;
	memcpy(buf, s, strlen(s) + 1);
	memset(out, 0, sizeof(*out));
	if ((bracket = net_split(buf, &addr, &plen)) < 0)
		return -1;
	if (!bracket && inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	bits = out->family == AF_INET ? 32 : 128;
	out->prefix = plen == NULL ? bits : net_prefix_parse(plen, bits);
	if (out->prefix < 0 ||
	    !net_host_bits_clear(out->addr, bits, out->prefix))
		return -1;
	if (out->family == AF_INET6 && out->prefix >= 96 &&
	    net_is_mapped(out->addr)) {
		net_unmap(&out->family, out->addr);
		out->prefix -= 96;
	}
	return 0;
}

/* Parse a bare address, unmapping IPv4-mapped IPv6; see net.h. */
int
net_addr_parse(const char *s, int *family, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (s == NULL || strlen(s) > NET_TEXT_MAX)
		return -1;
	if (inet_pton(AF_INET, s, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		net_unmap(family, addr);
	} else
		return -1;
	return 0;
}

/* Does the address match any network in the list? */
int
net_match(const struct netlist *l, int family, const unsigned char addr[16])
{
	unsigned char a[16];
	size_t i;

	if (l == NULL || addr == NULL)
		return 0;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	memcpy(a, addr, family == AF_INET ? 4 : 16);
	if (family == AF_INET)
		memset(a + 4, 0, 12);
	net_unmap(&family, a);
	for (i = 0; i < l->n; i++)
		if (l->v[i].family == family &&
		    net_prefix_eq(l->v[i].addr, a, l->v[i].prefix))
			return 1;
	return 0;
}

/* Does any network in the list have prefix 0? */
int
net_covers_all(const struct netlist *l)
{
	size_t i;

	if (l == NULL)
		return 0;
	for (i = 0; i < l->n; i++)
		if (l->v[i].prefix == 0)
			return 1;
	return 0;
}

/* Format as "a.b.c.d/n" or "[x::y]/n"; always NUL-terminates. */
void
net_format(const struct net *n, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int v6 = n->family == AF_INET6;

	if (len == 0)
		return;
	if (inet_ntop(v6 ? AF_INET6 : AF_INET, n->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s%s%s/%d", v6 ? "[" : "", a, v6 ? "]" : "",
	    n->prefix);
}
