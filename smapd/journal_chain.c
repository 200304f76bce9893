/*
 * journal_chain.c - the journal's chain: day names, keys and their
 * daily evolution, MACs, and one record's text both ways (journal.h;
 * the format is in smap-spool(5)). No I/O: the writer (journal.c), the
 * verifier (journal_verify.c) and the unit tests share it.
 *
 * TRUST: jrec_parse() and jkey_parse() read bytes anyone with smapd's
 * uid (or a copy handed to smapq) may have changed: every length is
 * checked, every byte must be of its field's kind, numbers are parsed
 * without overflow. The HMAC and SHA-256 are OpenSSL's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "journal.h"
#include "lines.h"
#include "log.h"

#define DAY_SECS 86400
#define TIME_LEN 27		/* 2026-11-23T05:00:00.000000Z */
#define MAC_TAIL (5 + JMAC_HEX)	/* " mac=" HEX */
#define KEY_MAGIC "smap-journal-key 1 "

static const char *const names[J_NEVENTS] = { "open", "accepted",
	"delivered", "deferred", "bounced", "expired", "quarantined", "held",
	"released", "deleted", "gap", "torn", "close" };

/* jevent_name - an event's word */
const char *
jevent_name(enum jevent ev)
{
	return ev >= 0 && ev < J_NEVENTS ? names[ev] : "?";
}

/* jevent_parse - the event a word names */
int
jevent_parse(const char *s, size_t n, enum jevent *ev)
{
	int i;

	for (i = 0; i < J_NEVENTS; i++)
		if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
			*ev = (enum jevent)i;
			return 0;
		}
	return -1;
}

/* jday_of - the UTC day of a time */
long
jday_of(time_t t)
{
	return t < 0 ? 0 : (long)(t / DAY_SECS);
}

/* jday_name - "YYYY-MM-DD" */
void
jday_name(long day, char *buf)
{
	time_t t = (time_t)day * DAY_SECS;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, JDAY_LEN, "%Y-%m-%d", &tm) != JDAY_LEN - 1)
		snprintf(buf, JDAY_LEN, "0000-00-00");
}

/* civil - "YYYY-MM-DD" at s into tm (midnight); 0 or -1 */
static int
civil(const char *s, struct tm *tm)
{
	long y = lines_digits(s, 4), m = lines_digits(s + 5, 2),
	    d = lines_digits(s + 8, 2);

	if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31 ||
	    s[4] != '-' || s[7] != '-')
		return -1;
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = (int)y - 1900;
	tm->tm_mon = (int)m - 1;
	tm->tm_mday = (int)d;
	return 0;
}

/* jday_parse - a day file's name, exactly, and a real date */
int
jday_parse(const char *s, long *day)
{
	char back[JDAY_LEN];
	struct tm tm;
	time_t t;

	if (strlen(s) != JDAY_LEN - 1 || civil(s, &tm) < 0 ||
	    (t = timegm(&tm)) == (time_t)-1)
		return -1;
	*day = jday_of(t);
	jday_name(*day, back);
	return strcmp(back, s) == 0 ? 0 : -1;
}

/* jkey_next - K(day + 1) = HMAC-SHA-256(K(day), "next") */
int
jkey_next(struct jkey *k)
{
	unsigned char out[JMAC_LEN];
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), k->k, JMAC_LEN, (const unsigned char *)"next", 4,
	    out, &len) == NULL || len != JMAC_LEN)
		return -1;
	memcpy(k->k, out, JMAC_LEN);
	OPENSSL_cleanse(out, sizeof(out));
	k->day++;
	return 0;
}

/* jkey_advance - the key of a later day (or of the same one) */
int
jkey_advance(struct jkey *k, long day)
{
	if (day < k->day)
		return -1;
	while (k->day < day)
		if (jkey_next(k) < 0)
			return -1;
	return 0;
}

