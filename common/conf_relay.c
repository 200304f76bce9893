/*
 * conf_relay.c - the relay policy's checks of the configuration: what
 * would make an open relay is refused when it is loaded (relay_check,
 * called by conf_read.c), what is legal but risky is said by
 * conf_warnings() (for -t and smapd's start).
 *
 * A mynetworks entry is measured by net_breadth(): wide enough to let
 * a good part of the internet relay is an error (IPv4 shorter than /8,
 * IPv6 shorter than /16) unless allow_open_relay = yes; wider than a /16
 * (IPv6 /48) of public addresses is a warning. Loopback, RFC 1918,
 * unique-local and link-local networks are never wide. A ".tld" in
 * relay_domains is every domain under a top-level domain: an error in
 * the same way; a single label is a warning. So are a
 * message_size_limit above 100 MB and an smtpd_timeout above 600s.
 * (Public suffixes such as ".co.uk" need the public suffix list:
 * suffix.c, at -t only.)
 *
 * TRUST: the values, parsed and in range (conf_types.c); no I/O.
 */
#include <sys/socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "net.h"
#include "relay.h"

#define OPEN4 8			/* mynetworks: shorter is an open relay */
#define OPEN6 16
#define WIDE4 16		/* shorter draws a warning */
#define WIDE6 48
#define WARN_SIZE (100LL * 1024 * 1024)	/* message_size_limit */
#define WARN_TIMEOUT 600	/* smtpd_timeout, seconds */

enum { NET_OK, NET_WIDE, NET_OPEN };

/* net_breadth - how much of the internet a mynetworks entry lets
 * relay: NET_OPEN (IPv4 shorter than /OPEN4, IPv6 shorter than /OPEN6),
 * NET_WIDE (shorter than /WIDE4, /WIDE6) or NET_OK. Loopback, RFC 1918,
 * unique-local and link-local networks are never wide. */
static int
net_breadth(const struct net *n)
{
	static const struct net local[] = {
		{ AF_INET, { 127 }, 8 },
		{ AF_INET, { 10 }, 8 },
		{ AF_INET, { 172, 16 }, 12 },
		{ AF_INET, { 192, 168 }, 16 },
		{ AF_INET6, { 0xfc }, 7 },
		{ AF_INET6, { 0xfe, 0x80 }, 10 },
	};
	struct net one;
	struct netlist l = { &one, 1 };
	size_t i;
	int v6 = n->family == AF_INET6;

	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		one = local[i];
		if (n->prefix >= one.prefix &&
		    net_match(&l, n->family, n->addr))
			return NET_OK;
	}
	if (n->prefix < (v6 ? OPEN6 : OPEN4))
		return NET_OPEN;
	return n->prefix < (v6 ? WIDE6 : WIDE4) ? NET_WIDE : NET_OK;
}


/* relay_check - settings that make an open relay not acknowledged by
 * allow_open_relay (a value that does not parse says nothing) */
int
relay_check(const struct conf *c, relay_say_fn *say, void *arg)
{
	const struct netlist *l = &c->mynetworks;
	char net[80], msg[512];
	size_t i;
	int n = 0;

	if (c->allow_open_relay)
		return 0;
	for (i = 0; i < l->n; i++) {
		if (net_breadth(&l->v[i]) != NET_OPEN)
			continue;
		net_format(&l->v[i], net, sizeof(net));
		snprintf(msg, sizeof(msg), "mynetworks: %s would make this "
		    "host an open relay (IPv4 networks must be /%d or longer, "
		    "IPv6 /%d or longer); set allow_open_relay = yes if you "
		    "mean it", net, OPEN4, OPEN6);
		say(arg, "mynetworks", msg);
		n++;
	}
	for (i = 0; i < c->relay_domains.n; i++) {	/* ".com" */
		if (c->relay_domains.v[i][0] != '.' ||
		    strchr(c->relay_domains.v[i] + 1, '.') != NULL)
			continue;
		snprintf(msg, sizeof(msg), "relay_domains: \"%s\" is every "
		    "domain under a top-level domain: this host would relay "
		    "for anyone to all of them; set allow_open_relay = yes if "
		    "you mean it", c->relay_domains.v[i]);
		say(arg, "relay_domains", msg);
		n++;
	}
	return n;
}

