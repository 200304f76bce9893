/*
 * log.h - Postfix-shaped logging to syslog (facility mail) or to a file.
 *
 * log_open() must run before the jail: inside the chroot /dev/log and
 * the log file are out of reach. Callers pass attacker-supplied strings
 * through log_esc() first; log_msg() itself trusts its arguments.
 */
#ifndef SMAP_LOG_H
#define SMAP_LOG_H

#include <stddef.h>
#include <syslog.h>

/* ident: "smap/smtpd"; facility: a syslog facility name ("mail");
 * file: "" for syslog, "/dev/stderr", or a path opened for append.
 * Returns 0, or -1 with errno set when the file cannot be opened. */
int log_open(const char *ident, const char *facility, const char *file);

/* Open the log file again, at the same descriptor (after logrotate
 * renamed it); 0, or -1 with errno (the old file is still written). */
int log_reopen(void);

void log_msg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One line under another ident ("smap/smtp", "smap/bounce": the agent
 * it speaks for), or the one log_open() was given when ident is NULL;
 * later lines are not changed. */
void log_msg_as(const char *ident, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, "warning: " __VA_ARGS__)
#define log_fatal(...) log_msg(LOG_CRIT, "fatal: " __VA_ARGS__)
#define log_info_as(id, ...) log_msg_as((id), LOG_INFO, __VA_ARGS__)
#define log_warn_as(id, ...) log_msg_as((id), LOG_WARNING, "warning: " \
	__VA_ARGS__)

/* Copy src (len bytes) into dst as printable ASCII: bytes outside
 * 0x20..0x7e and the backslash become \xHH. Always NUL-terminates;
 * truncates (ending in "...") when dst is too small. Returns dst. */
char *log_esc(char *dst, size_t dstlen, const char *src, size_t len);

/* c as the four bytes "\\xNN" at dst (no NUL); 4 */
size_t log_hex(char *dst, unsigned char c);

/* Syslog facility code by name, or -1. */
int log_facility(const char *name);

#endif
