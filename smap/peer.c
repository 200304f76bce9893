/*
 * peer.c - the client's address: from the socket, else from the
 * environment of the super-server. An address that does not parse is
 * "unknown" and never trusted; no reverse DNS is ever done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "peer.h"

/* from_socket - the address of a connected IP socket, 0 on success */
static int
from_socket(struct peer *p, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, p->addr, sizeof(p->addr));
		p->port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, p->addr, sizeof(p->addr));
		p->port = ntohs(sin6->sin6_port);
	} else {
		return -1;
	}
	return 0;
}

/* from_env - the first address variable set by a super-server */
static int
from_env(struct peer *p)
{
	static const char *addrs[] = { "TCPREMOTEIP", "REMOTE_ADDR", "REMOTE_HOST" };
	static const char *ports[] = { "TCPREMOTEPORT", "REMOTE_PORT", "REMOTE_PORT" };
	const char *a, *port;
	size_t i;

	for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		a = getenv(addrs[i]);
		if (a == NULL || strlen(a) >= sizeof(p->addr))
			continue;
		snprintf(p->addr, sizeof(p->addr), "%s", a);
		port = getenv(ports[i]);
		p->port = port ? (unsigned)strtoul(port, NULL, 10) & 0xffff : 0;
		return 0;
	}
	return -1;
}

/* peer_set - the client is addr (text), port; canonical, judged */
int
peer_set(struct peer *p, const char *addr, unsigned port,
    const struct netlist *mynetworks)
{
	if (net_addr_parse(addr, &p->family, p->bin) < 0) {
		snprintf(p->addr, sizeof(p->addr), "unknown");
		p->family = 0;
		p->port = p->trusted = 0;
		return -1;
	}
	/* Canonical text, with ::ffff:a.b.c.d unmapped. */
	inet_ntop(p->family, p->bin, p->addr, sizeof(p->addr));
	p->port = port;
	p->trusted = net_match(mynetworks, p->family, p->bin);
	return 0;
}

/* peer_find - address, port, and whether mynetworks covers it */
void
peer_find(struct peer *p, int fd, const struct netlist *mynetworks)
{
	memset(p, 0, sizeof(*p));
	if (from_socket(p, fd) < 0 && from_env(p) < 0)
		p->addr[0] = '\0';
	(void)peer_set(p, p->addr, p->port, mynetworks);
}
