/*
 * t_proxy.c - unit tests for common/proxy.c: the PROXY protocol parser
 * and the reader that takes exactly one header off a socket.
 *
 * Usage: t_proxy   (needs nothing but a socketpair; prints TAP)
 *
 * Parser: every good header parses to the fields it states, with or
 * without bytes after it; every shorter prefix asks for more and never
 * for a byte past the header's end; every bad header is refused with
 * its reason, also when fed the way proxy_read feeds it.
 *
 * Reader: each good header, split at every byte boundary (a child
 * writes the second piece only once the first has been read), gives the
 * same result, and the pipelined bytes written after it are left in the
 * socket exactly; each bad header split so is refused for its reason;
 * a half header times out within the bound, also when
 * it trickles in; signals do not break a read; a peer that closes, one
 * that stops halfway, one that sends no CRLF and one that is no proxy
 * are refused after reading no more than they must.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/sockios.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"
#include "tap.h"

#define B(s)	(const unsigned char *)(s), sizeof(s) - 1
#define SIG	"\r\n\r\n\0\r\nQUIT\n"
#define TAIL	"EHLO client.example\r\n"
#define HELLO	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
#define V6MAX	"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

struct good {
	const char *name;
	const unsigned char *b;
	size_t len;
	int version, local, family;
	const char *src, *dst;
	unsigned sport, dport;
};

struct bad {
	const unsigned char *b;
	size_t len;
	const char *why, *name;
};

static unsigned char v1_long[PROXY_V1_MAX + 1], v1_nocrlf[300];
static unsigned char v2_cap[16 + PROXY_V2_MAX], v2_over[16 + PROXY_V2_MAX + 1];

static const struct good goods[] = {
	{ "v1 TCP4", B("PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r\n"),
	    1, 0, AF_INET, "192.0.2.1", "198.51.100.7", 12345, 25 },
	{ "v1 TCP6, canonical text",
	    B("PROXY TCP6 2001:DB8:0::1 2001:db8:0:0:0:0:0:25 40000 587\r\n"),
	    1, 0, AF_INET6, "2001:db8::1", "2001:db8::25", 40000, 587 },
	{ "v1 TCP6 mapped, ports 0 and 65535",
	    B("PROXY TCP6 ::ffff:192.0.2.1 ::1 0 65535\r\n"),
	    1, 0, AF_INET6, "::ffff:192.0.2.1", "::1", 0, 65535 },
	{ "v1 TCP6 longest", B("PROXY TCP6 " V6MAX " " V6MAX " 65535 65535\r\n"),
	    1, 0, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "v1 UNKNOWN", B("PROXY UNKNOWN\r\n"), 1, 1, 0, "", "", 0, 0 },
	{ "v1 UNKNOWN, 107 bytes",
	    B("PROXY UNKNOWN " V6MAX " " V6MAX " 65535 65535\r\n"),
	    1, 1, 0, "", "", 0, 0 },
	{ "v1 UNKNOWN with junk", B("PROXY UNKNOWN x\x01\xff  \t\r\n"),
	    1, 1, 0, "", "", 0, 0 },
	{ "v2 PROXY TCP4", B(SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x01"
	    "\xc6\x33\x64\x07" "\x30\x39" "\x00\x19"),
	    2, 0, AF_INET, "192.0.2.1", "198.51.100.7", 12345, 25 },
	{ "v2 PROXY TCP4 with TLVs", B(SIG "\x21\x11\x00\x15"
	    "\xc0\x00\x02\x01" "\xc6\x33\x64\x07" "\x30\x39" "\x00\x19"
	    "\x04\x00\x03" "abc" "\x05\x00\x00"),
	    2, 0, AF_INET, "192.0.2.1", "198.51.100.7", 12345, 25 },
	{ "v2 PROXY TCP6", B(SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25" "\x9c\x40" "\x02\x4b"),
	    2, 0, AF_INET6, "2001:db8::1", "2001:db8::25", 40000, 587 },
	{ "v2 PROXY TCP6 mapped, TLV", B(SIG "\x21\x21\x00\x2a"
	    "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x01"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x00" "\xff\xff"
	    "\x01\x00\x03" "smt"),
	    2, 0, AF_INET6, "::ffff:192.0.2.1", "::1", 0, 65535 },
	{ "v2 LOCAL", B(SIG "\x20\x00\x00\x00"), 2, 1, 0, "", "", 0, 0 },
	{ "v2 LOCAL, any block", B(SIG "\x20\x31\x00\x07" "\xff\x00\x01xyz\n"),
	    2, 1, 0, "", "", 0, 0 },
	{ "v2 LOCAL, TCP4 block", B(SIG "\x20\x11\x00\x0c" "\xc0\x00\x02\x01"
	    "\xc6\x33\x64\x07" "\x30\x39" "\x00\x19"), 2, 1, 0, "", "", 0, 0 },
	{ "v2 PROXY UNSPEC", B(SIG "\x21\x00\x00\x00"), 2, 1, 0, "", "", 0, 0 },
	{ "v2 PROXY UNSPEC, TLV", B(SIG "\x21\x00\x00\x05" "\x04\x00\x02" "ab"),
	    2, 1, 0, "", "", 0, 0 },
	{ "v2 at the cap", v2_cap, sizeof(v2_cap),
	    2, 0, AF_INET, "192.0.2.1", "198.51.100.7", 12345, 25 },
};

static const struct bad bads[] = {
	{ B("GET / HTTP/1.0\r\n"), "not a PROXY header", "HTTP" },
	{ B("EHLO client.example\r\n"), "not a PROXY header", "SMTP" },
	{ B("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n"), "not a PROXY header",
	    "lower case" },
	{ B("PROXY\r\n"), "not a PROXY header", "no space" },
	{ B("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"), "not a PROXY header",
	    "v2 signature" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\n"),
	    "bare LF or NUL in v1 line", "bare LF" },
	{ B("PROXY UNKNOWN\0\r\n"), "bare LF or NUL in v1 line", "NUL" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\rX"),
	    "bare CR in v1 line", "bare CR" },
	{ B("PROXY UNKNOWN\r\r\n"), "bare CR in v1 line", "CR CR LF" },
	{ v1_long, sizeof(v1_long), "v1 line too long", "108 bytes" },
	{ v1_nocrlf, sizeof(v1_nocrlf), "v1 line too long", "no CRLF" },
	{ B("PROXY UNKNOWNX\r\n"), "unsupported v1 protocol", "UNKNOWNX" },
	{ B("PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n"),
	    "unsupported v1 protocol", "TCP5" },
	{ B("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n"),
	    "unsupported v1 protocol", "UDP4" },
	{ B("PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n"),
	    "unsupported v1 protocol", "tcp4" },
	{ B("PROXY  TCP4 192.0.2.1 198.51.100.7 1 2\r\n"),
	    "unsupported v1 protocol", "two spaces before TCP4" },
	{ B("PROXY TCP4\r\n"), "unsupported v1 protocol", "TCP4 alone" },
	{ B("PROXY TCP4 \r\n"), "bad v1 field spacing", "TCP4 and a space" },
	{ B("PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n"),
	    "bad v1 field spacing", "two spaces" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7  1 2\r\n"),
	    "bad v1 field spacing", "two spaces later" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n"),
	    "bad v1 field spacing", "trailing space" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n"),
	    "bad v1 field spacing", "five fields" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n"),
	    "bad v1 field spacing", "three fields" },
	{ B("PROXY TCP4 192.0.2.1\t198.51.100.7 1 2\r\n"),
	    "bad v1 field spacing", "tab" },
	{ B("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n"), "bad v1 address",
	    "TCP4 with IPv6" },
	{ B("PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n"), "bad v1 address",
	    "TCP6 with IPv4" },
	{ B("PROXY TCP4 192.0.2.1 256.0.0.1 1 2\r\n"), "bad v1 address",
	    "256" },
	{ B("PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n"), "bad v1 address",
	    "leading zero" },
	{ B("PROXY TCP4 192.0.2 198.51.100.7 1 2\r\n"), "bad v1 address",
	    "three parts" },
	{ B("PROXY TCP4 localhost 198.51.100.7 1 2\r\n"), "bad v1 address",
	    "a name" },
	{ B("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "bad v1 address",
	    "scope" },
	{ B("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), "bad v1 address",
	    "nine groups" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 65536 25\r\n"), "bad port",
	    "65536" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 12345 025\r\n"), "bad port",
	    "leading zero" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 00 25\r\n"), "bad port", "00" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 +25 25\r\n"), "bad port", "+" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 -1 25\r\n"), "bad port", "-1" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 1a 25\r\n"), "bad port", "1a" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 123456 25\r\n"), "bad port",
	    "six digits" },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.7 0x19 25\r\n"), "bad port",
	    "hex" },
	{ B(SIG "\x11\x11\x00\x0c"), "unsupported v2 version", "version 1" },
	{ B(SIG "\x31\x11\x00\x0c"), "unsupported v2 version", "version 3" },
	{ B(SIG "\x22\x11\x00\x0c"), "unsupported v2 command", "command 2" },
	{ B(SIG "\x2f\x11\x00\x0c"), "unsupported v2 command", "command 15" },
	{ B(SIG "\x21\x12\x00\x0c"), "wrong address family", "UDP4" },
	{ B(SIG "\x21\x22\x00\x24"), "wrong address family", "UDP6" },
	{ B(SIG "\x21\x31\x00\xd8"), "wrong address family", "UNIX stream" },
	{ B(SIG "\x21\x32\x00\xd8"), "wrong address family", "UNIX dgram" },
	{ B(SIG "\x21\x01\x00\x00"), "wrong address family", "UNSPEC stream" },
	{ B(SIG "\x21\x10\x00\x0c"), "wrong address family", "INET, no proto" },
	{ B(SIG "\x21\x41\x00\x0c"), "wrong address family", "family 4" },
	{ B(SIG "\x21\x11\x00\x0b"), "v2 address block too short", "TCP4 11" },
	{ B(SIG "\x21\x11\x00\x00"), "v2 address block too short", "TCP4 0" },
	{ B(SIG "\x21\x21\x00\x23"), "v2 address block too short", "TCP6 35" },
	{ B(SIG "\x21\x21\x00\x0c"), "v2 address block too short", "TCP6 12" },
	{ v2_over, 16, "v2 header too long", "1025" },
	{ B(SIG "\x21\x11\xff\xff"), "v2 header too long", "65535" },
	{ B(SIG "\x20\x00\xff\xff"), "v2 header too long", "LOCAL 65535" },
	{ B(SIG "\x21\x11\x00\x0e" "\xc0\x00\x02\x01" "\xc6\x33\x64\x07"
	    "\x30\x39" "\x00\x19" "\x04\x00"), "TLV overruns header",
	    "half a TLV head" },
	{ B(SIG "\x21\x11\x00\x10" "\xc0\x00\x02\x01" "\xc6\x33\x64\x07"
	    "\x30\x39" "\x00\x19" "\x04\x00\x02" "a"), "TLV overruns header",
	    "TLV one byte long" },
	{ B(SIG "\x21\x11\x00\x12" "\xc0\x00\x02\x01" "\xc6\x33\x64\x07"
	    "\x30\x39" "\x00\x19" "\x04\x00\x00" "\x04\xff\xff"),
	    "TLV overruns header", "second TLV 65535" },
	{ B(SIG "\x21\x00\x00\x02" "\x01\x00"), "TLV overruns header",
	    "UNSPEC, half a head" },
	{ B(SIG "\x21\x21\x00\x25" "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25" "\x9c\x40" "\x02\x4b"
	    "\x04"), "TLV overruns header", "TCP6, one byte after" },
};

#define NGOOD	(sizeof(goods) / sizeof(goods[0]))
#define NBAD	(sizeof(bads) / sizeof(bads[0]))

/* now_ms - the monotonic clock in milliseconds */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* setup - the headers built at run time */
static void
setup(void)
{
	static const unsigned char tcp4[] = "\x21\x11\x04\x00"
	    "\xc0\x00\x02\x01" "\xc6\x33\x64\x07" "\x30\x39" "\x00\x19"
	    "\x04\x03\xf1";		/* one NOOP TLV of 1009 bytes */

	memcpy(v1_long, "PROXY UNKNOWN ", 14);
	memset(v1_long + 14, 'x', sizeof(v1_long) - 16);
	memcpy(v1_long + sizeof(v1_long) - 2, "\r\n", 2);
	memcpy(v1_nocrlf, "PROXY UNKNOWN ", 14);
	memset(v1_nocrlf + 14, 'x', sizeof(v1_nocrlf) - 14);
	memcpy(v2_cap, SIG, 12);
	memcpy(v2_cap + 12, tcp4, sizeof(tcp4) - 1);
	memset(v2_cap + 12 + sizeof(tcp4) - 1, 'n',
	    sizeof(v2_cap) - 12 - (sizeof(tcp4) - 1));
	memcpy(v2_over, v2_cap, sizeof(v2_cap));
	v2_over[14] = 0x04;
	v2_over[15] = 0x01;
}

