/*
 * conf_types.h - the types a configuration value can have, as the key
 * table (conf.c) and the reader (conf_read.c) use them.
 *
 * A type says how a value's text is checked, what it is stored as in
 * its field of struct conf, how it is printed back and freed. The
 * functions are pure: no I/O but the printer's, no global state.
 */
#ifndef SMAP_CONF_TYPES_H
#define SMAP_CONF_TYPES_H

#include <stddef.h>
#include <stdio.h>

/* A TLS security level, weakest first: code compares numbers, never
 * names (">= TLS_ENCRYPT": TLS is required). smtpd_tls_security_level
 * is none, may or encrypt; smtp_tls_security_level any of them, and ""
 * (TLS_NEXTHOP) lets the next hop decide: verify for a host name, may
 * for an [address] or a socket (smapd(8)). Named in conf_types.c. */
enum tlslevel {
	TLS_NEXTHOP,		/* "" */
	TLS_NONE,
	TLS_MAY,
	TLS_ENCRYPT,
	TLS_VERIFY,
	TLS_FPRINT		/* "fingerprint" */
};

struct strlist {
	char **v;
	size_t n;
};

enum ptype {
	T_STR,		/* any text without control characters */
	T_HOST,		/* a hostname: LDH labels and dots */
	T_PATH,		/* an absolute path */
	T_MAP,		/* a lookup table, type:/path (map.h) */
	T_USER,		/* a user name */
	T_FACILITY,	/* a syslog facility name */
	T_SLEVEL,	/* smtpd_tls_security_level: none, may, encrypt */
	T_CLEVEL,	/* smtp_tls_security_level: "", none ... fingerprint */
	T_UPROXY,	/* smtpd_upstream_proxy_protocol: "" or haproxy */
	T_INT,		/* an integer */
	T_SIZE,		/* bytes, an integer */
	T_TIME,		/* seconds; units s m h d w */
	T_BOOL,		/* yes or no */
	T_NETS,		/* a list of CIDR networks */
	T_DOMAINS,	/* a list of domains, ".domain" for subdomains */
	T_NTYPES	/* the number of types */
};

/* What a value must be: its type and a range, of the number for
 * numbers, of the length for text (a TLS level is text here), of the
 * item count for lists. */
struct vspec {
	enum ptype type;
	long long min, max;
};

#define QBUF 200		/* a quoted snippet in an error message */

/* Parse text s as v says into the field at f (a char *, long long,
 * int, enum tlslevel, struct netlist or struct strlist, by type).
 * Returns 0, or -1 with the reason in why (nothing is left to free). */
int conf_type_parse(const struct vspec *v, const char *s, void *f,
    char *why, size_t wl);

/* Print the field at f as " value", in the syntax the parser reads;
 * nothing for an empty text. */
void conf_type_print(enum ptype t, FILE *fp, const void *f);

/* Free what the field at f holds and clear it. */
void conf_type_free(enum ptype t, void *f);

/* Quote n bytes of s as "..." with \xHH escapes, cut after 48 bytes,
 * into dst (QBUF bytes are enough). Returns dst. */
const char *conf_quote(char *dst, size_t len, const char *s, size_t n);

#endif
