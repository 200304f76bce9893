/*
 * fixture.c - running a transport and checking verdicts, for the C tests.
 */
#include <string.h>
#include <stdio.h>

#include "fixture.h"
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
