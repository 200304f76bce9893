/*
 * t_net.c - unit tests of net.c: CIDR parsing, formatting, matching.
 *
 * Usage: t_net [golden-dir] (the directory is not used yet). Trusts
 * nothing but the library under test; prints TAP.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include "net.h"
#include "tap.h"

static void test_parse_good(void);
static void test_parse_bad(void);
static void test_addr(void);
static void test_match(void);
static void test_covers_all(void);
static void test_format(void);
static int list_of(struct netlist *, struct net *, size_t, const char *const *);
static int matches(const struct netlist *, const char *);

/* Parse good networks and check their canonical form. */
static void
test_parse_good(void)
{
	static const char *const t[][2] = {
		{ "192.0.2.0/24", "192.0.2.0/24" },
		{ "10.1.2.3", "10.1.2.3/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "2001:db8::/32", "[2001:db8::]/32" },
		{ "[::1]/128", "[::1]/128" },
		{ "[::1]", "[::1]/128" },
		{ "[2001:DB8::1]", "[2001:db8::1]/128" },
		{ "::/0", "[::]/0" },
		{ "[::]/0", "[::]/0" },
		{ "192.0.2.128/25", "192.0.2.128/25" },
		{ "[::ffff:127.0.0.0]/104", "127.0.0.0/8" },
		{ "::ffff:192.0.2.1", "192.0.2.1/32" },
		{ "::ffff:0:0/96", "0.0.0.0/0" },
		{ "::fffe:0:0/95", "[::fffe:0:0]/95" },
		{ "10.0.0.0/08", "10.0.0.0/8" },
	};
	struct net n;
	char buf[80];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf[0] = '\0';
		if (tap_ok(net_parse(t[i][0], &n) == 0, "net_parse %s",
		    t[i][0]))
			net_format(&n, buf, sizeof(buf));
		tap_is(buf, t[i][1], "net_format of %s", t[i][0]);
	}
	net_parse("10.1.2.3", &n);
	tap_ok(n.family == AF_INET && n.prefix == 32, "bare IPv4 is a /32");
	net_parse("[::1]", &n);
	tap_ok(n.family == AF_INET6 && n.prefix == 128, "bare IPv6 is a /128");
}

/* Refuse malformed networks, host bits and bad prefixes. */
static void
test_parse_bad(void)
{
	static const char *const t[] = {
		"", "10.0.0.1/8", "2001:db8::1/32", "1.2.3.4/33", "::/129",
		"[::]/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/+8",
		"1.2.3.4/1234", "1.2.3.4/8x", "[1.2.3.4]", "[1.2.3.4]/32",
		"[::1", "[::1]x", "[::1]/", "::1]", "10/8", "1.2.3",
		"256.0.0.0",
		"fe80::1%eth0", "localhost", " 1.2.3.4", "1.2.3.4 ",
		"::1/128/1", "[[::1]]", "1.2.3.4/ 8", "::ffff:0:0/95",
		"0000000000000000000000000000000000000"
		    "000000000000000000000000001.2.3.4",
	};
	struct net n;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		tap_ok(net_parse(t[i], &n) == -1, "net_parse refuses \"%s\"",
		    t[i]);
	tap_ok(net_parse(NULL, &n) == -1, "net_parse refuses NULL");
}

/* Bare addresses: both families, IPv4-mapped unmapped, junk refused. */
static void
test_addr(void)
{
	static const unsigned char lo4[4] = { 127, 0, 0, 1 };
	static const unsigned char lo6[16] = { [15] = 1 };
	static const char *const bad[] = {
		"", "[::1]", "1.2.3.4/32", "localhost", "::1%lo", "1.2.3.4 ",
	};
	unsigned char a[16];
	int fam = 0;
	size_t i;

	tap_ok(net_addr_parse("127.0.0.1", &fam, a) == 0 && fam == AF_INET &&
	    memcmp(a, lo4, 4) == 0, "addr 127.0.0.1");
	tap_ok(net_addr_parse("::1", &fam, a) == 0 && fam == AF_INET6 &&
	    memcmp(a, lo6, 16) == 0, "addr ::1");
	tap_ok(net_addr_parse("::ffff:127.0.0.1", &fam, a) == 0 &&
	    fam == AF_INET && memcmp(a, lo4, 4) == 0,
	    "addr ::ffff:127.0.0.1 is unmapped to AF_INET");
	tap_ok(net_addr_parse("::FFFF:7F00:1", &fam, a) == 0 &&
	    fam == AF_INET && memcmp(a, lo4, 4) == 0,
	    "addr ::FFFF:7F00:1 is unmapped too");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tap_ok(net_addr_parse(bad[i], &fam, a) == -1,
		    "net_addr_parse refuses \"%s\"", bad[i]);
}