/* same - does h hold what g states? */
static int
same(const struct proxy_hdr *h, const struct good *g)
{
	return h->version == g->version && h->local == g->local &&
	    h->family == g->family && strcmp(h->src, g->src) == 0 &&
	    strcmp(h->dst, g->dst) == 0 && h->sport == g->sport &&
	    h->dport == g->dport;
}

/* fed - parse b[0..len) fed as proxy_read feeds it, each time exactly
 * the bytes asked for; the result, *used the bytes taken */
static int
fed(const unsigned char *b, size_t len, struct proxy_hdr *h, size_t *used,
    const char **why)
{
	size_t need;
	int n, i;

	*used = 0;
	for (i = 0; i < 2000; i++) {
		if ((n = proxy_parse(b, *used, h, &need, why)) != 0)
			return n;
		if (need == 0 || *used == len)
			return -2;	/* would wait for bytes never sent */
		*used += need < len - *used ? need : len - *used;
	}
	return -3;
}

/* test_parse_good - each good header, alone, with bytes after it, and
 * every prefix of it */
static void
test_parse_good(void)
{
	unsigned char buf[sizeof(v2_cap) + sizeof(TAIL)];
	struct proxy_hdr h;
	const char *why;
	size_t i, k, need, used;
	int n, ok;

	for (i = 0; i < NGOOD; i++) {
		const struct good *g = &goods[i];

		why = NULL;
		n = proxy_parse(g->b, g->len, &h, &need, &why);
		if (!tap_ok(n == (int)g->len && same(&h, g), "parse %s", g->name))
			tap_diag("got %d (%s) %s %s", n, why ? why : "-",
			    h.src, h.dst);
		memcpy(buf, g->b, g->len);
		memcpy(buf + g->len, TAIL, sizeof(TAIL) - 1);
		n = fed(buf, g->len + sizeof(TAIL) - 1, &h, &used, &why);
		tap_ok(n == (int)g->len && used == g->len && same(&h, g),
		    "%s fed as read, pipelined bytes after it: takes %zu",
		    g->name, used);
		for (ok = 1, k = 0; k < g->len; k++)
			if (proxy_parse(g->b, k, &h, &need, &why) != 0 ||
			    need == 0 || k + need > g->len)
				ok = 0;
		tap_ok(ok, "every prefix of %s asks for more, never past its end",
		    g->name);
	}
}

