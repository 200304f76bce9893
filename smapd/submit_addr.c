/*
 * submit_addr.c - address lists and senders for smap-sendmail (see
 * submit_addr.h).
 *
 * GRAMMAR (RFC 5322 3.4, read loosely only where it cannot hurt): a
 * list is mailboxes and groups separated by "," (";" is taken as a
 * separator too); a mailbox is "phrase <addr-spec>", whose phrase is
 * dropped, or a bare addr-spec; a group "name: mailbox, ...;" gives its
 * members. Comments, which nest, are dropped. Quoted strings are kept
 * as they are, so that addr_parse() refuses a quoted local part instead
 * of this file guessing what it means. White space inside a bare
 * addr-spec is allowed around "@" and "." (the obsolete syntax);
 * anywhere else it means words without an address ("John Doe"), which
 * is an error: a display name never becomes a recipient.
 *
 * TRUST: the caller is a local program whose input is trusted to mean
 * what it says but not to be well formed. Every address is bounded by
 * ADDR_PATH_MAX, comment nesting by ALIST_DEPTH_MAX and the set by its
 * max; every address passes addr_parse() before it is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "submit_addr.h"

#define COMPLETE_MAX (ADDR_PATH_MAX + ADDR_DOMAIN_MAX + 4)

/* One mailbox being read. */
struct mbox {
	char plain[ADDR_PATH_MAX];	/* outside <>, comments dropped */
	char angle[ADDR_PATH_MAX];	/* inside <> */
	size_t np, na;
	int angled;		/* a <...> was seen */
	int plong, along;	/* plain or angle did not fit */
	int phrase;		/* plain has words with space between */
	int gap;		/* white space since the last plain byte */
};

/* The scanner's state over one list. */
struct scan {
	int depth;		/* comment nesting */
	int quoted, esc, inangle;
	const char *where;	/* "To:", "argument", for reasons */
	struct mbox m;
};

/* put - one byte of the mailbox, inside <> or outside */
static void
put(struct mbox *m, int inangle, char c)
{
	if (inangle) {
		if (m->na < sizeof(m->angle))
			m->angle[m->na++] = c;
		else
			m->along = 1;
		return;
	}
	if (m->gap && m->np > 0 && c != '@' && c != '.' &&
	    m->plain[m->np - 1] != '@' && m->plain[m->np - 1] != '.')
		m->phrase = 1;
	m->gap = 0;
	if (m->np < sizeof(m->plain))
		m->plain[m->np++] = c;
	else
		m->plong = 1;
}

/* special - a byte with a meaning outside quotes and comments: 1 when a
 * mailbox ends here, -1 when the list cannot be read, else 0 */
static int
special(struct scan *sc, char c)
{
	switch (c) {
	case '(':
		sc->depth = 1;
		sc->m.gap = sc->m.np > 0;
		return 0;
	case '<':
		if (sc->m.angled)
			return -1;
		sc->inangle = sc->m.angled = 1;
		return 0;
	case '>':
		if (!sc->inangle)
			return -1;
		sc->inangle = 0;
		return 0;
	case ':':		/* a group's name ends: not an address */
		if (sc->m.angled)
			return -1;
		memset(&sc->m, 0, sizeof(sc->m));
		return 0;
	case ',':
	case ';':
		return 1;
	case ' ':
	case '\t':
	case '\r':
	case '\n':
		sc->m.gap = sc->m.np > 0;
		return 0;
	default:
		put(&sc->m, 0, c);
		return 0;
	}
}

/* scan_byte - the next byte of a list: 1 mailbox ends, -1 bad, else 0 */
static int
scan_byte(struct scan *sc, char c)
{
	if (sc->esc) {
		sc->esc = 0;
		if (sc->depth == 0)
			put(&sc->m, sc->inangle, c);
		return 0;
	}
	if (sc->depth > 0) {
		if (c == '\\')
			sc->esc = 1;
		else if (c == '(' && ++sc->depth > ALIST_DEPTH_MAX)
			return -1;
		else if (c == ')')
			sc->depth--;
		return 0;
	}
	if (c == '"' || sc->quoted) {
		if (c == '\\')
			sc->esc = 1;
		else if (c == '"')
			sc->quoted = !sc->quoted;
		put(&sc->m, sc->inangle, c);
		return 0;
	}
	if (sc->inangle && c != '>' && c != '<') {
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			put(&sc->m, 1, c);	/* source routes keep their , and : */
		return 0;
	}
	return special(sc, c);
}

/* set_add - text into the set unless it is there; -1 full, -2 no memory */
static int
set_add(struct rcptset *set, const char *text)
{
	char **v;
	size_t i;

	for (i = 0; i < set->n; i++)
		if (strcmp(set->v[i], text) == 0)
			return 0;
	if (set->n >= set->max)
		return -1;
	if (set->n % 64 == 0) {
		if ((v = realloc(set->v, (set->n + 64) * sizeof(*v))) == NULL)
			return -2;
		set->v = v;
	}
	if ((set->v[set->n] = strdup(text)) == NULL)
		return -2;
	set->n++;
	return 0;
}

