/*
 * journal_verify.c - smapq verify: the journal checked record by record
 * (review.h; the format and what each check finds are in smap-spool(5)
 * and smapq(8)).
 *
 * Without the key: every line is a record, numbered from 1 without a
 * gap, each day opens naming the day before it and that day's last
 * record (number and MAC) exactly, ends with its close (but the last),
 * and holds every record a head logged for it. With the key (the first
 * one, evolved to each day): every record's MAC, chained. The first
 * failure is reported with its day and line.
 *
 * TRUST: none in journal/: lines are capped (JOURNAL_LINE_MAX), parsed
 * by jrec_parse(), MACs compared in constant time. Each file is read
 * only as far as it was long under the journal's lock (shared, taken
 * for a moment), so a record being appended is not seen half written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "journal.h"
#include "lines.h"
#include "review.h"

static const unsigned char zero[JMAC_LEN];

/* What verification carries from one day to the next. */
struct vs {
	struct verify *v;
	int dfd;
	const long *all;	/* every day of the journal */
	size_t nall;
	struct jkey key;	/* evolved to the day being checked */
	struct jhead prev;	/* the end of the day before */
	int have_prev, prev_closed;
	struct jhead *heads;	/* sorted by day, records */
	size_t nheads, hp;
	struct lines lr;
	struct jrec r;
};

/* bad - the first failure: its day, line and why; returns 1 */
static int __attribute__((format(printf, 4, 5)))
bad(struct verify *v, long day, long line, const char *fmt, ...)
{
	va_list ap;

	if (v->bad)
		return 1;
	v->bad = 1;
	jday_name(day, v->bad_day);
	v->bad_line = line;
	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
	return 1;
}

/* head_cmp - qsort order of heads: day, then records */
static int
head_cmp(const void *a, const void *b)
{
	const struct jhead *x = a, *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return x->records < y->records ? -1 : x->records > y->records;
}

/* open_day - a day's file and how long it is now: fd, or -1 */
static int
open_day(int dfd, long day, off_t *size)
{
	char name[JDAY_LEN];
	struct stat st;
	int fd;

	jday_name(day, name);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY);
	if (fd < 0)
		return -1;
	(void)flock(dfd, LOCK_SH);	/* between two appends */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)flock(dfd, LOCK_UN);
		(void)close(fd);
		errno = EINVAL;
		return -1;
	}
	(void)flock(dfd, LOCK_UN);
	*size = st.st_size;
	return fd;
}

/* long_cmp - bsearch order of days */
static int
long_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* in_journal - is day one of the journal's? */
static int
in_journal(const struct vs *s, long day)
{
	return s->nall > 0 &&
	    bsearch(&day, s->all, s->nall, sizeof(long), long_cmp) != NULL;
}

/* selected - is day to be checked (every day, or one of those asked)? */
static int
selected(const struct verify *v, long day)
{
	size_t i;

	for (i = 0; i < v->nonly; i++)
		if (v->only[i] == day)
			return 1;
	return v->only == NULL;
}

/* check_link - the open record's prev_* against the day before */
static int
check_link(struct vs *s, long day, long pdn, long pr,
    const unsigned char pmac[JMAC_LEN])
{
	char name[JDAY_LEN], pname[JDAY_LEN];
	struct verify *v = s->v;

	jday_name(day, name);
	if (!s->have_prev || pdn > s->prev.day)
		return bad(v, pdn, 0, "missing: %s line 1 names it as the day "
		    "before, but the journal has no such day (deleted)", name);
	jday_name(s->prev.day, pname);
	if (pdn < s->prev.day)
		return bad(v, s->prev.day, 1, "not part of the chain: %s line 1 "
		    "names an earlier day as the day before it (a day added)",
		    name);
	if (pr > s->prev.records)
		return bad(v, pdn, s->prev.records + 1, "missing: %s line 1 "
		    "names %ld records for %s, the file ends at line %ld (cut)",
		    name, pr, pname, s->prev.records);
	if (pr < s->prev.records)
		return bad(v, pdn, pr + 1, "%s line 1 names line %ld as the last "
		    "record of %s: records were added after it", name, pr, pname);
	if (CRYPTO_memcmp(pmac, s->prev.mac, JMAC_LEN) != 0)
		return bad(v, pdn, pr, "not the record %s line 1 names as the "
		    "last of %s (changed)", name, pname);
	return 0;
}

