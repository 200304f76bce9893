/*
 * relay.c - the relay policy (see relay.h).
 *
 * TRUST: the configuration; the address has passed addr.c's parser.
 * When in doubt it refuses: an unknown or empty domain matches nothing.
 */
#include <string.h>
#include <strings.h>

#include "relay.h"

/* relay_allowed - the one rule for smap and smapd */
int
relay_allowed(const struct conf *cf, const struct addr *a, int trusted)
{
	if (a->at == 0)
		return 1;	/* <postmaster>: RFC 5321 4.5.1 */
	if (trusted)
		return 1;
	if (a->literal)
		return 0;
	return domain_match(&cf->relay_domains, addr_domain(a));
}

/* domain_match - is the domain in the list (".x" for subdomains of x)? */
int
domain_match(const struct strlist *l, const char *domain)
{
	size_t i, dl, il;

	if (l == NULL || domain == NULL)
		return 0;
	dl = strlen(domain);
	for (i = 0; i < l->n; i++) {
		il = strlen(l->v[i]);
		if (l->v[i][0] == '.') {
			if (dl > il &&
			    strcasecmp(domain + dl - il, l->v[i]) == 0)
				return 1;
		} else if (strcasecmp(domain, l->v[i]) == 0)
			return 1;
	}
	return 0;
}
