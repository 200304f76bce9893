/*
 * proxy.c - the PROXY protocol header (HAProxy's v1 or v2) that a load
 * balancer sends ahead of its client: parsed, and read off a socket
 * exactly, under one timeout. Who may send one, and what the session
 * makes of it, is smap/upstream.c's.
 *
 * Trusts nothing in it: a v1 line has at most PROXY_V1_MAX bytes and
 * strict fields; a v2 header at most PROXY_V2_MAX after its 16, each
 * address block and TLV checked against its end. The parsers return
 * the length a valid header has at least, so proxy_read never reads
 * past the header: what follows (pipelined SMTP, a TLS ClientHello)
 * stays in the socket, for the session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "proxy.h"

#define V1_MIN	15	/* "PROXY UNKNOWN\r\n" */
#define V2_HEAD	16	/* signature, version and command, family, size */
#define V2_SIG	"\r\n\r\n\0\r\nQUIT\n"
#define BE16(p)	((unsigned)(p)[0] << 8 | (p)[1])
#define fail(why, reason) (*(why) = (reason), -1)

/* v1_end - one end: address a of family af, port p; NULL or the fault */
static const char *
v1_end(int af, const char *a, const char *p, char *text, unsigned *port)
{
	unsigned char bin[16];
	size_t n = strlen(p);

	if (inet_pton(af, a, bin) != 1)
		return "bad v1 address";
	if (n == 0 || n > 5 || strspn(p, "0123456789") != n ||
	    (p[0] == '0' && n > 1) ||
	    (*port = (unsigned)strtoul(p, NULL, 10)) > 65535)
		return "bad port";
	(void)inet_ntop(af, bin, text, INET6_ADDRSTRLEN);
	return NULL;
}

/* v1 - a v1 header in b[0..len), which starts like "PROXY " */
static int
v1(const unsigned char *b, size_t len, struct proxy_hdr *h, const char **why)
{
	char line[PROXY_V1_MAX] = "", *s = line, *f[4];
	size_t i;
	int k;

	for (i = 6; i < len && i < PROXY_V1_MAX - 1 && b[i] != '\r'; i++)
		if (b[i] == '\n' || b[i] == '\0')
			return fail(why, "bare LF or NUL in v1 line");
	if (i == PROXY_V1_MAX - 1)
		return fail(why, "v1 line too long");
	if (i + 1 >= len)	/* its CR not seen yet, or the LF after it */
		return len < V1_MIN ? V1_MIN : (int)len + 1;
	if (b[i + 1] != '\n')
		return fail(why, "bare CR in v1 line");
	memcpy(line, b + 6, i - 6);	/* NUL-terminated: i - 6 < 100 */
	h->version = 1;
	if ((h->local = strncmp(s, "UNKNOWN", 7) == 0 &&
	    (s[7] == '\0' || s[7] == ' ')))
		return (int)i + 2;	/* the rest of the line is ignored */
	h->family = strncmp(s, "TCP4 ", 5) == 0 ? AF_INET :
	    strncmp(s, "TCP6 ", 5) == 0 ? AF_INET6 : 0;
	if (h->family == 0)
		return fail(why, "unsupported v1 protocol");
	for (s += 5, k = 0; k < 4; k++)	/* one space between fields */
		if ((f[k] = strsep(&s, " ")) == NULL || *f[k] == '\0')
			break;
	if (k < 4 || s != NULL)
		return fail(why, "bad v1 field spacing");
	if ((*why = v1_end(h->family, f[0], f[2], h->src, &h->sport)) ||
	    (*why = v1_end(h->family, f[1], f[3], h->dst, &h->dport)))
		return -1;
	return (int)i + 2;
}

/* v2 - a v2 header in b[0..len), which starts like its signature */
static int
v2(const unsigned char *b, size_t len, struct proxy_hdr *h, const char **why)
{
	size_t n, blk, off;

	if (len < V2_HEAD)
		return V2_HEAD;
	if (b[12] >> 4 != 2)
		return fail(why, "unsupported v2 version");
	if ((b[12] & 0xf) > 1)
		return fail(why, "unsupported v2 command");
	if ((n = V2_HEAD + BE16(b + 14)) > V2_HEAD + PROXY_V2_MAX)
		return fail(why, "v2 header too long");
	h->version = 2;
	h->local = (b[12] & 0xf) == 0 || b[13] == 0x00;	/* LOCAL, UNSPEC */
	if (!h->local && b[13] != 0x11 && b[13] != 0x21)	/* TCP4, TCP6 */
		return fail(why, "wrong address family");
	blk = h->local ? 0 : b[13] == 0x11 ? 12 : 36;
	if (n < V2_HEAD + blk)
		return fail(why, "v2 address block too short");
	if (len < n || (b[12] & 0xf) == 0)	/* LOCAL: the rest unread */
		return (int)n;
	for (off = V2_HEAD + blk; off < n; off += 3 + BE16(b + off + 1))
		if (n - off < 3 || BE16(b + off + 1) > n - off - 3)
			return fail(why, "TLV overruns header");	/* each TLV */
	if (blk > 0) {
		h->family = blk == 12 ? AF_INET : AF_INET6;
		(void)inet_ntop(h->family, b + 16, h->src, sizeof(h->src));
		(void)inet_ntop(h->family, b + 16 + (blk - 4) / 2, h->dst,
		    sizeof(h->dst));
		h->sport = BE16(b + 12 + blk);
		h->dport = BE16(b + 14 + blk);
	}
	return (int)n;
}

/* proxy_parse - one header at the start of buf[0..len) */
int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    size_t *need, const char **why)
{
	int n;

	memset(h, 0, sizeof(*h));
	n = memcmp(buf, "PROXY ", len < 6 ? len : 6) == 0 ?
	    v1(buf, len, h, why) : memcmp(buf, V2_SIG, len < 12 ? len : 12) == 0 ?
	    v2(buf, len, h, why) : fail(why, "not a PROXY header");
	*need = n > 0 && (size_t)n > len ? (size_t)n - len : 0;
	return *need > 0 ? 0 : n;
}

/* proxy_read - read exactly one header from fd before the deadline */
int
proxy_read(int fd, int timeout_ms, struct proxy_hdr *h, const char **why)
{
	unsigned char buf[V2_HEAD + PROXY_V2_MAX] = { 0 };	/* need fits */
	struct pollfd p = { fd, POLLIN, 0 };
	long long end = now_ms() + timeout_ms, left;
	size_t have = 0, need;
	ssize_t r;
	int n;

	while ((n = proxy_parse(buf, have, h, &need, why)) == 0) {
		if ((left = end - now_ms()) <= 0)
			return fail(why, "timeout");
		if ((n = poll(&p, 1, (int)left)) == 0)
			continue;
		r = n < 0 ? -1 : read(fd, buf + have, need);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			return fail(why, have > 0 ? "truncated header" :
			    "closed before the header");
		have += r > 0 ? (size_t)r : 0;
	}
	return n < 0 ? -1 : 0;
}

