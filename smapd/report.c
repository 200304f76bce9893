/*
 * report.c - smapq report: a period's review, as text (for mail) or
 * JSON (review.h, smapq(8)). What smapd did comes from the journal
 * (accepted, delivered, deferred by status code, bounced, expired,
 * quarantined by reason, smapq's actions, TLS both ways); what smap
 * refused comes from the log (relay attempts and their clients); the
 * queue is counted now; the journal is verified (structure and logged
 * heads; MACs too with --key).
 *
 * TRUST: journal records and log lines are hostile input (review.h's
 * readers cap and parse them); every string printed from them is
 * escaped already (journal values) or checked to be printable (log
 * fields), and JSON strings are written by qadm_json_string().
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queueadm.h"
#include "review.h"

#define KINDS 32		/* distinct reasons kept; the rest: "other" */
#define CLIENTS 1024		/* distinct refused clients kept */
#define TOP 5
#define KEY_LEN 64
#define UTC_FMT "%Y-%m-%d %H:%M:%S UTC"

struct kv {
	char key[KEY_LEN];
	long n;
};

struct table {
	struct kv *v;
	size_t n, cap;
	long other;
};

struct tally {
	long long since, until;
	long accepted, accepted_tls, delivered, delivered_smtp, delivered_tls;
	long deferred, bounced, expired, quarantined, held, released, deleted;
	long gaps, refused, loglines;
	struct table deferred_by, quarantined_by, refused_by;
	struct kv kd[KINDS], kq[KINDS], kr[CLIENTS];
	struct heads heads;
};

/* readable - a journal value's \xHH of printable ASCII as the byte
 * (a reason's spaces), into buf; others stay escaped; its length */
static size_t
readable(char *buf, size_t cap, const char *v, size_t n)
{
	size_t i = 0, o = 0;
	unsigned char c;

	while (i < n && o + 1 < cap) {
		if (v[i] == '\\' && i + 3 < n && v[i + 1] == 'x' &&
		    junhex(v + i + 2, 1, &c) == 0 && c >= 0x20 && c < 0x7f &&
		    c != '\\') {
			buf[o++] = (char)c;
			i += 4;
		} else
			buf[o++] = v[i++];
	}
	buf[o] = '\0';
	return o;
}

/* count - one more of key in t (cut to KEY_LEN; past cap: other) */
static void
count(struct table *t, const char *raw, size_t len)
{
	char key[KEY_LEN];
	size_t i, n = readable(key, sizeof(key), raw, len);

	for (i = 0; i < t->n; i++)
		if (strlen(t->v[i].key) == n && memcmp(t->v[i].key, key, n) == 0) {
			t->v[i].n++;
			return;
		}
	if (t->n == t->cap) {
		t->other++;
		return;
	}
	memcpy(t->v[t->n].key, key, n);
	t->v[t->n].key[n] = '\0';
	t->v[t->n++].n = 1;
}

/* kv_cmp - most first, then by name */
static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* val - a field's value, "" when it is not there or empty ("-") */
static const char *
val(const struct jrec *r, const char *name)
{
	const char *v = jrec_get(r, name);

	return v == NULL || strcmp(v, "-") == 0 ? "" : v;
}

/* reason_kind - what a quarantine reason is, without its details: up
 * to the first ":" (escaped spaces are \x20) */
static size_t
reason_kind(const char *why)
{
	const char *colon = strchr(why, ':');

	return colon != NULL ? (size_t)(colon - why) : strlen(why);
}

