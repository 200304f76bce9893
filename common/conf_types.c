/*
 * conf_types.c - the types of configuration values (see conf_types.h):
 * for each, how its text is checked and parsed, how the value is
 * printed back (smap -n, -d) and how it is freed.
 *
 * Text types (T_STR, T_HOST, T_PATH, T_MAP, T_USER, T_FACILITY) keep the text
 * once its length, its bytes (no control characters) and its syntax
 * pass. A TLS level (T_SLEVEL, T_CLEVEL) is text that must be one of
 * the names in tls_levels[] and is stored as its number, enum tlslevel:
 * the one table that parses, prints and explains a level. Numbers
 * (T_INT, T_SIZE, T_TIME) are parsed without overflow and checked
 * against their range; T_BOOL is yes or no. Lists (T_NETS, T_DOMAINS)
 * are items separated by white space or commas, counted against the
 * range first, then parsed one by one by one loop, parse_list().
 *
 * TRUST: none in the text, which comes from the file after expansion
 * (at most CONF_LINE_MAX bytes): every byte is checked, every number
 * bounded, every item capped (ITEM_MAX), every error message quotes at
 * most 48 bytes, escaped. No global mutable state.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_types.h"
#include "map.h"
#include "net.h"

#define QMAX 48			/* source bytes shown in a snippet */
#define ITEM_MAX 255		/* one list item */
#define LIST_SEP " \t\r\f\v,"

/* The names of enum tlslevel, in its order; "" is TLS_NEXTHOP. */
static const char *const tls_levels[] = { "", "none", "may", "encrypt",
    "verify", "fingerprint" };

#define NLEVELS (sizeof(tls_levels) / sizeof(tls_levels[0]))
_Static_assert(NLEVELS == TLS_FPRINT + 1, "a name for every TLS level");

static const char *const facilities[] = {
	"mail", "daemon", "user", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7"
};

/* conf_quote - n bytes of s as "..." with \xHH escapes (see header) */
const char *
conf_quote(char *dst, size_t len, const char *s, size_t n)
{
	size_t i, o = 0;
	unsigned char ch;

	dst[o++] = '"';
	for (i = 0; i < n && i < QMAX && o + 8 < len; i++) {
		ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			dst[o++] = (char)ch;
		else
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", ch);
	}
	if (i < n)
		o += (size_t)snprintf(dst + o, len - o, "...");
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* ---- validators of text ---- */

/* valid_domain - LDH labels of 1..63 bytes joined by dots, <= 255
 * bytes, no trailing dot; dot_ok allows one leading dot */
static int
valid_domain(const char *s, int dot_ok)
{
	size_t lab = 0;
	const char *p;
	unsigned char ch;

	if (dot_ok && *s == '.')
		s++;
	if (*s == '\0' || strlen(s) > 255)
		return 0;
	for (p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (lab == 0 || lab > 63 || p[-1] == '-')
				return 0;
			if (*p == '\0')
				return 1;
			lab = 0;
			continue;
		}
		ch = (unsigned char)*p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch == '-' && lab > 0)))
			return 0;
		lab++;
	}
}

/* valid_host - is s a hostname? */
static int
valid_host(const char *s)
{
	return valid_domain(s, 0);
}

/* valid_path - is s an absolute path? (Control bytes are refused
 * before.) */
static int
valid_path(const char *s)
{
	return s[0] == '/';
}

/* valid_user - is s a user name: [a-z_][a-z0-9_-]*? */
static int
valid_user(const char *s)
{
	return s[0] != '\0' && strchr("abcdefghijklmnopqrstuvwxyz_", s[0]) &&
	    s[strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-")] == '\0';
}

/* valid_map - is s a table map.c can open: cdb:/path or texthash:/path? */
static int
valid_map(const char *s)
{
	char why[MAP_WHY_MAX];

	return map_spec_ok(s, why, sizeof(why)) == 0;
}

/* valid_facility - is s one of the syslog facilities we accept? */
static int
valid_facility(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(s, facilities[i]) == 0)
			return 1;
	return 0;
}

/* valid_uproxy - is s a proxy protocol smap reads: HAProxy's v1/v2? */
static int
valid_uproxy(const char *s)
{
	return strcmp(s, "haproxy") == 0;
}

/* valid_any - any text is fine (control bytes are refused before) */
static int
valid_any(const char *s)
{
	(void)s;
	return 1;
}

