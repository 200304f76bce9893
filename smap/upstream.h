/*
 * upstream.h - the client a load balancer names in a PROXY header
 * (smtpd_upstream_proxy_protocol = haproxy); see upstream.c.
 */
#ifndef SMAP_UPSTREAM_H
#define SMAP_UPSTREAM_H

#include "conf.h"
#include "peer.h"

#define PROXY_CHECK_MS	500	/* a proxy's own connection that closes
				 * within this is a health check */

/* With the protocol on: the client a header from a peer in
 * smtpd_upstream_proxy_networks names (LOCAL: the peer) becomes p's; 0,
 * or -1 after a log line (a refusal, a health check): close, no reply. */
int proxy_peer(struct peer *p, const struct conf *cf, int fd);

#endif