/* Where conf_warnings() writes: whole lines into buf, len bytes. */
struct warnings {
	char *buf;			/* NULL: count only */
	size_t len, used;		/* used = len once a line did not fit */
	const char *path;
	int n;				/* warnings, written or not */
};

/* warn - append "path:line: warning: ..." when the whole line fits */
static void __attribute__((format(printf, 3, 4)))
warn(struct warnings *w, int line, const char *fmt, ...)
{
	char msg[512], ln[16] = "";
	va_list ap;
	int n;

	w->n++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ln, sizeof(ln), ":%d", line);
	if (w->buf == NULL || w->used >= w->len)
		return;
	n = snprintf(w->buf + w->used, w->len - w->used, "%s%s: warning: %s\n",
	    w->path, ln, msg);
	if (n < 0 || (size_t)n >= w->len - w->used) {
		w->buf[w->used] = '\0';
		w->used = w->len;
	} else
		w->used += (size_t)n;
}

/* warn_networks - mynetworks entries that let much of the internet
 * relay */
static void
warn_networks(struct warnings *w, const struct conf *c)
{
	const struct netlist *l = &c->mynetworks;
	char net[80];
	size_t i;
	int b, ln = conf_line(c, "mynetworks");

	for (i = 0; i < l->n; i++) {
		if ((b = net_breadth(&l->v[i])) == NET_OK)
			continue;
		net_format(&l->v[i], net, sizeof(net));
		if (b == NET_OPEN)
			warn(w, ln, "mynetworks: %s makes this host an open "
			    "relay (allow_open_relay = yes)", net);
		else
			warn(w, ln, "mynetworks: %s is wider than a /%d of "
			    "public addresses: every host in it may relay", net,
			    l->v[i].family == AF_INET6 ? WIDE6 : WIDE4);
	}
}

/* warn_domains - relay_domains entries of a single label */
static void
warn_domains(struct warnings *w, const struct conf *c)
{
	const char *d;
	size_t i;
	int ln = conf_line(c, "relay_domains");

	for (i = 0; i < c->relay_domains.n; i++) {
		d = c->relay_domains.v[i];
		if (strchr(d + 1, '.') != NULL)
			continue;
		if (d[0] == '.')
			warn(w, ln, "relay_domains: \"%s\" accepts mail from "
			    "anyone for every domain under the top-level "
			    "domain \"%s\"", d, d + 1);
		else
			warn(w, ln, "relay_domains: \"%s\" is a single label "
			    "(a top-level domain?), not a mail domain", d);
	}
}

/* conf_warnings - risky but legal settings, one line each; see conf.h */
int
conf_warnings(const struct conf *c, const char *path, char *buf, size_t len)
{
	struct warnings w = { buf, len, 0, path, 0 };

	if (buf != NULL && len > 0)
		buf[0] = '\0';
	warn_networks(&w, c);
	warn_domains(&w, c);
	if (c->message_size_limit > WARN_SIZE)
		warn(&w, conf_line(c, "message_size_limit"),
		    "message_size_limit: %lld is above 100 MB (%lld): the "
		    "spool and the backend must hold messages that large",
		    c->message_size_limit, WARN_SIZE);
	if (c->smtpd_timeout > WARN_TIMEOUT)
		warn(&w, conf_line(c, "smtpd_timeout"), "smtpd_timeout: %llds "
		    "is above %ds: an idle client holds a session (and a "
		    "connection slot) that long", c->smtpd_timeout,
		    WARN_TIMEOUT);
	return w.n;
}
