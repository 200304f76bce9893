/*
 * sasl.h - smapd's SMTP AUTH credentials: smtp_sasl_password_maps.
 *
 * The file holds lines "nexthop username:password"; "#" starts a
 * comment line, blank lines are skipped. nexthop is written as in
 * default_transport without "smtp:" or "lmtp:": "[192.0.2.1]:587",
 * "mail.example.com:25", "mail.example.com" (any port). The password
 * is the rest of the line after the first ":" (inner spaces kept,
 * trailing white space dropped).
 *
 * SECURITY: the file is refused unless it is a regular file (not a
 * symbolic link) owned by the reading process's effective uid (smapd's
 * user) with mode 0600 or stricter, at most SASL_FILE_MAX bytes, lines
 * at most SASL_LINE_MAX bytes, each line well formed. A refusal names
 * the file and the line, never a password. Every buffer that held the
 * file is wiped before it is freed; the caller wipes what it got with
 * sasl_wipe().
 */
#ifndef SMAPD_SASL_H
#define SMAPD_SASL_H

#include <stddef.h>

#define SASL_FILE_MAX	65536
#define SASL_LINE_MAX	1024

struct sasl_cred {
	char user[SASL_LINE_MAX];
	char pass[SASL_LINE_MAX];
};

/*
 * Credentials for the first of keys[0..nkeys) that has a line (keys
 * compare without regard to case). Returns 1 found (cr filled), 0 none
 * (cr wiped), or -1 with a reason in why when the file is refused.
 */
int sasl_lookup(const char *path, const char *const *keys, size_t nkeys,
    struct sasl_cred *cr, char *why, size_t whylen);

/* Forget credentials (explicit_bzero). */
void sasl_wipe(struct sasl_cred *cr);

#endif