/* test_parse_bad - each bad header refused with its reason, also when
 * fed as proxy_read feeds it */
static void
test_parse_bad(void)
{
	struct proxy_hdr h;
	const char *why, *why2;
	size_t i, need, used;
	int n;

	for (i = 0; i < NBAD; i++) {
		const struct bad *b = &bads[i];

		why = why2 = NULL;
		n = proxy_parse(b->b, b->len, &h, &need, &why);
		if (!tap_is(n == -1 ? why : "(accepted)", b->why, "refused: %s",
		    b->name))
			tap_diag("returned %d, need %zu", n, need);
		n = fed(b->b, b->len, &h, &used, &why2);
		tap_ok(n == -1 && why2 != NULL && strcmp(why2, b->why) == 0 &&
		    used <= b->len, "refused when fed: %s (%zu bytes taken)",
		    b->name, used);
	}
}

/* write_all - all of b[0..n) to fd; 0 or -1 */
static int
write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	ssize_t r;

	while (n > 0) {
		if ((r = write(fd, p, n)) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* drained - wait (at most 5 s) until the peer has read all fd sent */
static void
drained(int fd)
{
	int i, q = 1;

	for (i = 0; i < 10000 && q != 0; i++)
		if (ioctl(fd, SIOCOUTQ, &q) < 0 || (q != 0 && usleep(500) < 0))
			return;
}

/* rest - what is left to read from fd up to EOF (5 s per wait) */
static size_t
rest(int fd, unsigned char *b, size_t cap)
{
	struct pollfd p = { fd, POLLIN, 0 };
	size_t have = 0;
	ssize_t r = 1;
	int i, n;

	for (i = 0; i < 1000 && have < cap && r != 0; i++) {
		if ((n = poll(&p, 1, 5000)) == 0 || (n < 0 && errno != EINTR))
			break;
		if ((r = n < 0 ? -1 : read(fd, b + have, cap - have)) < 0 &&
		    errno != EINTR)
			break;
		have += r > 0 ? (size_t)r : 0;
	}
	return have;
}

/* pair - a connected socket pair, or the test ends */
static void
pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		tap_fatal("socketpair");
}

/* split_child - write b[0..cut), wait until it is read, then the rest
 * and tail in one write; exits */
static void
split_child(int fd, const unsigned char *b, size_t len, size_t cut,
    const char *tail, int gap_ms)
{
	struct iovec iov[2] = { { (void *)(b + cut), len - cut },
	    { (void *)tail, strlen(tail) } };

	if (write_all(fd, b, cut) < 0)
		_exit(1);
	if (gap_ms > 0)
		usleep((useconds_t)gap_ms * 1000);
	else
		drained(fd);
	_exit(writev(fd, iov, 2) == (ssize_t)(len - cut + strlen(tail)) ?
	    0 : 1);
}

/* read_split - proxy_read of g written in two pieces cut bytes apart;
 * 1 when it gives g's fields and leaves exactly TAIL unread */
static int
read_split(const struct good *g, size_t cut, int gap_ms)
{
	unsigned char buf[64];
	struct proxy_hdr h;
	const char *why = "-";
	size_t got;
	int sv[2], rc, st;
	pid_t pid;

	pair(sv);
	fflush(stdout);	/* the child must not write it again */
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0) {
		close(sv[0]);
		split_child(sv[1], g->b, g->len, cut, TAIL, gap_ms);
	}
	close(sv[1]);
	rc = proxy_read(sv[0], 5000, &h, &why);
	got = rest(sv[0], buf, sizeof(buf));
	close(sv[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			tap_fatal("waitpid");
	if (rc == 0 && same(&h, g) && got == sizeof(TAIL) - 1 &&
	    memcmp(buf, TAIL, got) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 1;
	tap_diag("%s cut at %zu: %d %s, %zu bytes left", g->name, cut, rc,
	    rc ? why : "", got);
	return 0;
}

/* test_split - each good header split at every byte boundary */
static void
test_split(void)
{
	size_t i, cut, step, n;
	int ok;

	for (i = 0; i < NGOOD; i++) {
		step = goods[i].len > 128 ? 53 : 1;
		for (ok = 1, n = 0, cut = 1; cut < goods[i].len; cut += step, n++)
			ok &= read_split(&goods[i], cut, 0);
		tap_ok(ok, "proxy_read %s split at %zu boundaries: same fields,"
		    " pipelined bytes left unread", goods[i].name, n);
	}
}

/* bad_split - proxy_read of b written in two pieces cut bytes apart;
 * 1 when it is refused with b's reason */
static int
bad_split(const struct bad *b, size_t cut)
{
	struct proxy_hdr h;
	const char *why = "-";
	int sv[2], rc, st;
	pid_t pid;

	pair(sv);
	fflush(stdout);	/* the child must not write it again */
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0) {
		close(sv[0]);
		split_child(sv[1], b->b, b->len, cut, "", 0);
	}
	close(sv[1]);
	rc = proxy_read(sv[0], 5000, &h, &why);
	close(sv[0]);	/* a child still writing gets EPIPE */
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			tap_fatal("waitpid");
	if (rc == -1 && strcmp(why, b->why) == 0)
		return 1;
	tap_diag("%s cut at %zu: %d %s", b->name, cut, rc, rc ? why : "");
	return 0;
}

/* test_split_bad - each bad header split at every byte boundary: the
 * same refusal, whatever the piece it shows in */
static void
test_split_bad(void)
{
	size_t i, cut, step, n;
	int ok;

	for (i = 0; i < NBAD; i++) {
		step = bads[i].len > 128 ? 37 : 1;
		for (ok = 1, n = 0, cut = 1; cut < bads[i].len; cut += step, n++)
			ok &= bad_split(&bads[i], cut);
		tap_ok(ok, "proxy_read refuses %s split at %zu boundaries: \"%s\"",
		    bads[i].name, n, bads[i].why);
	}
}

/* test_pipelined - a header and a TLS ClientHello in one write: the
 * ClientHello is left in the socket, byte for byte */
static void
test_pipelined(void)
{
	unsigned char buf[sizeof(v2_cap) + sizeof(HELLO)];
	struct proxy_hdr h;
	const char *why = "-";
	size_t i, got;
	int sv[2], rc;

	for (i = 0; i < NGOOD; i++) {
		pair(sv);
		memcpy(buf, goods[i].b, goods[i].len);
		memcpy(buf + goods[i].len, HELLO, sizeof(HELLO) - 1);
		if (write_all(sv[1], buf, goods[i].len + sizeof(HELLO) - 1) < 0)
			tap_fatal("write");
		close(sv[1]);
		rc = proxy_read(sv[0], 5000, &h, &why);
		got = rest(sv[0], buf, sizeof(buf));
		close(sv[0]);
		tap_ok(rc == 0 && same(&h, &goods[i]) &&
		    got == sizeof(HELLO) - 1 && memcmp(buf, HELLO, got) == 0,
		    "%s then a ClientHello in one write: %zu bytes left",
		    goods[i].name, got);
	}
}

/* timed_read - proxy_read on fd with timeout ms; its result, why and
 * how long it took */
static int
timed_read(int fd, int ms, const char **why, long long *took)
{
	struct proxy_hdr h;
	long long t0 = now_ms();
	int rc;

	*why = "-";
	rc = proxy_read(fd, ms, &h, why);
	*took = now_ms() - t0;
	return rc;
}

/* test_timeout - half a header, then nothing; then a header that
 * trickles in slower than the timeout allows for all of it */
static void
test_timeout(void)
{
	const struct good *v1 = &goods[0], *v2 = &goods[7], *slow = &goods[3];
	const char *why;
	long long took;
	int sv[2], st;
	size_t i;
	pid_t pid;

	for (i = 0; i < 2; i++) {
		const struct good *g = i == 0 ? v1 : v2;

		pair(sv);
		if (write_all(sv[1], g->b, g->len / 2) < 0)
			tap_fatal("write");
		timed_read(sv[0], 300, &why, &took);
		tap_ok(strcmp(why, "timeout") == 0 && took >= 295 &&
		    took < 1500, "half of %s: \"%s\" after %lld ms (300 asked)",
		    g->name, why, took);
		close(sv[0]);
		close(sv[1]);
	}
	pair(sv);
	fflush(stdout);	/* the child must not write it again */
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	for (i = 0; pid == 0 && i < slow->len; i++)	/* 20 ms a byte */
		if (write_all(sv[1], slow->b + i, 1) < 0 || usleep(20000) < 0)
			_exit(1);
	if (pid == 0)
		_exit(0);
	timed_read(sv[0], 300, &why, &took);
	tap_ok(strcmp(why, "timeout") == 0 && took >= 295 && took < 1500,
	    "%s at a byte each 20 ms: \"%s\" after %lld ms (300 for all)",
	    slow->name, why, took);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(sv[0]);
	close(sv[1]);
}

static volatile sig_atomic_t alarms;

/* on_alarm - count the signal that interrupts proxy_read */
static void
on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* test_eintr - a signal each millisecond while the header comes in
 * two pieces 100 ms apart */
static void
test_eintr(void)
{
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } }, off;
	struct sigaction sa, old;
	int ok;

	memset(&sa, 0, sizeof(sa));
	memset(&off, 0, sizeof(off));
	sa.sa_handler = on_alarm;	/* no SA_RESTART */
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &it, NULL);
	ok = read_split(&goods[0], 20, 100) && read_split(&goods[9], 20, 100);
	setitimer(ITIMER_REAL, &off, NULL);
	sa.sa_handler = SIG_IGN;	/* drops one still pending (memcheck */
	sigaction(SIGALRM, &sa, NULL);	/* delivers late), then the default */
	sigaction(SIGALRM, &old, NULL);
	tap_ok(ok && alarms > 10, "header read across %d signals",
	    (int)alarms);
}