/* on_record - one journal record of the period */
static void
on_record(void *ctx, const struct jrec *r)
{
	struct tally *t = ctx;
	const char *tls = val(r, "tls"), *dsn = val(r, "dsn");

	if (r->sec < t->since || r->sec > t->until)
		return;
	switch (r->ev) {
	case J_ACCEPTED:
		t->accepted++;
		t->accepted_tls += *tls != '\0' && strcmp(tls, "no") != 0;
		break;
	case J_DELIVERED:
		t->delivered++;
		t->delivered_smtp += strcmp(tls, "yes") == 0 ||
		    strcmp(tls, "no") == 0;
		t->delivered_tls += strcmp(tls, "yes") == 0;
		break;
	case J_DEFERRED:
		t->deferred++;
		count(&t->deferred_by, *dsn ? dsn : "none", strlen(*dsn ? dsn :
		    "none"));
		break;
	case J_BOUNCED: t->bounced++; break;
	case J_EXPIRED: t->expired++; break;
	case J_QUARANTINED:
		t->quarantined++;
		count(&t->quarantined_by, val(r, "reason"),
		    reason_kind(val(r, "reason")));
		break;
	case J_HELD: t->held++; break;
	case J_RELEASED: t->released++; break;
	case J_DELETED: t->deleted++; break;
	case J_GAP: t->gaps++; break;
	default: break;
	}
}

/* refused_client - "reject: RCPT from NAME[ADDR]: 554 5.7.1 <...>:
 * Relay access denied": ADDR (printable, no spaces), or NULL */