/* check_open - line 1: the open record, its link; prev: the chain's MAC
 * before it */
static int
check_open(struct vs *s, long day, const struct jrec *r,
    unsigned char prev[JMAC_LEN])
{
	const char *d = jrec_get(r, "day"), *pd = jrec_get(r, "prev_day");
	const char *pr = jrec_get(r, "prev_records"), *pm = jrec_get(r, "prev_mac");
	char name[JDAY_LEN];
	unsigned char pmac[JMAC_LEN];
	long pdn;

	jday_name(day, name);
	if (r->ev != J_OPEN)
		return bad(s->v, day, 1, "the day does not begin with its open "
		    "record");
	if (d == NULL || strcmp(d, name) != 0 || pd == NULL || pr == NULL ||
	    pm == NULL || strlen(pm) != JMAC_HEX || junhex(pm, JMAC_LEN, pmac) < 0)
		return bad(s->v, day, 1, "an open record that is not this day's "
		    "or lacks prev_day, prev_records or prev_mac");
	memcpy(prev, pmac, JMAC_LEN);
	if (strcmp(pd, "-") == 0) {
		if (s->have_prev)
			return bad(s->v, day, 1, "begins a new chain, as if the days "
			    "before it were not there");
		if (strcmp(pr, "0") != 0 || CRYPTO_memcmp(pmac, zero, JMAC_LEN))
			return bad(s->v, day, 1, "a first day that names an end "
			    "before it");
		return 0;
	}
	if (jday_parse(pd, &pdn) < 0)
		return bad(s->v, day, 1, "names a day before it that is no day");
	return check_link(s, day, pdn, strtol(pr, NULL, 10), pmac);
}

/* check_heads - the logged heads of this day at line k */
static int
check_heads(struct vs *s, long day, long k, const unsigned char mac[JMAC_LEN])
{
	struct jhead *h;

	for (; s->hp < s->nheads && s->heads[s->hp].day == day &&
	    s->heads[s->hp].records <= k; s->hp++) {
		h = &s->heads[s->hp];
		if (h->records < k)
			continue;
		s->v->heads_checked++;
		if (CRYPTO_memcmp(h->mac, mac, JMAC_LEN) != 0)
			return bad(s->v, day, k, "not the record whose head was "
			    "logged (records=%ld at %lld): rewritten", k, h->sec);
	}
	return 0;
}

/* check_rec - one record's own checks: number, place, MAC */
static int
check_rec(struct vs *s, long day, long k, const char *p, int *closed,
    unsigned char prev[JMAC_LEN])
{
	const struct jrec *r = &s->r;
	const char *rec = jrec_get(r, "records");
	unsigned char mac[JMAC_LEN];

	if (r->seq != k)
		return bad(s->v, day, k, "numbered %ld: a record was removed, "
		    "added or moved here", r->seq);
	if (*closed)
		return bad(s->v, day, k, "a record after the day's close");
	if (k == 1 && check_open(s, day, r, prev) != 0)
		return 1;
	if (k > 1 && r->ev == J_OPEN)
		return bad(s->v, day, k, "an open record inside the day");
	if (r->ev == J_CLOSE && (rec == NULL || strtol(rec, NULL, 10) != k))
		return bad(s->v, day, k, "a close record with the wrong count");
	*closed = r->ev == J_CLOSE;
	if (s->v->key != NULL && (jmac(&s->key, prev, p, r->body_len, mac) < 0 ||
	    CRYPTO_memcmp(mac, r->mac, JMAC_LEN) != 0))
		return bad(s->v, day, k, "MAC does not match: the record was "
		    "changed, or the chain before it was (a record removed, "
		    "added or moved, or a forgery made without the key)");
	return 0;
}

/* note - gap and torn records: counted, not failures */
static void
note(struct verify *v, const struct jrec *r)
{
	const char *lost = jrec_get(r, "lost");

	if (r->ev == J_GAP) {
		v->gaps++;
		v->lost += lost != NULL ? strtol(lost, NULL, 10) : 0;
	} else if (r->ev == J_TORN)
		v->torn++;
}