/* refused - write b[0..n) (then close when eof), proxy_read: the
 * reason, and how many bytes it took from the socket in *took */
static const char *
refused(const void *b, size_t n, int eof, size_t *took)
{
	struct proxy_hdr h;
	const char *why = "(accepted)";
	int sv[2], left = -1;

	pair(sv);
	if (write_all(sv[1], b, n) < 0)
		tap_fatal("write");
	if (eof)
		close(sv[1]);
	if (proxy_read(sv[0], 2000, &h, &why) == 0)
		why = "(accepted)";
	if (ioctl(sv[0], FIONREAD, &left) < 0)
		left = -1;
	*took = left < 0 ? (size_t)-1 : n - (size_t)left;
	close(sv[0]);
	if (!eof)
		close(sv[1]);
	return why;
}

/* test_refused - peers that close, stop, or send no header */
static void
test_refused(void)
{
	static const char v2_long[] = SIG "\x21\x11\xff\xff" TAIL TAIL;
	const char *why;
	size_t took;

	why = refused("", 0, 1, &took);
	tap_is(why, "closed before the header", "a peer that closes at once");
	why = refused(goods[0].b, 10, 1, &took);
	tap_is(why, "truncated header", "v1: 10 bytes, then closed");
	why = refused(goods[7].b, 20, 1, &took);
	tap_is(why, "truncated header", "v2: 20 bytes, then closed");
	why = refused(v1_nocrlf, sizeof(v1_nocrlf), 0, &took);
	tap_ok(strcmp(why, "v1 line too long") == 0 && took <= PROXY_V1_MAX,
	    "300 bytes without CRLF: \"%s\" after reading %zu", why, took);
	why = refused(TAIL, sizeof(TAIL) - 1, 0, &took);
	tap_ok(strcmp(why, "not a PROXY header") == 0 && took <= 15,
	    "SMTP, no header: \"%s\" after reading %zu", why, took);
	why = refused(v2_long, sizeof(v2_long) - 1, 0, &took);
	tap_ok(strcmp(why, "v2 header too long") == 0 && took == 16,
	    "v2 stating 65535 bytes: \"%s\" after reading %zu", why, took);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setup();
	test_parse_good();
	test_parse_bad();
	test_split();
	test_split_bad();
	test_pipelined();
	test_timeout();
	test_eintr();
	test_refused();
	return tap_done();
}