/* What the text of each text type must be, and why it is not. */
static const struct {
	int (*valid)(const char *);
	const char *bad;
} texts[T_NTYPES] = {
	[T_STR] = { valid_any, "" },
	[T_HOST] = { valid_host, "is not a valid hostname" },
	[T_PATH] = { valid_path, "is not an absolute path" },
	[T_MAP] = { valid_map, "is not a lookup table (use cdb:/path or "
	    "texthash:/path)" },
	[T_USER] = { valid_user, "is not a valid user name" },
	[T_FACILITY] = { valid_facility, "is not a syslog facility (use "
	    "mail, daemon, user or local0 to local7)" },
	[T_UPROXY] = { valid_uproxy, "is not a proxy protocol (use haproxy, "
	    "or nothing)" },
};

/* The levels each side takes: smap's none to encrypt, smapd's all. */
static const struct {
	enum tlslevel lo, hi;
} levels[T_NTYPES] = {
	[T_SLEVEL] = { TLS_NONE, TLS_ENCRYPT },
	[T_CLEVEL] = { TLS_NEXTHOP, TLS_FPRINT },
};

/* ---- parsers of single values ---- */

/* range_check - v within the range? unit is "" or "s" */
static int
range_check(const struct vspec *p, long long v, const char *unit, char *why,
    size_t wl)
{
	if (v < p->min)
		snprintf(why, wl, "%lld%s is below the minimum %lld%s", v,
		    unit, p->min, unit);
	else if (v > p->max)
		snprintf(why, wl, "%lld%s is above the maximum %lld%s", v,
		    unit, p->max, unit);
	else
		return 0;
	return -1;
}

/* num_parse - [-]digits without overflow, *end after the digits; 0:
 * ok, -1: no digits, -2: out of range */
static int
num_parse(const char *s, long long *v, const char **end)
{
	int neg = *s == '-', d, over = 0;
	long long n = 0;

	s += neg;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = *s - '0';
		if (n > (LLONG_MAX - d) / 10)
			over = 1;
		else
			n = n * 10 + d;
	}
	*v = neg ? -n : n;
	*end = s;
	return over ? -2 : 0;
}

/* text_ok - the length in range, no control bytes, then the text
 * type's own check (levels have none here); 0, or -1 and why */
static int
text_ok(const struct vspec *p, const char *s, char *why, size_t wl)
{
	int (*valid)(const char *) = texts[p->type].valid;
	size_t len = strlen(s), i;
	char q[QBUF];

	conf_quote(q, sizeof(q), s, len);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			break;
	if (len == 0 && p->min > 0)
		snprintf(why, wl, "an empty value is not allowed");
	else if ((long long)len < p->min || (long long)len > p->max)
		snprintf(why, wl, "%s must be %lld to %lld bytes long", q,
		    p->min, p->max);
	else if (i < len)
		snprintf(why, wl, "%s contains a control character", q);
	else if (len > 0 && valid != NULL && !valid(s))
		snprintf(why, wl, "%s %s", q, texts[p->type].bad);
	else
		return 0;
	return -1;
}

/* parse_text - text types: the text, if text_ok() */
static int
parse_text(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	if (text_ok(p, s, why, wl) == -1)
		return -1;
	if ((*(char **)f = strdup(s)) == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	return 0;
}

/* level_names - "none, may or encrypt": the names of lo..hi but "" */
static const char *
level_names(char *buf, size_t len, enum tlslevel lo, enum tlslevel hi)
{
	size_t o = 0;
	int i, n;

	buf[0] = '\0';
	for (i = (int)lo; i <= (int)hi && o < len; i++) {
		if (tls_levels[i][0] == '\0')
			continue;
		n = snprintf(buf + o, len - o, "%s%s", o == 0 ? "" :
		    i == (int)hi ? " or " : ", ", tls_levels[i]);
		o = n < 0 ? len : o + (size_t)n;
	}
	return buf;
}

/* parse_level - T_SLEVEL, T_CLEVEL: a level's name, kept as its number */
static int
parse_level(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	enum tlslevel lo = levels[p->type].lo, hi = levels[p->type].hi;
	char q[QBUF], names[QBUF];
	int i;

	if (text_ok(p, s, why, wl) == -1)
		return -1;
	for (i = (int)lo; i <= (int)hi; i++)
		if (strcmp(s, tls_levels[i]) == 0) {
			*(enum tlslevel *)f = (enum tlslevel)i;
			return 0;
		}
	snprintf(why, wl, "%s is not a TLS level (use %s)",
	    conf_quote(q, sizeof(q), s, strlen(s)),
	    level_names(names, sizeof(names), lo, hi));
	return -1;
}

/* parse_int - T_INT, T_SIZE: a plain integer in range */
static int
parse_int(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	const char *end = s;
	char q[QBUF];
	long long v = 0;
	int r;

	conf_quote(q, sizeof(q), s, strlen(s));
	if ((r = num_parse(s, &v, &end)) == -1 || *end != '\0')
		snprintf(why, wl, "%s is not a number", q);
	else if (r == -2)
		snprintf(why, wl, "%s is out of range", q);
	else if (range_check(p, v, "", why, wl) == 0) {
		*(long long *)f = v;
		return 0;
	}
	return -1;
}

/* parse_time - T_TIME: an integer with an optional unit s, m, h, d, w */
static int
parse_time(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	static const char units[] = "smhdw";
	static const long long mul[] = { 1, 60, 3600, 86400, 604800 };
	const char *end = s, *u;
	char q[QBUF];
	long long v = 0;
	int r;

	conf_quote(q, sizeof(q), s, strlen(s));
	r = num_parse(s, &v, &end);
	u = r != -1 && *end != '\0' ? strchr(units, *end) : units;
	if (r == -1 || u == NULL || (*end != '\0' && end[1] != '\0'))
		snprintf(why, wl, "%s is not a time (a number with an optional "
		    "unit s, m, h, d or w)", q);
	else if (r == -2 || v > LLONG_MAX / mul[u - units] ||
	    v < -LLONG_MAX / mul[u - units])
		snprintf(why, wl, "%s is out of range", q);
	else if (range_check(p, v * mul[u - units], "s", why, wl) == 0) {
		*(long long *)f = v * mul[u - units];
		return 0;
	}
	return -1;
}

/* parse_bool - T_BOOL: yes or no (any case) */
static int
parse_bool(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	char q[QBUF];

	(void)p;
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "no") == 0) {
		*(int *)f = strcasecmp(s, "yes") == 0;
		return 0;
	}
	snprintf(why, wl, "%s is not \"yes\" or \"no\"",
	    conf_quote(q, sizeof(q), s, strlen(s)));
	return -1;
}

