/*
 * conf.h - the configuration shared by smap and smapd.
 *
 * One file in Postfix main.cf syntax: "key = value", "#" comments on
 * their own line, continuation lines starting with white space, $key
 * and ${key} expanded in string values. A table in conf.c gives every
 * key a type, a default and a range; an unknown key, a bad value or a
 * value out of range is an error naming the file and line. The file is
 * trusted only as far as root wrote it: its size, line length and list
 * lengths are capped all the same.
 *
 * Where it is done: conf_read.c reads the file and expands $name
 * (conf_load, conf_defaults); conf.c is the table of keys (conf_line,
 * conf_print, conf_free); conf_types.c checks, parses, prints and
 * frees each type of value; conf_relay.c refuses settings that make an
 * open relay and says which are risky (conf_warnings).
 */
#ifndef SMAP_CONF_H
#define SMAP_CONF_H

#include <stdio.h>
#include "conf_types.h"
#include "net.h"

struct conf {
	/* identity and logging */
	char *myhostname;		/* default: gethostname() */
	char *smtpd_banner;		/* "$myhostname ESMTP" */
	char *syslog_name;		/* "smap" */
	char *syslog_facility;		/* "mail" */
	char *maillog_file;		/* "": syslog */
	/* spool and jail */
	char *spool_directory;		/* "/var/spool/smap" */
	char *mail_owner;		/* "smap" */
	long long queue_minfree;	/* bytes, 20480000 */
	long long queue_minfree_inodes;	/* 1000 free inodes */
	char *spool_fsync;		/* "file+directory" | "file" (layout.h) */
	/* relay policy */
	struct netlist mynetworks;	/* "127.0.0.0/8 [::1]/128" */
	struct strlist relay_domains;	/* "" */
	char *relay_recipient_maps;	/* "": every local part is valid */
	char *recipient_delimiter;	/* "": no address extensions */
	int allow_open_relay;		/* no: a too wide mynetworks is an error */
	/* limits */
	long long message_size_limit;	/* 10240000 */
	long long smtpd_recipient_limit;	/* 1000 */
	long long smtpd_recipient_overshoot_limit;	/* 1000, as Postfix */
	long long smtpd_message_limit;	/* 100 messages per session */
	long long smtpd_hard_error_limit;	/* 20 */
	long long smtpd_junk_command_limit;	/* 100 */
	long long hopcount_limit;	/* 50 */
	/* times, in seconds */
	long long smtpd_timeout;	/* 300s */
	long long smtpd_session_deadline;	/* 3600s */
	long long smtpd_greet_pause;	/* 0s */
	/* a load balancer in front (PROXY protocol) */
	char *smtpd_upstream_proxy_protocol;	/* "": off; haproxy */
	long long smtpd_upstream_proxy_timeout;	/* 5s */
	struct netlist smtpd_upstream_proxy_networks;	/* loopback */
	/* per-client limits across sessions (smap/anvil.c); 0 = off */
	long long smtpd_client_connection_count_limit;	/* 50 at once */
	long long smtpd_client_connection_rate_limit;	/* 0 per time unit */
	long long smtpd_client_message_rate_limit;	/* 0 */
	long long smtpd_client_recipient_rate_limit;	/* 0 */
	long long anvil_rate_time_unit;	/* 60s */
	struct netlist smtpd_client_event_limit_exceptions;	/* $mynetworks */
	/* smapd: who, where to, how often */
	char *smapd_user;		/* "smapd": never mail_owner */
	char *default_transport;	/* "maildir:/var/mail/smap/" */
	char *transport_maps;		/* "": default_transport for all */
	char *smtp_fallback_relay;	/* "": no fallback next hops */
	char *sendmail_path;		/* "/usr/sbin/sendmail" */
	char *smtp_helo_name;		/* "$myhostname" */
	long long queue_run_delay;	/* 300s */
	long long default_destination_concurrency_limit;	/* 20, as Postfix */
	long long minimal_backoff_time;	/* 300s */
	long long maximal_backoff_time;	/* 4000s */
	long long maximal_queue_lifetime;	/* 5d */
	long long delay_warning_time;	/* 0s: off */
	long long quarantine_lifetime;	/* 7d: quarantine/ expires */
	int quarantine_double_bounces;	/* no: logged and discarded */
	long long smtp_connect_timeout;	/* 30s */
	long long smtp_helo_timeout;	/* 300s: greeting, EHLO, MAIL, RCPT */
	long long smtp_data_done_timeout;	/* 600s: DATA, message, its reply */
	/* review: smapq report and check */
	char *report_recipient;		/* "postmaster": smap-report.service */
	char *metrics_textfile;		/* "": no node_exporter textfile */
	int smtp_send_xforward_command;	/* yes: XFORWARD when offered */
	/* TLS: smap as a server */
	char *shlib_directory;		/* where smap-tls.so is: SHLIBDIR */
	enum tlslevel smtpd_tls_security_level;	/* none | may | encrypt */
	char *smtpd_tls_cert_file;	/* "" */
	char *smtpd_tls_key_file;	/* "$smtpd_tls_cert_file" */
	char *smtpd_tls_CAfile;		/* "": for client certificates */
	int smtpd_tls_wrappermode;	/* no: STARTTLS; yes: TLS from the start */
	long long smtpd_starttls_timeout;	/* 60s: the handshake */
	char *relay_clientcerts;	/* SHA-256 fingerprints that may relay */
	/* TLS: smapd as a client */
	enum tlslevel smtp_tls_security_level;	/* "": by the next hop */
	char *smtp_tls_CAfile;		/* "" */
	char *smtp_tls_CApath;		/* "" */
	char *smtp_tls_cert_file;	/* "": no client certificate */
	char *smtp_tls_key_file;	/* "$smtp_tls_cert_file" */
	char *smtp_tls_fingerprint_cert_match;	/* SHA-256 pins */
	char *smtp_sasl_password_maps;	/* "": no AUTH; else a file */
	long long smtp_starttls_timeout;	/* 300s */
	/* smap-sendmail */
	char *submit_server;		/* "[127.0.0.1]:25": the local smap */
	/* bookkeeping for -n: line where each key was set, 0 if default */
	int *set_line;
};

/* Load defaults, then the file, into a struct that holds nothing (zeroed
 * or after conf_free). Returns the number of errors (0: ok).
 * Each error is one line "file:line: reason" appended to err (which is
 * always NUL-terminated; later errors are dropped when it is full). */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);

/* Defaults only (for -d and for tests). Returns the number of errors
 * (non-zero only when gethostname() gives no valid name, or no memory). */
int conf_defaults(struct conf *c);

void conf_free(struct conf *c);

/* Settings that are legal but risky (mynetworks wider than a /16 of
 * public addresses, a top-level domain in relay_domains, a
 * message_size_limit above 100 MB, an smtpd_timeout above 600s): one
 * line "path:line: warning: reason" each into buf (NUL-terminated,
 * whole lines only; NULL: count only). Returns the number of warnings.
 * For "-t" (printed on stderr, exit status still 0) and smapd's start. */
int conf_warnings(const struct conf *c, const char *path, char *buf,
    size_t len);

/* The line of the file where key was set; 0 when it has its default. */
int conf_line(const struct conf *c, const char *key);

/* Print "key = value" lines: every key (all = 1) or only those set in
 * the file (all = 0), in table order, values as the parser reads them. */
void conf_print(FILE *fp, const struct conf *c, int all);

#endif
