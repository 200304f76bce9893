/*
 * proxy.h - the PROXY protocol header, v1 or v2, that a load balancer
 * sends ahead of the client (HAProxy's send-proxy, send-proxy-v2): its
 * parser and a reader that takes exactly one off a socket.
 */
#ifndef SMAP_PROXY_H
#define SMAP_PROXY_H

#include <stddef.h>
#include <netinet/in.h>

#define PROXY_V1_MAX	107	/* a v1 line, CRLF included */
#define PROXY_V2_MAX	1024	/* what a v2 header states after its 16 */

struct proxy_hdr {
	int version;		/* 1 or 2 */
	int local;		/* no client named (v1 UNKNOWN, v2 LOCAL or
				 * AF_UNSPEC): keep the connection's own */
	int family;		/* AF_INET or AF_INET6; else 0 */
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];	/* inet_ntop */
	unsigned sport, dport;
};

/* Parse any bytes: the length of the whole valid header buf starts
 * with (*h filled); 0 when more are needed, *need then how many can be
 * read without passing the end of any valid header; -1 with *why. */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    size_t *need, const char **why);
/* Read from fd exactly one header, under one timeout for all of it: 0,
 * or -1 with *why (a parse error, "timeout", "truncated header",
 * "closed before the header"). */
int proxy_read(int fd, int timeout_ms, struct proxy_hdr *h, const char **why);

#endif