/* ---- lists ---- */

/* free_nets - free a network list */
static void
free_nets(void *f)
{
	struct netlist *l = f;

	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* free_domains - free a domain list */
static void
free_domains(void *f)
{
	struct strlist *l = f;
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* nets_room - room for n networks; 0 or -1 */
static int
nets_room(void *f, size_t n)
{
	struct netlist *l = f;

	return (l->v = calloc(n, sizeof(*l->v))) != NULL ? 0 : -1;
}

/* nets_add - one CIDR network, see net_parse(); 0, or -1 and why */
static int
nets_add(void *f, const char *t, size_t len, char *why, size_t wl)
{
	struct netlist *l = f;
	char item[ITEM_MAX + 1], q[QBUF];

	memcpy(item, t, len < ITEM_MAX ? len : ITEM_MAX);
	item[len < ITEM_MAX ? len : ITEM_MAX] = '\0';
	if (len > ITEM_MAX || net_parse(item, &l->v[l->n]) == -1) {
		snprintf(why, wl, "%s is not a valid network "
		    "(address[/prefix], host bits clear)",
		    conf_quote(q, sizeof(q), t, len));
		return -1;
	}
	l->n++;
	return 0;
}

/* domains_room - room for n domains; 0 or -1 */
static int
domains_room(void *f, size_t n)
{
	struct strlist *l = f;

	return (l->v = calloc(n, sizeof(*l->v))) != NULL ? 0 : -1;
}

/* domains_add - one domain, lowercased, ".domain" for its subdomains;
 * 0, or -1 and why */
static int
domains_add(void *f, const char *t, size_t len, char *why, size_t wl)
{
	struct strlist *l = f;
	char q[QBUF], *d;
	size_t k;

	if ((d = strndup(t, len)) == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	for (k = 0; k < len; k++)
		if (d[k] >= 'A' && d[k] <= 'Z')
			d[k] = (char)(d[k] - 'A' + 'a');
	l->v[l->n++] = d;
	if (!valid_domain(d, 1)) {
		snprintf(why, wl, "%s is not a valid domain name",
		    conf_quote(q, sizeof(q), t, len));
		return -1;
	}
	return 0;
}

/* How each list type makes room for its items, adds one, frees all. */
static const struct {
	int (*room)(void *, size_t);
	int (*add)(void *, const char *, size_t, char *, size_t);
	void (*release)(void *);
} lists[T_NTYPES] = {
	[T_NETS] = { nets_room, nets_add, free_nets },
	[T_DOMAINS] = { domains_room, domains_add, free_domains },
};

/* list_next - the next item of a list separated by white space and/or
 * commas, its length in *len; NULL at the end */
static const char *
list_next(const char **sp, size_t *len)
{
	const char *s = *sp + strspn(*sp, LIST_SEP);

	if (*s == '\0')
		return NULL;
	*len = strcspn(s, LIST_SEP);
	*sp = s + *len;
	return s;
}

/* list_count - the items of a list; (size_t)-1 and why if the range
 * does not allow that many */
static size_t
list_count(const char *s, const struct vspec *p, char *why, size_t wl)
{
	size_t n = 0, len;

	while (list_next(&s, &len) != NULL)
		n++;
	if ((long long)n >= p->min && (long long)n <= p->max)
		return n;
	if ((long long)n > p->max)
		snprintf(why, wl, "more than %lld items", p->max);
	else
		snprintf(why, wl, "fewer than %lld items", p->min);
	return (size_t)-1;
}

/* parse_list - T_NETS, T_DOMAINS: count the items, make room, add each
 * in order; on an error nothing is kept */
static int
parse_list(const struct vspec *p, const char *s, void *f, char *why,
    size_t wl)
{
	const char *t;
	size_t n, len;

	if ((n = list_count(s, p, why, wl)) == (size_t)-1)
		return -1;
	if (n > 0 && lists[p->type].room(f, n) == -1) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	while ((t = list_next(&s, &len)) != NULL)
		if (lists[p->type].add(f, t, len, why, wl) == -1) {
			lists[p->type].release(f);
			return -1;
		}
	return 0;
}

/* ---- printers and destructors ---- */

/* put_text - " text" with "$" doubled so that it reads back the same;
 * nothing for "" */
static void
put_text(FILE *fp, const char *s)
{
	if (s == NULL || *s == '\0')
		return;
	fputc(' ', fp);
	for (; *s != '\0'; s++) {
		if (*s == '$')
			fputc('$', fp);
		fputc(*s, fp);
	}
}

/* print_text - a text field */
static void
print_text(FILE *fp, const void *f)
{
	put_text(fp, *(char *const *)f);
}

/* print_level - a TLS level by its name */
static void
print_level(FILE *fp, const void *f)
{
	enum tlslevel v = *(const enum tlslevel *)f;

	put_text(fp, (size_t)v < NLEVELS ? tls_levels[v] : "?");
}

/* print_int - " 123" */
static void
print_int(FILE *fp, const void *f)
{
	fprintf(fp, " %lld", *(const long long *)f);
}

/* print_time - " 300s" */
static void
print_time(FILE *fp, const void *f)
{
	fprintf(fp, " %llds", *(const long long *)f);
}

/* print_bool - " yes" or " no" */
static void
print_bool(FILE *fp, const void *f)
{
	fputs(*(const int *)f ? " yes" : " no", fp);
}

/* print_nets - " net net ..." */
static void
print_nets(FILE *fp, const void *f)
{
	const struct netlist *l = f;
	char buf[80];
	size_t i;

	for (i = 0; i < l->n; i++) {
		net_format(&l->v[i], buf, sizeof(buf));
		fprintf(fp, " %s", buf);
	}
}

/* print_domains - " domain domain ..." */
static void
print_domains(FILE *fp, const void *f)
{
	const struct strlist *l = f;
	size_t i;

	for (i = 0; i < l->n; i++)
		fprintf(fp, " %s", l->v[i]);
}

/* free_text - free a text field */
static void
free_text(void *f)
{
	free(*(char **)f);
	*(char **)f = NULL;
}

/* free_none - numbers and levels own no memory */
static void
free_none(void *f)
{
	(void)f;
}

/* Each type's parser, printer and destructor. */
static const struct {
	int (*parse)(const struct vspec *, const char *, void *, char *,
	    size_t);
	void (*print)(FILE *, const void *);
	void (*release)(void *);
} ops[T_NTYPES] = {
	[T_STR] = { parse_text, print_text, free_text },
	[T_HOST] = { parse_text, print_text, free_text },
	[T_PATH] = { parse_text, print_text, free_text },
	[T_MAP] = { parse_text, print_text, free_text },
	[T_USER] = { parse_text, print_text, free_text },
	[T_FACILITY] = { parse_text, print_text, free_text },
	[T_UPROXY] = { parse_text, print_text, free_text },
	[T_SLEVEL] = { parse_level, print_level, free_none },
	[T_CLEVEL] = { parse_level, print_level, free_none },
	[T_INT] = { parse_int, print_int, free_none },
	[T_SIZE] = { parse_int, print_int, free_none },
	[T_TIME] = { parse_time, print_time, free_none },
	[T_BOOL] = { parse_bool, print_bool, free_none },
	[T_NETS] = { parse_list, print_nets, free_nets },
	[T_DOMAINS] = { parse_list, print_domains, free_domains },
};

/* conf_type_parse - the text of a value into its field (see header) */
int
conf_type_parse(const struct vspec *v, const char *s, void *f, char *why,
    size_t wl)
{
	return ops[v->type].parse(v, s, f, why, wl);
}

/* conf_type_print - " value" as the parser reads it */
void
conf_type_print(enum ptype t, FILE *fp, const void *f)
{
	ops[t].print(fp, f);
}

/* conf_type_free - free and clear a field */
void
conf_type_free(enum ptype t, void *f)
{
	ops[t].release(f);
}
