/*
 * hop.c - per next hop delivery (see hop.h).
 *
 * Postfix's way: recipients are grouped by the next hop their route
 * names; each group is one delivery on its own connection. A next hop
 * that nobody answered at (4.4.1) is down for the rest of the run: its
 * recipients are deferred with the same reason and no new attempt. A
 * group whose SMTP or LMTP next hop failed as a whole (not reached, or
 * a 4xx or a lost connection before any RCPT) goes to the next hop of
 * smtp_fallback_relay, in order; nothing a next hop accepted or refused
 * for good is ever tried elsewhere.
 *
 * Trusts the envelope (checked by spool_read_envelope) and routes.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "hop.h"
#include "log.h"

/* hop_group - idx[0]'s next hop and every recipient that shares it */
size_t
hop_group(const struct routes *r, const struct envelope *e, size_t *idx,
    size_t n, struct transport *t, char *why, size_t len)
{
	static struct transport other;
	char ignored[16];
	size_t i, k = 1, x;

	why[0] = '\0';
	if (route_of(r, e->rcpt[idx[0]], t, why, len) < 0)
		return 1;
	for (i = 1; i < n; i++) {
		if (route_of(r, e->rcpt[idx[i]], &other, ignored,
		    sizeof(ignored)) < 0 || !route_same(&other, t))
			continue;
		x = idx[i];
		memmove(idx + k + 1, idx + k, (i - k) * sizeof(*idx));
		idx[k++] = x;
	}
	return k;
}

/* down_of - t's entry in the run's list of next hops that are down */
static const struct down *
down_of(const struct qctx *q, const struct transport *t)
{
	size_t i;

	for (i = 0; i < q->ndown; i++)
		if (route_same(&q->down[i].t, t))
			return &q->down[i];
	return NULL;
}

/* try_hop - one next hop, unless it is down; marks it down when nobody
 * answered there */
static void
try_hop(struct qctx *q, const struct transport *t, struct delivery *d)
{
	const struct agent *a = agent_for(t);
	const struct down *dn = down_of(q, t);

	d->ident = a->ident;	/* what the transport logs is its own */
	d->hopfail = 0;
	if (dn != NULL) {	/* as Postfix does behind a dead destination */
		snprintf(d->relay, sizeof(d->relay), "none");
		deliver_all(d, R_DEFER, "4.4.1", "%s", dn->text);
		d->hopfail = 1;
		return;
	}
	a->deliver(t, q->cf, d);
	if (d->n > 0 && d->res[0].status == R_DEFER && q->ndown < DOWN_MAX &&
	    strncmp(d->res[0].dsn, "4.4.1", 5) == 0) {
		q->down[q->ndown].t = *t;
		snprintf(q->down[q->ndown++].text, sizeof(q->down[0].text), "%s",
		    d->res[0].text);
	}
}

/* all_deferred - did the next hop defer every recipient (none taken)? */
static int
all_deferred(const struct delivery *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->res[i].status != R_DEFER)
			return 0;
	return 1;
}

/* hop_deliver - t, then the fallback relays while each fails whole */
void
hop_deliver(struct qctx *q, const struct transport *t, struct delivery *d)
{
	const struct routes *r = &q->routes;
	char from[ROUTE_NAME_MAX], to[ROUTE_NAME_MAX];
	size_t k = 0, nfb = t->kind == T_SMTP || t->kind == T_LMTP ?
	    r->nfallback : 0;

	try_hop(q, t, d);
	while (k < nfb && d->hopfail && all_deferred(d)) {
		log_info_as(d->ident, "%s: next hop %s failed (%s): trying "
		    "fallback relay %s", d->env->id, route_name(t, from,
		    sizeof(from)), d->n > 0 ? d->res[0].text : "",
		    route_name(&r->fallback[k], to, sizeof(to)));
		t = &r->fallback[k++];
		try_hop(q, t, d);
	}
}