/* jmac - HMAC-SHA-256(k, prev || body) */
int
jmac(const struct jkey *k, const unsigned char prev[JMAC_LEN],
    const char *body, size_t n, unsigned char out[JMAC_LEN])
{
	unsigned char in[JMAC_LEN + JOURNAL_LINE_MAX];
	unsigned int len = 0;

	if (n > JOURNAL_LINE_MAX)
		return -1;
	memcpy(in, prev, JMAC_LEN);
	memcpy(in + JMAC_LEN, body, n);
	if (HMAC(EVP_sha256(), k->k, JMAC_LEN, in, JMAC_LEN + n, out,
	    &len) == NULL || len != JMAC_LEN)
		return -1;
	return 0;
}

/* jhex - lower-case hex */
void
jhex(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* nibble - one lower-case hex digit, or -1 */
static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* junhex - 2n lower-case hex digits into n bytes */
int
junhex(const char *s, size_t n, unsigned char *out)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if ((hi = nibble(s[2 * i])) < 0 || (lo = nibble(s[2 * i + 1])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* jkey_format - the key's one line */
void
jkey_format(const struct jkey *k, char *buf)
{
	char day[JDAY_LEN], hex[JMAC_HEX + 1];

	jday_name(k->day, day);
	jhex(k->k, JMAC_LEN, hex);
	snprintf(buf, JKEY_LINE_MAX, KEY_MAGIC "%s %s\n", day, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
}

/* jkey_parse - a key's line back, white space around it allowed */
int
jkey_parse(const char *s, size_t n, struct jkey *k)
{
	size_t m = strlen(KEY_MAGIC);
	char day[JDAY_LEN];

	while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (n != m + JDAY_LEN + JMAC_HEX || memcmp(s, KEY_MAGIC, m) != 0 ||
	    s[m + JDAY_LEN - 1] != ' ')
		return -1;
	memcpy(day, s + m, JDAY_LEN - 1);
	day[JDAY_LEN - 1] = '\0';
	if (jday_parse(day, &k->day) < 0 ||
	    junhex(s + m + JDAY_LEN, JMAC_LEN, k->k) < 0)
		return -1;
	return 0;
}

/* plain - may this byte stand in a value as it is? */
static int
plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '\\';
}

/* jput - " name=value", escaped and capped */
int
jput(char *dst, size_t cap, const char *name, const char *value, size_t n)
{
	size_t at = strlen(dst), o, i, start;

	if (at + strlen(name) + 2 + 1 >= cap)
		return -1;
	o = at + (size_t)snprintf(dst + at, cap - at, " %s=", name);
	start = o;
	for (i = 0; i < n && value[i] != '\0'; i++) {
		unsigned char c = (unsigned char)value[i];
		size_t w = plain(c) ? 1 : 4;

		if (o - start + w > JOURNAL_VALUE_MAX - 3 || o + w + 4 >= cap) {
			if (o + 4 >= cap)
				break;
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (w == 1)
			dst[o++] = (char)c;
		else
			o += log_hex(dst + o, c);
	}
	if (o == start && o + 2 < cap)
		dst[o++] = '-';
	if (o + 1 >= cap) {
		dst[at] = '\0';
		return -1;
	}
	dst[o] = '\0';
	return 0;
}

/* jrec_body - "SEQ TIME EVENT" and the fields */
int
jrec_body(char *buf, size_t len, long seq, const struct timespec *ts,
    enum jevent ev, const char *fields)
{
	char when[32];
	struct tm tm;
	time_t t = ts->tv_sec;
	int n;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
		return -1;
	n = snprintf(buf, len, "%ld %s.%06ldZ %s%s", seq, when,
	    (long)(ts->tv_nsec / 1000), jevent_name(ev), fields);
	if (n < 0 || (size_t)n >= len || n + MAC_TAIL + 1 > JOURNAL_LINE_MAX)
		return -1;
	return n;
}

/* jrec_line - the whole line with its MAC, and the MAC */
int
jrec_line(char *buf, size_t len, const struct jkey *k,
    const unsigned char prev[JMAC_LEN], long seq,
    const struct timespec *ts, enum jevent ev, const char *fields,
    unsigned char mac[JMAC_LEN])
{
	char hex[JMAC_HEX + 1];
	int n = jrec_body(buf, len, seq, ts, ev, fields);

	if (n < 0 || (size_t)n + MAC_TAIL + 2 > len ||
	    jmac(k, prev, buf, (size_t)n, mac) < 0)
		return -1;
	jhex(mac, JMAC_LEN, hex);
	return n + snprintf(buf + n, len - (size_t)n, " mac=%s\n", hex);
}

/* parse_time - "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
static int
parse_time(const char *s, struct jrec *r)
{
	long hh = lines_digits(s + 11, 2), mm = lines_digits(s + 14, 2),
	    ss = lines_digits(s + 17, 2), us = lines_digits(s + 20, 6);
	struct tm tm;
	time_t t;

	if (civil(s, &tm) < 0 || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != '.' || s[26] != 'Z' || hh < 0 || hh > 23 || mm < 0 ||
	    mm > 59 || ss < 0 || ss > 60 || us < 0)
		return -1;
	tm.tm_hour = (int)hh;
	tm.tm_min = (int)mm;
	tm.tm_sec = (int)ss;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	r->sec = (long long)t;
	r->usec = us;
	return 0;
}

/* parse_field - "name=value" at s (n bytes) */
static int
parse_field(char *s, size_t n, struct jrec *r)
{
	char *eq = memchr(s, '=', n);
	size_t i, k;

	if (eq == NULL || eq == s || eq == s + n - 1 || r->nf >= JFIELDS_MAX)
		return -1;
	k = (size_t)(eq - s);
	for (i = 0; i < k; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return -1;
	*eq = '\0';
	r->f[r->nf].name = s;
	r->f[r->nf++].value = eq + 1;
	return 0;
}

/* parse_head - seq, time, event at the start of the body */
static int
parse_head(char *b, size_t n, struct jrec *r, size_t *at, const char **why)
{
	size_t sp = strcspn(b, " ");
	char *ev;

	*why = "a bad record number";
	if (sp == 0 || sp > 10 || b[0] == '0' || (r->seq = lines_digits(b, sp)) < 0)
		return -1;
	*why = "a bad time";
	if (sp + 1 + TIME_LEN + 1 > n || b[sp + 1 + TIME_LEN] != ' ' ||
	    parse_time(b + sp + 1, r) < 0)
		return -1;
	ev = b + sp + 2 + TIME_LEN;
	*why = "an unknown event";
	if (jevent_parse(ev, strcspn(ev, " "), &r->ev) < 0)
		return -1;
	*at = (size_t)(ev - b) + strcspn(ev, " ");
	return 0;
}

/* jrec_parse - one line into its parts */
int
jrec_parse(const char *line, size_t n, struct jrec *r, const char **why)
{
	size_t i, at, len;
	char *b = r->buf;

	r->nf = 0;
	*why = "a record longer than the journal allows";
	if (n + 1 > JOURNAL_LINE_MAX)
		return -1;
	*why = "a byte that no record holds";
	for (i = 0; i < n; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			return -1;
	*why = "no MAC at the end";
	if (n < MAC_TAIL + 1 || memcmp(line + n - MAC_TAIL, " mac=", 5) != 0 ||
	    junhex(line + n - JMAC_HEX, JMAC_LEN, r->mac) < 0)
		return -1;
	r->body_len = n - MAC_TAIL;
	memcpy(b, line, r->body_len);
	b[r->body_len] = '\0';
	if (parse_head(b, r->body_len, r, &at, why) < 0)
		return -1;
	*why = "a field that is not name=value";
	while (at < r->body_len) {
		if (b[at] != ' ' || (len = strcspn(b + at + 1, " ")) == 0)
			return -1;
		b[at] = '\0';	/* ends the word before */
		if (parse_field(b + at + 1, len, r) < 0)
			return -1;
		at += 1 + len;
	}
	return 0;
}

/* jrec_get - a field's value */
const char *
jrec_get(const struct jrec *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nf; i++)
		if (strcmp(r->f[i].name, name) == 0)
			return r->f[i].value;
	return NULL;
}
