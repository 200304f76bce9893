/*
 * journal_event.c - the journal's records of what smapd and smapq do
 * (journal_event.h): each formats its fields with jput() (which
 * escapes every byte outside printable ASCII, so nothing a client or a
 * backend sent can split or forge a record) and hands them to
 * journal_add(). TRUST: the callers' envelopes have passed
 * spool_read_envelope(); reply texts and quarantined names have not,
 * and are escaped like everything else.
 */
#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "journal_event.h"

#define FIELDS_MAX (JOURNAL_LINE_MAX - 200)	/* room for SEQ TIME EVENT MAC */

/* put - one field, its value a C string */
static void
put(char *f, const char *name, const char *value)
{
	(void)jput(f, FIELDS_MAX, name, value, strlen(value));
}

/* put_num - one field, its value a number */
static void
put_num(char *f, const char *name, long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%lld", v);
	put(f, name, num);
}

/* journal_accepted - "accepted id= from= size= nrcpt= client= ..." */
void
journal_accepted(const struct envelope *e)
{
	char f[FIELDS_MAX] = "", tls[64];

	snprintf(tls, sizeof(tls), "%.*s", (int)strcspn(e->tls, " "), e->tls);
	put(f, "id", e->id);
	put(f, "from", e->sender);
	put_num(f, "size", e->size);
	put_num(f, "nrcpt", (long long)e->nrcpt);
	put(f, "client", e->client);
	put(f, "helo", e->helo);
	put(f, "proto", e->proto);
	put(f, "tls", tls[0] ? tls : "no");
	journal_add(J_ACCEPTED, f);
}

/* journal_attempt - one record per recipient of the attempt, durable */
void
journal_attempt(const struct delivery *d, int smtp)
{
	static const enum jevent ev[] = { J_DEFERRED, J_DELIVERED, J_DEFERRED,
		J_BOUNCED };
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct rcpt_result *r = &d->res[i];
		char f[FIELDS_MAX] = "";

		put(f, "id", d->env->id);
		put(f, "to", d->env->rcpt[d->idx[i]]);
		put(f, "relay", d->relay);
		put(f, "tls", !smtp ? "-" : d->tls ? "yes" : "no");
		put(f, "dsn", r->dsn);
		put(f, "reply", r->text);
		journal_add(ev[r->status <= R_BOUNCE ? r->status : R_DEFER], f);
	}
	journal_sync();
}

/* journal_expired - "expired id= to= dsn= reply=" */
void
journal_expired(const struct envelope *e, size_t i,
    const struct rcpt_result *r)
{
	char f[FIELDS_MAX] = "";

	put(f, "id", e->id);
	put(f, "to", e->rcpt[i]);
	put(f, "dsn", r->dsn);
	put(f, "reply", r->text);
	journal_add(J_EXPIRED, f);
	journal_sync();
}

/* journal_quarantined - "quarantined id= as= reason=" */
void
journal_quarantined(const char *name, const char *as, const char *why)
{
	char f[FIELDS_MAX] = "";

	put(f, "id", name);
	put(f, "as", as);
	put(f, "reason", why);
	journal_add(J_QUARANTINED, f);
	journal_sync();
}

/* journal_held - "held id= by=smapd reason=": smapd's own hold */
void
journal_held(const char *id, const char *why)
{
	char f[FIELDS_MAX] = "";

	put(f, "id", id);
	put(f, "by", "smapd");
	put(f, "reason", why);
	journal_add(J_HELD, f);
	journal_sync();
}

/* journal_admin - "held|released|deleted id= by=" */
void
journal_admin(enum jevent ev, const char *id)
{
	char f[FIELDS_MAX] = "";

	put(f, "id", id);
	put(f, "by", journal_actor()[0] ? journal_actor() : "smapq");
	journal_add(ev, f);
	journal_sync();
	journal_head();	/* so that a cut after it is seen, as after smapd */
}