/* check_line - line k of day */
static int
check_line(struct vs *s, long day, long k, enum lstatus st, const char *p,
    size_t n, int *closed, unsigned char prev[JMAC_LEN])
{
	const char *why;

	if (st == L_ERR)
		return bad(s->v, day, k, "cannot be read: %s", strerror(errno));
	if (st == L_LONG)
		return bad(s->v, day, k, "longer than a record may be");
	if (st == L_PARTIAL)
		return bad(s->v, day, k, "the file ends inside this record (cut)");
	if (jrec_parse(p, n, &s->r, &why) < 0)
		return bad(s->v, day, k, "not a record: %s", why);
	if (check_rec(s, day, k, p, closed, prev) != 0 ||
	    check_heads(s, day, k, s->r.mac) != 0)
		return 1;
	note(s->v, &s->r);
	memcpy(prev, s->r.mac, JMAC_LEN);
	s->prev.sec = s->r.sec;
	return 0;
}

/* day_end - after the last line of day (k lines): closed if not the
 * journal's last day, no logged head beyond it */
static int
day_end(struct vs *s, long day, long k, int closed, int last)
{
	if (k == 0)
		return bad(s->v, day, 1, "the day's file is empty");
	if (!last && !closed)
		return bad(s->v, day, k + 1, "missing: the day ends without its "
		    "close record (records cut off)");
	for (; s->hp < s->nheads && s->heads[s->hp].day == day; s->hp++)
		if (s->heads[s->hp].records > k)
			return bad(s->v, day, k + 1, "missing: a head logged at %lld "
			    "names %ld records, the file ends at line %ld (cut)",
			    s->heads[s->hp].sec, s->heads[s->hp].records, k);
	return 0;
}

/* check_day - every line of one day */
static int
check_day(struct vs *s, long day, int last)
{
	unsigned char prev[JMAC_LEN];
	enum lstatus st;
	const char *p = NULL;
	size_t n = 0;
	long k = 0;
	int closed = 0, fd;
	off_t size;

	if (s->v->key != NULL && jkey_advance(&s->key, day) < 0)
		return bad(s->v, day, 0, "the key given is a later day's: it "
		    "cannot check this one");
	if ((fd = open_day(s->dfd, day, &size)) < 0)
		return bad(s->v, day, 0, "cannot be read: %s", strerror(errno));
	memcpy(prev, s->have_prev ? s->prev.mac : zero, JMAC_LEN);
	while (s->hp < s->nheads && s->heads[s->hp].day < day)
		s->hp++;	/* heads of days not checked: see missing() */
	lines_init(&s->lr, fd, JOURNAL_LINE_MAX - 1, size);
	while ((st = lines_next(&s->lr, &p, &n)) != L_END)
		if (check_line(s, day, ++k, st, p, n, &closed, prev) != 0)
			break;
	(void)close(fd);
	if (s->v->bad || day_end(s, day, k, closed, last) != 0)
		return 1;
	s->prev.day = day;
	s->prev.records = k;
	memcpy(s->prev.mac, prev, JMAC_LEN);
	s->have_prev = 1;
	s->prev_closed = closed;
	s->v->days++;
	s->v->records += k;
	return 0;
}

/* tail_of - the end of a day not checked (the day before one that is) */
static void
tail_of(struct vs *s, long day)
{
	const char *p, *why;
	size_t n;
	off_t size;
	int fd = open_day(s->dfd, day, &size);

	s->have_prev = 1;
	s->prev.day = day;
	s->prev.records = 0;
	if (fd < 0)
		return;
	lines_init(&s->lr, fd, JOURNAL_LINE_MAX - 1, size);
	while (lines_next(&s->lr, &p, &n) == L_LINE)
		if (jrec_parse(p, n, &s->r, &why) == 0) {
			s->prev.records = s->r.seq;
			memcpy(s->prev.mac, s->r.mac, JMAC_LEN);
			s->prev_closed = s->r.ev == J_CLOSE;
		}
	(void)close(fd);
}

/* missing - a logged head of a day the journal does not have */
static void
missing(struct vs *s)
{
	size_t i;

	for (i = 0; s->heads != NULL && i < s->nheads && !s->v->bad; i++)
		if (selected(s->v, s->heads[i].day) &&
		    !in_journal(s, s->heads[i].day))
			(void)bad(s->v, s->heads[i].day, 0, "missing: a head for it "
			    "was logged at %lld (records=%ld), but the journal has "
			    "no such day (deleted)", s->heads[i].sec,
			    s->heads[i].records);
}

