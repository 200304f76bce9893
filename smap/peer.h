/*
 * peer.h - who is on the other end of fd 0, and may it relay?
 */
#ifndef SMAP_PEER_H
#define SMAP_PEER_H

#include "net.h"

struct peer {
	char addr[64];		/* numeric, or "unknown" */
	unsigned port;
	int family;		/* 0 when unknown */
	unsigned char bin[16];
	int trusted;		/* in mynetworks */
	int early;		/* bytes came with the PROXY header */
	char via[80];		/* "" or " proxy=[address]" for the logs */
};

/* getpeername(fd) first (IPv4-mapped IPv6 unmapped); else the
 * TCPREMOTEIP/REMOTE_ADDR/REMOTE_HOST and TCPREMOTEPORT/REMOTE_PORT
 * variables set by tcpserver, systemd and xinetd. No DNS. */
void peer_find(struct peer *p, int fd, const struct netlist *mynetworks);
/* The client is addr, port (a PROXY header's): 0, or -1 ("unknown"). */
int peer_set(struct peer *p, const char *addr, unsigned port,
    const struct netlist *mynetworks);

#endif