/* complete - "<s>" or "<s@domain>" into buf; its length, or -1 */
static int
complete(const char *s, size_t n, const char *domain, char *buf)
{
	int k;

	if (n > ADDR_PATH_MAX || memchr(s, '\0', n) != NULL)
		return -1;
	if (n == 0 || memchr(s, '@', n) != NULL)
		k = snprintf(buf, COMPLETE_MAX, "<%.*s>", (int)n, s);
	else
		k = snprintf(buf, COMPLETE_MAX, "<%.*s@%s>", (int)n, s, domain);
	return k < 0 || k >= COMPLETE_MAX ? -1 : k;
}

/* checked - s completed and read by addr_parse(); 0, or -1 and *why */
static int
checked(const char *s, size_t n, const char *domain, enum addr_kind kind,
    struct addr *a, const char **why)
{
	char buf[COMPLETE_MAX];
	int k, used;

	*why = "Bad address syntax";
	if ((k = complete(s, n, domain, buf)) < 0) {
		*why = n > ADDR_PATH_MAX ? "Path too long" : *why;
		return -1;
	}
	used = addr_parse(buf, (size_t)k, kind, a, why);
	if (used >= 0 && used != k)
		*why = "Bad address syntax";
	return used == k ? 0 : -1;
}

/* shown - the mailbox's own text, trimmed, escaped, for a reason */
static const char *
shown(const char *raw, size_t n, char *buf, size_t len)
{
	while (n > 0 && (*raw == ' ' || *raw == '\t' || *raw == '\r' ||
	    *raw == '\n' || *raw == ','))
		raw++, n--;
	while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t' ||
	    raw[n - 1] == '\r' || raw[n - 1] == '\n' || raw[n - 1] == ','))
		n--;
	return log_esc(buf, len, raw, n);
}

/* finish - the mailbox sc holds is complete (raw: its text in the
 * list): check it, add it, reset */
static int
finish(struct rcptset *set, struct scan *sc, const char *raw, size_t rawlen,
    const char *domain, char *why, size_t whylen)
{
	struct mbox *m = &sc->m;
	const char *s = m->angled ? m->angle : m->plain, *reason = NULL;
	size_t n = m->angled ? m->na : m->np;
	char esc[128];
	struct addr a;
	int rc = 0;

	if (!m->angled && m->np == 0 && !m->plong)
		return 0;	/* an empty element: "a,,b", a group's end */
	if (m->angled ? m->along : m->plong)
		reason = "Path too long";
	else if (!m->angled && m->phrase)
		reason = "a name without an address";
	else if (m->angled && n == 0)
		reason = "an empty address";
	else if (checked(s, n, domain, ADDR_RECIPIENT, &a, &reason) == 0)
		reason = NULL;
	if (reason != NULL) {
		snprintf(why, whylen, "%s %s: %s", sc->where,
		    shown(raw, rawlen, esc, sizeof(esc)), reason);
		rc = -1;
	} else if ((rc = set_add(set, a.text)) == -1)
		snprintf(why, whylen, "more than %zu recipients", set->max);
	else if (rc == -2)
		snprintf(why, whylen, "out of memory");
	memset(m, 0, sizeof(*m));
	return rc;
}

/* alist_add - every address of a list into the set */
int
alist_add(struct rcptset *set, const char *where, const char *s,
    size_t len, const char *domain, char *why, size_t whylen)
{
	struct scan sc;
	size_t i, start = 0;
	int rc;

	memset(&sc, 0, sizeof(sc));
	sc.where = where;
	for (i = 0; i < len; i++) {
		if ((rc = scan_byte(&sc, s[i])) < 0)
			goto bad;
		if (rc == 0)
			continue;
		if ((rc = finish(set, &sc, s + start, i - start, domain, why,
		    whylen)) < 0)
			return rc;
		start = i + 1;
	}
	if (sc.depth > 0 || sc.quoted || sc.esc || sc.inangle)
		goto bad;
	return finish(set, &sc, s + start, len - start, domain, why, whylen);
bad:
	snprintf(why, whylen, "%s cannot be read as an address list "
	    "(unbalanced ( \" or <, or nested too deep)", where);
	return -1;
}

/* sender_parse - a -f argument into an address */
int
sender_parse(const char *arg, const char *domain, struct addr *a,
    const char **why)
{
	size_t n = strlen(arg);

	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>') {
		arg++;
		n -= 2;
	}
	return checked(arg, n, domain, ADDR_SENDER, a, why);
}

/* rcptset_free - the set's strings */
void
rcptset_free(struct rcptset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		free(set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}