static const char *
refused_client(const struct logline *l, size_t *n)
{
	static const char rcpt[] = "reject: RCPT from ";
	const char *m = l->msg, *end = l->msg + l->msg_len, *p, *a, *b;

	if (l->ident_len < 6 ||
	    memcmp(l->ident + l->ident_len - 6, "/smtpd", 6) != 0)
		return NULL;
	if ((p = memmem(m, l->msg_len, rcpt, sizeof(rcpt) - 1)) == NULL ||
	    memmem(m, l->msg_len, ": Relay access denied", 21) == NULL)
		return NULL;
	p += sizeof(rcpt) - 1;
	if ((a = memchr(p, '[', (size_t)(end - p))) == NULL ||
	    (b = memchr(a, ']', (size_t)(end - a))) == NULL || b - a < 2 ||
	    b + 7 > end || memcmp(b, "]: 554 ", 7) != 0)
		return NULL;
	for (p = a + 1; p < b; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return NULL;
	*n = (size_t)(b - a - 1);
	return a + 1;
}

/* on_log - one log line: a refusal of the period, a journal head */
static void
on_log(void *ctx, const struct logline *l)
{
	struct tally *t = ctx;
	struct jhead h;
	const char *c;
	size_t n;

	t->loglines++;
	if (log_head(l, &h)) {
		heads_add(&t->heads, &h);
		return;
	}
	if (l->t >= t->since && l->t <= t->until &&
	    (c = refused_client(l, &n)) != NULL) {
		t->refused++;
		count(&t->refused_by, c, n);
	}
}

/* gather - the period's journal and log, the queue, the verification */
static void
gather(struct review *rv, struct tally *t, struct census *c,
    struct verify *v)
{
	t->deferred_by = (struct table){ t->kd, 0, KINDS, 0 };
	t->quarantined_by = (struct table){ t->kq, 0, KINDS, 0 };
	t->refused_by = (struct table){ t->kr, 0, CLIENTS, 0 };
	if (rv->jfd >= 0)
		(void)journal_scan(rv->jfd, jday_of((time_t)t->since), LONG_MAX,
		    on_record, t);
	logs_scan(&rv->logs, rv->now, on_log, t);
	census_take(&rv->dirs, c);
	memset(v, 0, sizeof(*v));
	v->key = rv->have_key ? &rv->key : NULL;
	v->heads = t->heads.v;
	v->nheads = t->heads.n;
	if (rv->jfd >= 0)
		(void)journal_verify(rv->jfd, v);
	else {
		v->bad = 1;
		snprintf(v->bad_day, sizeof(v->bad_day), "%s", JOURNAL_DIR);
		snprintf(v->why, sizeof(v->why), "cannot be opened");
	}
	qsort(t->kd, t->deferred_by.n, sizeof(struct kv), kv_cmp);
	qsort(t->kq, t->quarantined_by.n, sizeof(struct kv), kv_cmp);
	qsort(t->kr, t->refused_by.n, sizeof(struct kv), kv_cmp);
}

/* pct - a share in whole percent */
static long
pct(long part, long all)
{
	return all > 0 ? (part * 100 + all / 2) / all : 0;
}

/* text_table - the rows of a table, indented; the top ones only */
static void
text_table(FILE *fp, const struct table *t, size_t top, int subject)
{
	size_t i;

	for (i = 0; i < t->n && i < top; i++)
		fprintf(fp, "    %s%s%s: %ld\n", t->v[i].key, subject ? " " : "",
		    subject ? dsn_subject(t->v[i].key) : "", t->v[i].n);
	if (t->other > 0 || t->n > top)
		fprintf(fp, "    (and others)\n");
}

/* text_counts - what smapd did, from the journal */
static void
text_counts(FILE *fp, const struct tally *t)
{
	fprintf(fp, "messages accepted:       %ld (%ld over TLS, %ld%%)\n",
	    t->accepted, t->accepted_tls, pct(t->accepted_tls, t->accepted));
	fprintf(fp, "recipients delivered:    %ld (%ld by SMTP/LMTP, %ld of "
	    "them over TLS, %ld%%)\n", t->delivered, t->delivered_smtp,
	    t->delivered_tls, pct(t->delivered_tls, t->delivered_smtp));
	fprintf(fp, "deferrals:               %ld\n", t->deferred);
	text_table(fp, &t->deferred_by, KINDS, 1);
	fprintf(fp, "recipients bounced:      %ld\n", t->bounced);
	fprintf(fp, "recipients expired:      %ld\n", t->expired);
	fprintf(fp, "files quarantined:       %ld\n", t->quarantined);
	text_table(fp, &t->quarantined_by, KINDS, 0);
	fprintf(fp, "held/released/deleted by smapq: %ld/%ld/%ld\n", t->held,
	    t->released, t->deleted);
}

/* text_rest - refusals, the queue, the journal */
static void
text_rest(FILE *fp, const struct review *rv, const struct tally *t,
    const struct census *c, const struct verify *v)
{
	char when[40];

	if (rv->logs.n > 0) {
		fprintf(fp, "relay attempts refused:  %ld\n", t->refused);
		if (t->refused > 0)
			fprintf(fp, "  top refused clients:\n");
		text_table(fp, &t->refused_by, TOP, 0);
	} else
		fprintf(fp, "relay attempts refused:  unknown (no log)\n");
	fprintf(fp, "queue now:               %ld messages (queue %ld, hold %ld, "
	    "new %ld)\n", c->msgs[L_QUEUE] + c->msgs[L_HOLD] + c->msgs[L_NEW],
	    c->msgs[L_QUEUE], c->msgs[L_HOLD], c->msgs[L_NEW]);
	if (c->oldest > 0)
		fprintf(fp, "oldest message:          %s, arrived %s (%llds ago)\n",
		    c->oldest_id, qadm_time(when, sizeof(when), c->oldest, 1, UTC_FMT),
		    rv->now - c->oldest);
	if (c->err)
		fprintf(fp, "queue: some directories could not be read\n");
	if (t->gaps > 0)
		fprintf(fp, "journal gaps:            %ld (records that could not "
		    "be written are in the log)\n", t->gaps);
	putc('\n', fp);
	verify_print(fp, v);
	fprintf(fp, "log read: %s (%ld lines)\n", rv->logs.n > 0 ?
	    rv->logs.what : "none", t->loglines);
}

/* json_table - "name": {"key": n, ...} */
static void
json_table(FILE *fp, const char *name, const struct table *t)
{
	size_t i;

	fprintf(fp, ", \"%s\": {", name);
	for (i = 0; i < t->n; i++) {
		fputs(i ? ", " : "", fp);
		qadm_json_string(fp, t->v[i].key);
		fprintf(fp, ": %ld", t->v[i].n);
	}
	if (t->other > 0)
		fprintf(fp, "%s\"other\": %ld", t->n ? ", " : "", t->other);
	putc('}', fp);
}

/* json_counts - the journal's part */
static void
json_counts(FILE *fp, const struct tally *t)
{
	fprintf(fp, "{\"since\": %lld, \"until\": %lld, \"accepted\": %ld, "
	    "\"accepted_tls\": %ld, \"delivered\": %ld, \"delivered_smtp\": %ld, "
	    "\"delivered_tls\": %ld, \"deferred\": %ld", t->since, t->until,
	    t->accepted, t->accepted_tls, t->delivered, t->delivered_smtp,
	    t->delivered_tls, t->deferred);
	json_table(fp, "deferred_by_dsn", &t->deferred_by);
	fprintf(fp, ", \"bounced\": %ld, \"expired\": %ld, \"quarantined\": %ld",
	    t->bounced, t->expired, t->quarantined);
	json_table(fp, "quarantined_by_reason", &t->quarantined_by);
	fprintf(fp, ", \"held\": %ld, \"released\": %ld, \"deleted\": %ld, "
	    "\"journal_gaps\": %ld", t->held, t->released, t->deleted, t->gaps);
}

/* json_rest - refusals, the queue, the journal */
static void
json_rest(FILE *fp, const struct review *rv, const struct tally *t,
    const struct census *c, const struct verify *v)
{
	size_t i;

	fprintf(fp, ", \"relay_refused\": ");
	if (rv->logs.n == 0)
		fputs("null", fp);
	else
		fprintf(fp, "%ld", t->refused);
	fputs(", \"top_refused_clients\": [", fp);
	for (i = 0; i < t->refused_by.n && i < TOP; i++) {
		fputs(i ? ", {\"client\": " : "{\"client\": ", fp);
		qadm_json_string(fp, t->refused_by.v[i].key);
		fprintf(fp, ", \"count\": %ld}", t->refused_by.v[i].n);
	}
	fprintf(fp, "], \"queue\": {\"new\": %ld, \"queue\": %ld, \"hold\": %ld, "
	    "\"oldest_arrival\": ", c->msgs[L_NEW], c->msgs[L_QUEUE],
	    c->msgs[L_HOLD]);
	if (c->oldest > 0)
		fprintf(fp, "%lld, \"oldest_id\": \"%s\"}", c->oldest, c->oldest_id);
	else
		fputs("null, \"oldest_id\": null}", fp);
	fprintf(fp, ", \"journal\": {\"ok\": %s, \"macs_checked\": %s, \"days\": "
	    "%ld, \"records\": %ld, \"heads_checked\": %ld, \"problem\": ",
	    v->bad ? "false" : "true", v->key ? "true" : "false", v->days,
	    v->records, v->heads_checked);
	if (v->bad) {
		char where[600];

		snprintf(where, sizeof(where), "%s line %ld: %s", v->bad_day,
		    v->bad_line, v->why);
		qadm_json_string(fp, where);
	} else
		fputs("null", fp);
	fputs("}, \"log\": ", fp);
	qadm_json_string(fp, rv->logs.n > 0 ? rv->logs.what : "");
	fputs("}\n", fp);
}

/* mail_header - To:, Subject: and the rest, for smap-sendmail -t */
static void
mail_header(FILE *fp, const struct review *rv, const struct verify *v,
    const struct tally *t)
{
	char day[JDAY_LEN];

	jday_name(jday_of((time_t)rv->now), day);
	fprintf(fp, "To: %s\nSubject: smap review of %s for %s: %s\n"
	    "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=us-ascii\n\n",
	    rv->cf->report_recipient, rv->cf->myhostname, day, v->bad ?
	    "ALERT: the journal failed verification" : t->gaps ?
	    "warning: journal records lost" : "OK");
}

/* review_report - smapq report */
int
review_report(struct review *rv, FILE *out)
{
	static struct tally t;
	static struct census c;
	static struct verify v;
	char a[40], b[40];

	memset(&t, 0, sizeof(t));
	t.since = rv->since;
	t.until = rv->now;
	gather(rv, &t, &c, &v);
	if (rv->json) {
		json_counts(out, &t);
		json_rest(out, rv, &t, &c, &v);
	} else {
		if (rv->mail)
			mail_header(out, rv, &v, &t);
		fprintf(out, "smap review of %s\nperiod: %s to %s\n\n",
		    rv->cf->myhostname, qadm_time(a, sizeof(a), t.since, 1, UTC_FMT),
		    qadm_time(b, sizeof(b), t.until, 1, UTC_FMT));
		text_counts(out, &t);
		text_rest(out, rv, &t, &c, &v);
	}
	free(t.heads.v);
	return 0;
}