/* walk - every day asked for, in order */
static void
walk(struct vs *s)
{
	struct verify *v = s->v;
	size_t i;
	int checked = 0;

	for (i = 0; i < v->nonly; i++)
		if (!in_journal(s, v->only[i]))
			(void)bad(v, v->only[i], 0, "no such day in the journal");
	for (i = 0; i < s->nall && !v->bad; i++) {
		if (!selected(v, s->all[i])) {
			checked = 0;
			continue;
		}
		if (i > 0 && !checked)
			tail_of(s, s->all[i - 1]);
		if (v->first_day < 0)
			v->first_day = s->all[i];
		v->last_day = s->all[i];
		checked = check_day(s, s->all[i], i + 1 == s->nall) == 0;
	}
	missing(s);
}

/* journal_verify - the whole check */
int
journal_verify(int dfd, struct verify *v)
{
	static struct vs s;
	long *all = NULL;

	memset(&s, 0, sizeof(s));
	v->bad = 0;
	v->days = v->records = v->gaps = v->lost = v->torn = 0;
	v->heads_checked = 0;
	v->first_day = v->last_day = -1;
	s.v = v;
	s.dfd = dfd;
	if (v->key != NULL)
		s.key = *v->key;
	if (journal_days(dfd, &all, &s.nall) < 0)
		return bad(v, 0, 0, "cannot read %s/: %s", JOURNAL_DIR,
		    strerror(errno));
	s.all = all;
	if (v->nheads > 0 && (s.heads = malloc(v->nheads * sizeof(*s.heads)))) {
		memcpy(s.heads, v->heads, v->nheads * sizeof(*s.heads));
		qsort(s.heads, v->nheads, sizeof(*s.heads), head_cmp);
		s.nheads = v->nheads;
	}
	walk(&s);
	v->head = s.prev;
	free(s.heads);
	free(all);
	OPENSSL_cleanse(&s.key, sizeof(s.key));
	return v->bad;
}

/* verify_print - the outcome, a line each */
void
verify_print(FILE *fp, const struct verify *v)
{
	char a[JDAY_LEN], b[JDAY_LEN], hex[JMAC_HEX + 1];

	if (v->bad && v->bad_line > 0)
		fprintf(fp, "journal: FAILED: %s line %ld: %s\n", v->bad_day,
		    v->bad_line, v->why);
	else if (v->bad)
		fprintf(fp, "journal: FAILED: %s: %s\n", v->bad_day, v->why);
	else if (v->days == 0)
		fprintf(fp, "journal: empty: no day recorded yet\n");
	else {
		jday_name(v->first_day, a);
		jday_name(v->last_day, b);
		jhex(v->head.mac, JMAC_LEN, hex);
		fprintf(fp, "journal: intact: %ld days (%s to %s), %ld records; "
		    "the chain ends at %s line %ld mac=%s\n", v->days, a, b,
		    v->records, b, v->head.records, hex);
	}
	if (v->key != NULL) {
		jday_name(v->key->day, a);
		fprintf(fp, "journal: MACs checked with the key of %s\n", a);
	} else
		fprintf(fp, "journal: MACs not checked: no key given (--key FILE); "
		    "checked: records, days, their links, logged heads\n");
	if (v->heads_checked > 0)
		fprintf(fp, "journal: %ld logged heads match\n", v->heads_checked);
	else
		fprintf(fp, "journal: no logged head found: records cut from the "
		    "end of the last day cannot be seen\n");
	if (v->gaps > 0 || v->torn > 0)
		fprintf(fp, "journal: note: %ld records could not be written "
		    "(%ld gaps, in the log instead), %ld incomplete records cut "
		    "off after a crash\n", v->lost, v->gaps, v->torn);
}

/* journal_scan - the records of days from..to, parsed */
int
journal_scan(int dfd, long from, long to,
    void (*fn)(void *ctx, const struct jrec *r), void *ctx)
{
	static struct lines lr;
	static struct jrec r;
	const char *p, *why;
	long *days = NULL;
	size_t i, n, len;
	off_t size;
	int fd;

	if (journal_days(dfd, &days, &n) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (days[i] < from || days[i] > to ||
		    (fd = open_day(dfd, days[i], &size)) < 0)
			continue;
		lines_init(&lr, fd, JOURNAL_LINE_MAX - 1, size);
		while (lines_next(&lr, &p, &len) == L_LINE)
			if (jrec_parse(p, len, &r, &why) == 0)
				fn(ctx, &r);
		(void)close(fd);
	}
	free(days);
	return 0;
}
