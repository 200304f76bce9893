/*
 * upstream.c - smtpd_upstream_proxy_protocol: a PROXY header (common/
 * proxy.c) read before the greeting, from a peer in
 * smtpd_upstream_proxy_networks only, names the client of the session.
 *
 * Trusts the configuration; the peer only as far as the networks say,
 * and what it sends only once proxy_read has checked it. A refusal is a
 * log line and a close, never a reply: what came was not SMTP.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "proxy.h"
#include "upstream.h"

/* closed - did the peer close right after its header, within ms? *early:
 * bytes came with the header (not a pregreet) */
static int
closed(int fd, int ms, int *early)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t r;
	char c;

	if (poll(&p, 1, ms) != 1)
		return 0;
	r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	*early = r > 0;
	return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* proxy_peer - the client a trusted proxy names, when the protocol is on */
int
proxy_peer(struct peer *p, const struct conf *cf, int fd)
{
	struct proxy_hdr h;
	const char *why = NULL;
	char via[sizeof(p->addr)];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int own;

	if (cf->smtpd_upstream_proxy_protocol[0] == '\0')
		return 0;
	memcpy(via, p->addr, sizeof(via));
	if (p->family == 0 && getpeername(fd, (struct sockaddr *)&ss, &len) < 0 &&
	    errno == ENOTCONN)	/* reset, its address gone, before we looked */
		why = "closed before the header (reset)";
	else if (!net_match(&cf->smtpd_upstream_proxy_networks, p->family, p->bin))
		why = "not in smtpd_upstream_proxy_networks";
	else if (proxy_read(fd, (int)cf->smtpd_upstream_proxy_timeout * 1000,
	    &h, &why) == 0) {
		own = h.local || strcmp(h.src, via) == 0;	/* a health check? */
		if (closed(fd, own ? PROXY_CHECK_MS : 0, &p->early) && own)
			why = "closed after the header";
	}
	if (why != NULL && strncmp(why, "closed ", 7) == 0)
		log_info("health check from unknown[%s]: %s", via, why);
	else if (why != NULL)
		log_warn("PROXY header refused from unknown[%s]: %s", via, why);
	if (why != NULL)
		return -1;
	if (!h.local)
		(void)peer_set(p, h.src, h.sport, &cf->mynetworks);
	snprintf(p->via, sizeof(p->via), " proxy=[%s]", via);
	return 0;
}
