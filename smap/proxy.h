/*
 * proxy.h - the PROXY protocol header, v1 or v2, that a load balancer
 * sends ahead of the client (smtpd_upstream_proxy_protocol = haproxy).
 */
#ifndef SMAP_PROXY_H
#define SMAP_PROXY_H

#include <stddef.h>
#include <netinet/in.h>
#include "conf.h"
#include "peer.h"

#define PROXY_V1_MAX	107	/* a v1 line, CRLF included */
#define PROXY_V2_MAX	1024	/* what a v2 header states after its 16 */
#define PROXY_CHECK_MS	50	/* a proxy's own connection closes within */

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
/* With the protocol on: the client a header from a peer in
 * smtpd_upstream_proxy_networks names (LOCAL: the peer) becomes p's; 0,
 * or -1 after a log line (a refusal, a health check): close, no reply. */
int proxy_peer(struct peer *p, const struct conf *cf, int fd);

#endif