/* Build a list from texts; returns 0 if all parsed. */
static int
list_of(struct netlist *l, struct net *v, size_t max, const char *const *s)
{
	l->v = v;
	for (l->n = 0; s[l->n] != NULL && l->n < max; l->n++)
		if (net_parse(s[l->n], &v[l->n]) == -1)
			return -1;
	return 0;
}

/* Does the address text match the list? -1 if it does not parse. */
static int
matches(const struct netlist *l, const char *addr)
{
	unsigned char a[16];
	int fam;

	if (net_addr_parse(addr, &fam, a) == -1)
		return -1;
	return net_match(l, fam, a);
}

/* The mynetworks default, a /25, and mapped addresses. */
static void
test_match(void)
{
	static const char *const def[] = { "127.0.0.0/8", "[::1]/128", NULL };
	static const char *const odd[] = { "192.0.2.128/25", "2001:db8::/33",
	    NULL };
	static const unsigned char mapped[16] = { [10] = 0xff, [11] = 0xff,
	    [12] = 127, [15] = 1 };
	struct net v[4];
	struct netlist l, empty = { NULL, 0 };

	tap_ok(list_of(&l, v, 4, def) == 0, "default mynetworks parses");
	tap_ok(matches(&l, "127.0.0.1") == 1, "127.0.0.1 in 127.0.0.0/8");
	tap_ok(matches(&l, "127.255.255.255") == 1, "127.255.255.255 matches");
	tap_ok(matches(&l, "::ffff:127.0.0.1") == 1,
	    "::ffff:127.0.0.1 matches 127.0.0.0/8");
	tap_ok(net_match(&l, AF_INET6, mapped) == 1,
	    "net_match unmaps raw ::ffff:127.0.0.1 bytes itself");
	tap_ok(matches(&l, "::1") == 1, "::1 matches [::1]/128");
	tap_ok(matches(&l, "::2") == 0, "::2 does not match");
	tap_ok(matches(&l, "128.0.0.1") == 0, "128.0.0.1 does not match");
	tap_ok(matches(&l, "10.0.0.1") == 0, "10.0.0.1 does not match");
	tap_ok(net_match(&l, AF_UNIX, mapped) == 0, "AF_UNIX never matches");
	tap_ok(net_match(NULL, AF_INET6, mapped) == 0, "NULL list");
	tap_ok(net_match(&empty, AF_INET6, mapped) == 0, "empty list");
	tap_ok(list_of(&l, v, 4, odd) == 0, "odd prefixes parse");
	tap_ok(matches(&l, "192.0.2.200") == 1, "192.0.2.200 in /25");
	tap_ok(matches(&l, "192.0.2.127") == 0, "192.0.2.127 not in /25");
	tap_ok(matches(&l, "2001:db8:7fff::1") == 1, "2001:db8:7fff::1 in /33");
	tap_ok(matches(&l, "2001:db8:8000::1") == 0,
	    "2001:db8:8000::1 not in /33");
}

/* Prefix 0 of either family covers all; others do not. */
static void
test_covers_all(void)
{
	static const char *const v4[] = { "10.0.0.0/8", "0.0.0.0/0", NULL };
	static const char *const v6[] = { "::/0", NULL };
	static const char *const def[] = { "127.0.0.0/8", "[::1]/128", NULL };
	static const char *const any4[] = { "0.0.0.0/0", NULL };
	struct net v[4];
	struct netlist l, empty = { NULL, 0 };

	list_of(&l, v, 4, v4);
	tap_ok(net_covers_all(&l) == 1, "0.0.0.0/0 covers all");
	list_of(&l, v, 4, v6);
	tap_ok(net_covers_all(&l) == 1, "::/0 covers all");
	list_of(&l, v, 4, def);
	tap_ok(net_covers_all(&l) == 0, "the default does not cover all");
	tap_ok(net_covers_all(&empty) == 0, "empty list does not");
	tap_ok(net_covers_all(NULL) == 0, "NULL list does not");
	list_of(&l, v, 4, any4);
	tap_ok(matches(&l, "203.0.113.9") == 1, "0.0.0.0/0 matches any IPv4");
	tap_ok(matches(&l, "2001:db8::1") == 0,
	    "0.0.0.0/0 does not match IPv6");
}

/* net_format truncates safely. */
static void
test_format(void)
{
	struct net n;
	char buf[8] = "zzzzzzz";

	net_parse("192.0.2.0/24", &n);
	net_format(&n, buf, 5);
	tap_is(buf, "192.", "net_format truncates and terminates");
	net_format(&n, buf, 0);
	tap_is(buf, "192.", "net_format with len 0 writes nothing");
}

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	test_parse_good();
	test_parse_bad();
	test_addr();
	test_match();
	test_covers_all();
	test_format();
	return tap_done();
}
