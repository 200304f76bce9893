/*
 * addr.c - strict parsing of SMTP envelope addresses (RFC 5321 paths).
 *
 * SUMMARY
 *	addr_parse() reads the path of a MAIL FROM or RCPT TO argument;
 *	addr_check_stored() re-checks one read back from a spool file.
 *	The accepted grammar is described in addr.h.
 *
 * SECURITY
 *	Trusts nothing of its input. Every byte may be chosen by the
 *	attacker, including NUL, CR, LF and 8-bit bytes, and the buffer
 *	given to addr_parse() is not NUL-terminated: no read goes past
 *	len, and the search for '>' stops after SMTP_LINE_MAX bytes.
 *	Nothing is allocated. struct addr is written only once every
 *	check has passed, so its text is printable ASCII without spaces,
 *	shell metacharacters, quotes or a leading - / | ~.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "addr.h"

#define LABEL_MAX	63	/* RFC 1035 2.3.4 */
#define LITERAL_MAX	64	/* longest literal body handed to inet_pton */

static const char E_SYNTAX[] = "Bad address syntax";
static const char E_LOCAL_LONG[] = "Local part too long";
static const char E_DOMAIN_LONG[] = "Domain name too long";
static const char E_PATH_LONG[] = "Path too long";
static const char E_QUOTED[] = "Quoted local parts are not accepted";
static const char E_UNSAFE[] = "Unsafe character in local part";
static const char E_LEADING[] = "Local part may not start with - / | or ~";
static const char E_DOMAIN[] = "Bad domain name";
static const char E_LITERAL[] = "Bad address literal";
static const char E_NULL[] = "Null sender not allowed here";
static const char E_NODOMAIN[] = "Domain name required";
static const char E_ROUTE[] = "Source route not allowed here";

/* Local-part characters besides letters, digits and the dot (addr.h). */
static const char LOCAL_SPECIALS[] = "'#*+-/=?^_{}~";

/* Set the reason and return -1. */
static int
fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -1;
}

/* tolower() for ASCII only, whatever the locale. */
static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Does p[0..n) equal the lowercase string lit, ignoring ASCII case? */
static int
case_equal(const char *p, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)p[i]) != lit[i])
			return 0;
	return 1;
}

/* May c appear in a local part (the dot aside)? */
static int
local_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr(LOCAL_SPECIALS, c) != NULL;
}

/* Is c a letter, digit or hyphen? */
static int
ldh_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/* Check a dot-atom local part p[0..n). */
static int
check_local(const char *p, size_t n, const char **why)
{
	size_t i;
	int baddot = 0;

	if (n == 0)
		return fail(why, E_SYNTAX);
	if (p[0] == '"')
		return fail(why, E_QUOTED);
	if (p[0] == '-' || p[0] == '/' || p[0] == '|' || p[0] == '~')
		return fail(why, E_LEADING);
	for (i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (i == 0 || i == n - 1 || p[i - 1] == '.')
				baddot = 1;
		} else if (p[i] == '"')
			return fail(why, E_QUOTED);
		else if (!local_char((unsigned char)p[i]))
			return fail(why, E_UNSAFE);
	}
	if (n > ADDR_LOCAL_MAX)
		return fail(why, E_LOCAL_LONG);
	if (baddot)
		return fail(why, E_SYNTAX);
	return 0;
}

/* Check dot-separated LDH labels p[0..n), no empty or trailing label. */
static int
check_labels(const char *p, size_t n, const char **why)
{
	size_t i, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '.') {
			if (!ldh_char((unsigned char)p[i]))
				return fail(why, E_DOMAIN);
			continue;
		}
		if (i == start || i - start > LABEL_MAX ||
		    p[start] == '-' || p[i - 1] == '-')
			return fail(why, E_DOMAIN);
		start = i + 1;
	}
	return 0;
}

/* Check an address literal "[a.b.c.d]" or "[IPv6:...]" at p[0..n). */
static int
check_literal(const char *p, size_t n, const char **why)
{
	char buf[LITERAL_MAX];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *okchars = "0123456789.";
	int af = AF_INET;
	size_t i;

	if (n < 2 || p[0] != '[' || p[n - 1] != ']')
		return fail(why, E_LITERAL);
	p++;
	n -= 2;
	if (n > 5 && case_equal(p, 5, "ipv6:")) {
		af = AF_INET6;
		okchars = "0123456789abcdefABCDEF:.";
		p += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(buf))
		return fail(why, E_LITERAL);
	for (i = 0; i < n; i++)
		if (p[i] == '\0' || strchr(okchars, p[i]) == NULL)
			return fail(why, E_LITERAL);
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (inet_pton(af, buf, bin) != 1)
		return fail(why, E_LITERAL);
	return 0;
}

