/*
 * addr.h - strict parsing of SMTP envelope addresses (RFC 5321 paths).
 *
 * Input is attacker-controlled bytes from a MAIL FROM or RCPT TO line
 * (smap) or from a spool file (smapd). Output is an address that is
 * safe to hand to any backend: printable ASCII, no shell or sendmail
 * metacharacters, no option-like or program/file-like local part.
 * Anything else is refused, with a short reason for the SMTP reply.
 *
 * Accepted:  "<" [source-route ":"] local "@" domain ">"
 *            "<>"            (MAIL only: the null sender)
 *            "<postmaster>"  (RCPT only, any case: RFC 5321 4.5.1)
 * local:     dot-atom of the characters A-Z a-z 0-9 and ' # * + - / = ? ^ _ { } ~
 *            no leading, trailing or double dot; not starting with - / | ~
 *            no longer than the path allows (RFC 5321's 64 is not
 *            enforced: bounds.h says why). Quoted strings are refused. So are
 *            ! % $ ` | & ; \ and everything outside printable ASCII:
 *            bang paths and the percent hack never reach a backend.
 * domain:    LDH labels of 1..63 octets separated by single dots, no
 *            leading/trailing hyphen, no trailing dot, at most 255
 *            octets, stored in lowercase; or an address literal
 *            [a.b.c.d] or [IPv6:...] checked with inet_pton.
 * route:     "@dom,@dom:" is checked and then dropped (RFC 5321 says a
 *            server SHOULD ignore it); the final mailbox is what counts.
 * path:      at most 256 octets between the angle brackets.
 */
#ifndef SMAP_ADDR_H
#define SMAP_ADDR_H

#include <stddef.h>
#include "bounds.h"

enum addr_kind { ADDR_SENDER, ADDR_RECIPIENT };

struct addr {
	/* "local@domain", "" for the null sender, "postmaster" for the
	 * bare postmaster recipient. */
	char text[ADDR_PATH_MAX + 1];
	size_t at;		/* index of '@' in text; 0 when there is none */
	int literal;		/* domain is an address literal */
};

/*
 * Parse a path at s (len bytes, not NUL-terminated), which must start
 * with '<'. On success returns the number of bytes consumed (through
 * the '>'), and fills *a. On failure returns -1 and sets *why to a
 * static, printable reason ("Bad address syntax", "Local part too
 * long", ...), suitable for "501 5.1.3 <why>".
 */
int addr_parse(const char *s, size_t len, enum addr_kind kind,
    struct addr *a, const char **why);

/*
 * Re-check a stored address as written by smap: "<text>" exactly as
 * the envelope holds it (with the angle brackets). Same rules as
 * addr_parse, except that a source route is refused (smap never
 * stores one) and the whole string must be consumed. Returns 0 or -1.
 */
int addr_check_stored(const char *s, enum addr_kind kind, struct addr *a,
    const char **why);

/* The domain part of a parsed address, or "" when there is none. */
const char *addr_domain(const struct addr *a);

/* A stored path without its angle brackets ("<a@b>" is "a@b", "<>" is
 * ""; a string without them is copied as it is) into buf, cut short to
 * len - 1 bytes. Returns buf. */
char *addr_bare(char *buf, size_t len, const char *path);

#endif
