/*
 * bounds.h - the hard bounds shared by smap and smapd.
 *
 * Every read of untrusted bytes is capped by one of these. They are
 * compile-time limits; the tunable ones (message size, recipients,
 * timeouts) live in the configuration and are range-checked there.
 */
#ifndef SMAP_BOUNDS_H
#define SMAP_BOUNDS_H

/* One SMTP command line including CRLF. RFC 5321 4.5.3.1.4 says 512;
 * SIZE= and BODY= parameters extend it (RFC 1869), so allow 1000. */
#define SMTP_LINE_MAX 1000

/* RFC 5321 4.5.3.1: domain and whole path. Its local part limit of 64
 * is not enforced: the same section asks for implementations that
 * impose no limits where possible, and real senders exceed it (SRS and
 * VERP senders, BATV, encoded X.400 addresses). A local part is bounded
 * by the path alone, for senders and recipients alike. */
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
#define ADDR_LOCAL_MAX ADDR_PATH_MAX

/* A HELO/EHLO argument. */
#define HELO_MAX 255

/* A queue id: hex digits only. */
#define SPOOL_ID_MAX 31

/* One envelope record in a spool file, including its LF. */
#define SPOOL_LINE_MAX 1024

/* Configuration: file size, one logical line, one list. */
#define CONF_FILE_MAX (1024 * 1024)
#define CONF_LINE_MAX 8192
#define CONF_LIST_MAX 1024

/* Upper bound of default_destination_concurrency_limit: smapd's
 * delivery processes in one queue run. */
#define CONCURRENCY_MAX 100

/* Upper bound of smtpd_recipient_limit; also what smapd accepts. */
#define RCPT_LIMIT_MAX 10000

/* Entries looked at in one scan of a spool directory. */
#define SCAN_MAX 100000

/* A SHA-256 fingerprint as Postfix prints it, "AB:CD:...", and its NUL. */
#define TLS_FP_LEN 96

#endif
