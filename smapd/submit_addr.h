/*
 * submit_addr.h - addresses as a local program hands them to
 * smap-sendmail: command-line arguments, -f, and the To/Cc/Bcc fields
 * read with -t.
 *
 * An argument or a header field is an RFC 5322 address list: display
 * names, quoted strings, comments and groups are allowed around the
 * addresses and dropped. Each address found is completed with
 * "@domain" when it has no domain (cron's "root") and must then pass
 * addr_parse() (common/addr.h): whatever reaches smap is a path smap
 * itself would accept. The set of recipients is deduplicated and
 * bounded.
 */
#ifndef SMAPD_SUBMIT_ADDR_H
#define SMAPD_SUBMIT_ADDR_H

#include <stddef.h>
#include "addr.h"

#define ALIST_DEPTH_MAX 32	/* nested comments in one address list */

struct rcptset {
	char **v;		/* "local@domain", each malloc'd */
	size_t n;		/* how many */
	size_t max;		/* at most this many (smtpd_recipient_limit) */
};

/*
 * Add every address of the list s (len bytes, not NUL-terminated) to
 * set, unless it is there already. where names the source in a reason
 * ("To:", "argument"). Returns 0; -1 when an address cannot be read or
 * is refused by addr_parse(), or the set would grow beyond max; or -2
 * when out of memory. On -1 and -2 why holds a printable reason.
 */
int alist_add(struct rcptset *set, const char *where, const char *s,
    size_t len, const char *domain, char *why, size_t whylen);

/*
 * A sender as -f or -r give it: "" or "<>" is the null sender, else an
 * address with or without angle brackets, completed with "@domain".
 * Returns 0 and fills *a, or -1 with a reason in *why.
 */
int sender_parse(const char *arg, const char *domain, struct addr *a,
    const char **why);

/* Free the set's strings (the set may be used again). */
void rcptset_free(struct rcptset *set);

#endif
