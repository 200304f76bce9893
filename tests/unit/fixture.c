/*
 * fixture.c - running a transport and checking verdicts, for the C tests.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "layout.h"
#include "tap.h"

void
fx_deliver(const char *spec, const struct conf *cf, const struct envelope *env,
    int fd, const size_t *idx, size_t n, struct rcpt_result *res, char *relay,
    size_t len)
{
	struct transport t;
	struct delivery d;
	char why[256];

	if (transport_parse(spec, &t, why, sizeof(why)) < 0)
		tap_fatal("transport_parse");
	memset(&d, 0, sizeof(d));
	memset(res, 0x55, n * sizeof(*res));	/* not R_PENDING */
	d.env = env;
	d.fd = fd;
	d.idx = idx;
	d.n = n;
	d.res = res;
	if (t.kind == T_SENDMAIL)
		deliver_sendmail(&t, cf, &d);
	else if (t.kind == T_MAILDIR)
		deliver_maildir(&t, cf, &d);
	else
		deliver_smtp(&t, cf, &d);
	snprintf(relay, len, "%s", d.relay);
}

int
fx_check(const struct rcpt_result *r, enum rstatus st, const char *dsn,
    const char *text, const char *name)
{
	int ok = r->status == st && strcmp(r->dsn, dsn) == 0 &&
	    (text == NULL || strcmp(r->text, text) == 0);

	tap_ok(ok, "%s: status %d dsn %s%s%s", name, (int)st, dsn,
	    text ? " text " : "", text ? text : "");
	if (!ok)
		tap_diag("got status %d dsn '%s' text '%s'", (int)r->status,
		    r->dsn, r->text);
	return ok;
}

int
fx_spool_file(const char *sender, const char *body, size_t len,
    struct envelope *env)
{
	static char *rcpt[] = { "<c@d.example>", "<e@f.example>",
	    "<postmaster>" };
	struct envelope e;
	char id[SPOOL_ID_MAX + 1] = "", path[64], why[256];
	int fd;

	memset(&e, 0, sizeof(e));
	if ((fd = layout_create(id, sizeof(id))) < 0)
		tap_fatal("spool_create");
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.arrival = time(NULL);
	snprintf(e.client, sizeof(e.client), "192.0.2.1");
	e.port = 4711;
	snprintf(e.helo, sizeof(e.helo), "client.example");
	snprintf(e.proto, sizeof(e.proto), "ESMTP");
	snprintf(e.sender, sizeof(e.sender), "%s", sender);
	e.rcpt = rcpt;
	e.nrcpt = 3;
	e.size = (long long)len;
	if (spool_write_envelope(fd, &e) < 0 || spool_write(fd, body, len) < 0 ||
	    spool_write_final(fd, &e) < 0 || layout_commit(fd, id) < 0)
		tap_fatal("spool write");
	snprintf(path, sizeof(path), "%s/%s", LAYOUT_NEW, id);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		tap_fatal("open spool file");
	if (spool_read_envelope(fd, env, 100, why, sizeof(why)) < 0) {
		tap_diag("spool_read_envelope: %s", why);
		tap_fatal("spool_read_envelope");
	}
	return fd;
}
