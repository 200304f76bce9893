/*
 * t_route.c - unit tests for smapd/route.c: transport_maps' lookup
 * order as transport(5) gives it (full address, address without its
 * extension, domain, ".parent" domains from the closest, default
 * transport last), the values smapd reads (empty next hop or transport
 * taken from default_transport, sendmail:, relay:, maildir:, lmtp:unix:)
 * and the ones it refuses (named with their line), smtp_fallback_relay.
 *
 * Works on a texthash file in a fresh mkdtemp(3) directory, removed at
 * the end; no network, nothing resolved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../smapd/route.h"
#include "tap.h"

static char work[] = "/tmp/t_route.XXXXXX";
static char tpath[256], tspec[300];
static int made;

static const char table[] =
    "# transport(5) lines\n"
    "user+ext@example.com smtp:[192.0.2.1]:25\n"
    "user@example.com smtp:[192.0.2.2]:25\n"
    "example.com smtp:[192.0.2.3]:25\n"
    ".example.com smtp:[192.0.2.4]\n"
    ".lab.example.com lmtp:[192.0.2.5]:24\n"
    "empty.test smtp:\n"
    "colon.test :[192.0.2.6]\n"
    "pipe.test sendmail:\n"
    "relay.test relay:mx.relay.test:2525\n"
    "md.test maildir:/var/mail/md/\n"
    "sock.test lmtp:unix:/run/lmtp\n"
    "bad.test error:5.1.1\n"
    "badhop.test smtp:[192.0.2.1\n";

/* cleanup - remove the work directory */
static void
cleanup(void)
{
	if (made)
		tap_rmtree(work);
	made = 0;
}

/* setup - the work directory and the table in it */
static void
setup(void)
{
	FILE *f;

	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	made = 1;
	tap_on_fatal(cleanup);
	snprintf(tpath, sizeof(tpath), "%s/transport", work);
	snprintf(tspec, sizeof(tspec), "texthash:%s", tpath);
	if ((f = fopen(tpath, "w")) == NULL || fputs(table, f) == EOF ||
	    fclose(f) == EOF)
		tap_fatal("write the table");
}

/* conf_for - the keys routes_open reads */
static struct conf
conf_for(const char *def, const char *maps, const char *fallback)
{
	struct conf cf;

	memset(&cf, 0, sizeof(cf));
	cf.default_transport = (char *)def;
	cf.transport_maps = (char *)maps;
	cf.smtp_fallback_relay = (char *)fallback;
	cf.recipient_delimiter = (char *)"+";
	return cf;
}

/* is_route - rcpt's next hop, by name ("!" when route_of fails) */
static void
is_route(const struct routes *r, const char *rcpt, const char *want,
    const char *what)
{
	struct transport t;
	char name[ROUTE_NAME_MAX], why[1024];

	if (route_of(r, rcpt, &t, why, sizeof(why)) < 0)
		snprintf(name, sizeof(name), "!");
	else
		route_name(&t, name, sizeof(name));
	tap_is(name, want, "%s: %s", rcpt, what);
}

/* test_order - which entry wins */
static void
test_order(const struct routes *r)
{
	is_route(r, "<user+ext@example.com>", "smtp:[192.0.2.1]:25",
	    "the full address first");
	is_route(r, "<user+other@example.com>", "smtp:[192.0.2.2]:25",
	    "then the address without its extension");
	is_route(r, "<other@example.com>", "smtp:[192.0.2.3]:25",
	    "then the domain");
	is_route(r, "<OTHER@Example.COM>", "smtp:[192.0.2.3]:25",
	    "the domain in any case");
	is_route(r, "<x@sub.example.com>", "smtp:[192.0.2.4]:25",
	    "a subdomain: the .parent entry");
	is_route(r, "<x@a.lab.example.com>", "lmtp:[192.0.2.5]:24",
	    "the closest parent first");
	is_route(r, "<x@lab.example.com>", "smtp:[192.0.2.4]:25",
	    ".lab.example.com is for its subdomains only");
	is_route(r, "<x@unlisted.test>", "smtp:[192.0.2.9]:2525",
	    "nothing matches: default_transport");
	is_route(r, "<postmaster>", "smtp:[192.0.2.9]:2525",
	    "no domain: default_transport");
	is_route(r, "<x@[192.0.2.3]>", "smtp:[192.0.2.9]:2525",
	    "an address literal: no parents, default_transport");
}

/* test_values - what each value means */
static void
test_values(const struct routes *r)
{
	struct transport t;
	char why[1024];

	is_route(r, "<x@empty.test>", "smtp:[192.0.2.9]:2525",
	    "smtp: with no next hop: default_transport's");
	is_route(r, "<x@colon.test>", "smtp:[192.0.2.6]:25",
	    "no transport: default_transport's, with this next hop");
	is_route(r, "<x@pipe.test>", "sendmail:", "sendmail:");
	is_route(r, "<x@relay.test>", "smtp:mx.relay.test:2525",
	    "relay: is smtp");
	is_route(r, "<x@md.test>", "maildir:/var/mail/md/", "maildir:");
	is_route(r, "<x@sock.test>", "lmtp:unix:/run/lmtp", "lmtp:unix:");
	is_route(r, "<x@bad.test>", "!", "error: is not smapd's: deferred");
	is_route(r, "<x@badhop.test>", "!", "a broken next hop: deferred");
	tap_ok(route_of(r, "<x@bad.test>", &t, why, sizeof(why)) < 0 &&
	    strstr(why, "the entry for x@bad.test does not parse") != NULL,
	    "the reason names the recipient: %s", why);
	tap_ok(r->bad == 2, "routes_open counted 2 bad entries (%zu)", r->bad);
	tap_ok(r->sendmail, "a sendmail: entry is seen at open");
}