/* Check a domain p[0..n): a host name, or a literal when literal_ok. */
static int
check_domain(const char *p, size_t n, int literal_ok, const char **why)
{
	if (n > ADDR_DOMAIN_MAX)
		return fail(why, E_DOMAIN_LONG);
	if (literal_ok && n > 0 && p[0] == '[')
		return check_literal(p, n, why);
	return check_labels(p, n, why);
}

/* Check a source route "@dom,@dom:" at p[0..n); *r gets its length. */
static int
skip_route(const char *p, size_t n, size_t *r, const char **why)
{
	size_t i = 0, j;

	for (;;) {
		if (i >= n || p[i] != '@')
			return fail(why, E_SYNTAX);
		for (j = i + 1; j < n && p[j] != ',' && p[j] != ':'; j++)
			continue;
		if (check_domain(p + i + 1, j - i - 1, 0, why) == -1)
			return -1;
		if (j == n)
			return fail(why, E_SYNTAX);
		if (p[j] == ':') {
			*r = j + 1;
			return 0;
		}
		i = j + 1;
	}
}

/* Check "local@domain" (or bare postmaster) at p[0..n); *at gets '@'. */
static int
check_mailbox(const char *p, size_t n, enum addr_kind kind, size_t *at,
    const char **why)
{
	const char *sep = memchr(p, '@', n);
	size_t ln = sep != NULL ? (size_t)(sep - p) : n;

	if (check_local(p, ln, why) == -1)
		return -1;
	if (sep == NULL) {
		if (kind != ADDR_RECIPIENT || !case_equal(p, n, "postmaster"))
			return fail(why, E_NODOMAIN);
		*at = 0;
		return 0;
	}
	if (check_domain(sep + 1, n - ln - 1, 1, why) == -1)
		return -1;
	*at = ln;
	return 0;
}

/* Fill *a from the checked mailbox p[0..n) whose '@' is at index at. */
static void
store(struct addr *a, const char *p, size_t n, size_t at)
{
	size_t i;

	memcpy(a->text, p, n);
	a->text[n] = '\0';
	a->at = at;
	a->literal = at > 0 && p[at + 1] == '[';
	if (a->literal) {
		if (n - at - 1 > 6 && case_equal(p + at + 2, 5, "ipv6:"))
			memcpy(a->text + at + 2, "IPv6:", 5);
		return;
	}
	for (i = at; i < n; i++)
		a->text[i] = (char)ascii_lower((unsigned char)a->text[i]);
}

/* The work of addr_parse(); a source route is refused unless route_ok. */
static int
parse_path(const char *s, size_t len, enum addr_kind kind, int route_ok,
    struct addr *a, const char **why)
{
	const char *in, *gt;
	size_t n, max, r = 0, at = 0;

	if (len == 0 || s[0] != '<')
		return fail(why, E_SYNTAX);
	max = len < SMTP_LINE_MAX ? len : SMTP_LINE_MAX;
	if ((gt = memchr(s + 1, '>', max - 1)) == NULL)
		return fail(why, E_SYNTAX);
	in = s + 1;
	n = (size_t)(gt - in);
	if (n == 0 && kind == ADDR_RECIPIENT)
		return fail(why, E_NULL);
	if (n > 0 && in[0] == '@') {
		if (!route_ok)
			return fail(why, E_ROUTE);
		if (skip_route(in, n, &r, why) == -1)
			return -1;
		if (r == n)
			return fail(why, E_SYNTAX);
	}
	if (n > 0 && check_mailbox(in + r, n - r, kind, &at, why) == -1)
		return -1;
	if (r > 0 && at == 0)
		return fail(why, E_SYNTAX);
	if (n > ADDR_PATH_MAX)
		return fail(why, E_PATH_LONG);
	store(a, in + r, n - r, at);
	return (int)(n + 2);
}

/* Parse the path at s[0..len); see addr.h. */
int
addr_parse(const char *s, size_t len, enum addr_kind kind, struct addr *a,
    const char **why)
{
	return parse_path(s, len, kind, 1, a, why);
}

/* Re-check a stored "<text>": no source route, nothing after '>'. */
int
addr_check_stored(const char *s, enum addr_kind kind, struct addr *a,
    const char **why)
{
	size_t len = strlen(s);
	int r;

	if ((r = parse_path(s, len, kind, 0, a, why)) == -1)
		return -1;
	if ((size_t)r != len) {
		a->text[0] = '\0';
		a->at = 0;
		a->literal = 0;
		return fail(why, E_SYNTAX);
	}
	return 0;
}

/* The domain part of a parsed address, or "" when there is none. */
const char *
addr_domain(const struct addr *a)
{
	return a->at > 0 ? a->text + a->at + 1 : "";
}

/* addr_bare - a stored path without its angle brackets */
char *
addr_bare(char *buf, size_t len, const char *path)
{
	size_t n = strlen(path);

	if (n >= 2 && path[0] == '<' && path[n - 1] == '>')
		snprintf(buf, len, "%.*s", (int)(n - 2), path + 1);
	else
		snprintf(buf, len, "%s", path);
	return buf;
}