/* Lines route_check said. */
static char said[2][512];
static size_t nsaid;

/* say - collect route_check's lines */
static void
say(void *ctx, const char *line)
{
	(void)ctx;
	if (nsaid < 2)
		snprintf(said[nsaid], sizeof(said[0]), "%s", line);
	nsaid++;
}

/* test_check - the bad lines, with their file and line */
static void
test_check(const struct routes *r)
{
	char want[2][512];

	tap_ok(route_check(r, say, NULL) == 2 && nsaid == 2,
	    "route_check: two bad entries (%zu said)", nsaid);
	snprintf(want[0], sizeof(want[0]), "%s:13: bad.test: \"error\" is not a "
	    "transport smapd has (smtp, lmtp, sendmail, maildir)", tpath);
	snprintf(want[1], sizeof(want[1]), "%s:14: badhop.test: \"smtp:[192.0.2.1\" "
	    "is not smtp:host[:port], smtp:[address][:port], lmtp:..., "
	    "lmtp:unix:/path, sendmail or maildir:/path/", tpath);
	/* map_walk gives texthash: entries by key: bad.test, badhop.test */
	tap_is(said[0], want[0], "route_check: file:line: key: reason");
	tap_is(said[1], want[1], "route_check: the second one");
}

/* test_default_kind - an empty next hop needs default_transport's kind */
static void
test_default_kind(void)
{
	struct conf cf = conf_for("maildir:/var/mail/smap/", tspec, "");
	struct routes r;
	const char *key;
	char why[1024];

	tap_ok(routes_open(&r, &cf, &key, why, sizeof(why)) == 0,
	    "maildir default_transport: open");
	is_route(&r, "<x@empty.test>", "!", "smtp: with a maildir default: "
	    "deferred (no MX lookups)");
	is_route(&r, "<x@colon.test>", "!", ":[host] with a maildir default");
	tap_ok(r.bad == 4, "maildir default_transport: 4 bad entries (%zu)",
	    r.bad);
	routes_close(&r);
}

/* test_fallback - smtp_fallback_relay */
static void
test_fallback(void)
{
	struct conf cf = conf_for("smtp:[192.0.2.9]", "",
	    "[10.0.0.1]:2525, backup.example lmtp:[::1]:24");
	struct routes r;
	const char *key;
	char why[1024], name[ROUTE_NAME_MAX];

	tap_ok(routes_open(&r, &cf, &key, why, sizeof(why)) == 0 &&
	    r.nfallback == 3, "smtp_fallback_relay: three next hops");
	tap_is(route_name(&r.fallback[0], name, sizeof(name)),
	    "smtp:[10.0.0.1]:2525", "fallback 1: [address]:port");
	tap_is(route_name(&r.fallback[1], name, sizeof(name)),
	    "smtp:backup.example:25", "fallback 2: a name, port 25");
	tap_is(route_name(&r.fallback[2], name, sizeof(name)),
	    "lmtp:[::1]:24", "fallback 3: an lmtp: value");
	is_route(&r, "<x@example.com>", "smtp:[192.0.2.9]:25",
	    "no transport_maps: default_transport");
	routes_close(&r);
	cf.smtp_fallback_relay = (char *)"a b c d e f g h i";
	tap_ok(routes_open(&r, &cf, &key, why, sizeof(why)) < 0 &&
	    strcmp(key, "smtp_fallback_relay") == 0, "nine fallbacks: refused "
	    "(%s)", why);
	cf.smtp_fallback_relay = (char *)"[10.0.0.1";
	tap_ok(routes_open(&r, &cf, &key, why, sizeof(why)) < 0,
	    "a broken fallback: refused (%s)", why);
	cf.smtp_fallback_relay = (char *)"";
	cf.transport_maps = (char *)"cdb:/nonexistent/transport";
	tap_ok(routes_open(&r, &cf, &key, why, sizeof(why)) < 0 &&
	    strcmp(key, "transport_maps") == 0 && strstr(why, "no such file"),
	    "a missing table: refused (%s)", why);
}

int
main(void)
{
	struct conf cf;
	struct routes r;
	const char *key;
	char why[1024];

	setup();
	cf = conf_for("smtp:[192.0.2.9]:2525", tspec, "");
	if (routes_open(&r, &cf, &key, why, sizeof(why)) < 0) {
		tap_diag("%s: %s", key, why);
		tap_fatal("routes_open");
	}
	test_order(&r);
	test_values(&r);
	test_check(&r);
	routes_close(&r);
	test_default_kind();
	test_fallback();
	cleanup();
	return tap_done();
}
