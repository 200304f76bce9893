/*
 * conf.c - the table of configuration keys: one row per key, and what
 * is done over the whole table (printing for -n and -d, freeing, the
 * line a key was set on).
 *
 * Every key is a P() row of params[] below: {name, type, default,
 * min, max}, its field in struct conf found by the name. The type
 * (conf_types.h) decides how the value is checked, stored, printed and
 * freed; min and max bound the number, the text's length or the list's
 * item count. To add a key: add a field to struct conf (conf.h) named
 * like the key and one P() row; nothing else. Keys use Postfix's names
 * and are printed in the table's order.
 *
 * Reading the file and expanding $name is conf_read.c's; the relay
 * policy's checks of the settings are conf_relay.c's.
 *
 * TRUST: the table is the program's; the text it is given to parse is
 * not (conf_types.c checks it).
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "bounds.h"
#include "conf_keys.h"
#include "conf_types.h"
#include "map.h"
#include "paths.h"		/* generated: SMAP_SHLIB_DIR */

struct param {
	const char *name;
	struct vspec v;		/* type and range */
	size_t off;		/* of the field in struct conf */
	const char *def;	/* default text; NULL: gethostname() */
};

#define P(key, type, def, min, max) \
	{ #key, { type, min, max }, offsetof(struct conf, key), def }

/* Every key, in the order conf_print() shows them. */
static const struct param params[] = {
	P(myhostname, T_HOST, NULL, 1, 255),
	P(smtpd_banner, T_STR, "$myhostname ESMTP", 1, 500),
	P(syslog_name, T_STR, "smap", 1, 64),
	P(syslog_facility, T_FACILITY, "mail", 1, 16),
	P(maillog_file, T_PATH, "", 0, PATH_MAX - 1),
	P(spool_directory, T_PATH, "/var/spool/smap", 1, PATH_MAX - 1),
	P(mail_owner, T_USER, "smap", 1, 32),
	P(queue_minfree, T_SIZE, "20480000", 0, 1LL << 40),
	P(queue_minfree_inodes, T_INT, "1000", 0, 1LL << 32),
	P(spool_fsync, T_STR, "file+directory", 1, 32),
	P(mynetworks, T_NETS, "127.0.0.0/8 [::1]/128", 0, CONF_LIST_MAX),
	P(relay_domains, T_DOMAINS, "", 0, CONF_LIST_MAX),
	P(relay_recipient_maps, T_MAP, "", 0, MAP_SPEC_MAX),
	P(recipient_delimiter, T_STR, "", 0, 8),
	P(allow_open_relay, T_BOOL, "no", 0, 1),
	P(message_size_limit, T_SIZE, "10240000", 1024, INT32_MAX),
	P(smtpd_recipient_limit, T_INT, "1000", 1, RCPT_LIMIT_MAX),
	P(smtpd_recipient_overshoot_limit, T_INT, "1000", 0, 100000),
	P(smtpd_message_limit, T_INT, "100", 1, 10000),
	P(smtpd_hard_error_limit, T_INT, "20", 1, 1000),
	P(smtpd_junk_command_limit, T_INT, "100", 1, 10000),
	P(hopcount_limit, T_INT, "50", 1, 1000),
	P(smtpd_timeout, T_TIME, "300s", 1, 3600),
	P(smtpd_session_deadline, T_TIME, "3600s", 10, 86400),
	P(smtpd_greet_pause, T_TIME, "0s", 0, 60),
	P(smtpd_upstream_proxy_protocol, T_UPROXY, "", 0, 16),
	P(smtpd_upstream_proxy_timeout, T_TIME, "5s", 1, 3600),
	P(smtpd_upstream_proxy_networks, T_NETS, "127.0.0.0/8 [::1]/128", 0,
	    CONF_LIST_MAX),
	P(smtpd_client_connection_count_limit, T_INT, "50", 0, 1000000),
	P(smtpd_client_connection_rate_limit, T_INT, "0", 0, 1000000),
	P(smtpd_client_message_rate_limit, T_INT, "0", 0, 1000000),
	P(smtpd_client_recipient_rate_limit, T_INT, "0", 0, 1000000),
	P(anvil_rate_time_unit, T_TIME, "60s", 1, 86400),
	P(smtpd_client_event_limit_exceptions, T_NETS, "$mynetworks", 0,
	    CONF_LIST_MAX),
	P(smapd_user, T_USER, "smapd", 1, 32),
	P(default_transport, T_STR, "maildir:/var/mail/smap/", 1, 4000),
	P(transport_maps, T_MAP, "", 0, MAP_SPEC_MAX),
	P(smtp_fallback_relay, T_STR, "", 0, 4000),
	P(sendmail_path, T_PATH, "/usr/sbin/sendmail", 1, PATH_MAX - 1),
	P(smtp_helo_name, T_STR, "$myhostname", 0, 255),
	P(queue_run_delay, T_TIME, "300s", 1, 86400),
	P(default_destination_concurrency_limit, T_INT, "20", 1, CONCURRENCY_MAX),
	P(minimal_backoff_time, T_TIME, "300s", 1, 86400),
	P(maximal_backoff_time, T_TIME, "4000s", 1, 7 * 86400),
	P(maximal_queue_lifetime, T_TIME, "5d", 0, 100 * 86400),
	P(delay_warning_time, T_TIME, "0s", 0, 100 * 86400),
	P(quarantine_lifetime, T_TIME, "7d", 1, 365 * 86400),
	P(quarantine_double_bounces, T_BOOL, "no", 0, 1),
	P(smtp_connect_timeout, T_TIME, "30s", 1, 3600),
	P(smtp_helo_timeout, T_TIME, "300s", 1, 3600),
	P(smtp_data_done_timeout, T_TIME, "600s", 1, 7200),
	P(report_recipient, T_STR, "postmaster", 1, 255),
	P(metrics_textfile, T_PATH, "", 0, PATH_MAX - 1),
	P(smtp_send_xforward_command, T_BOOL, "yes", 0, 1),
	P(shlib_directory, T_PATH, SMAP_SHLIB_DIR, 1, PATH_MAX - 200),
	P(smtpd_tls_security_level, T_SLEVEL, "none", 1, 16),
	P(smtpd_tls_cert_file, T_PATH, "", 0, PATH_MAX - 1),
	P(smtpd_tls_key_file, T_PATH, "$smtpd_tls_cert_file", 0, PATH_MAX - 1),
	P(smtpd_tls_CAfile, T_PATH, "", 0, PATH_MAX - 1),
	P(smtpd_tls_wrappermode, T_BOOL, "no", 0, 1),
	P(smtpd_starttls_timeout, T_TIME, "60s", 1, 3600),
	P(relay_clientcerts, T_STR, "", 0, 65536),
	P(smtp_tls_security_level, T_CLEVEL, "", 0, 16),
	P(smtp_tls_CAfile, T_PATH, "", 0, PATH_MAX - 1),
	P(smtp_tls_CApath, T_PATH, "", 0, PATH_MAX - 1),
	P(smtp_tls_cert_file, T_PATH, "", 0, PATH_MAX - 1),
	P(smtp_tls_key_file, T_PATH, "$smtp_tls_cert_file", 0, PATH_MAX - 1),
	P(smtp_tls_fingerprint_cert_match, T_STR, "", 0, 65536),
	P(smtp_sasl_password_maps, T_PATH, "", 0, PATH_MAX - 1),
	P(smtp_starttls_timeout, T_TIME, "300s", 1, 3600),
	P(submit_server, T_STR, "[127.0.0.1]:25", 1, 300),
};

#define NPARAM (sizeof(params) / sizeof(params[0]))

/* conf_nkeys - the number of keys */
size_t
conf_nkeys(void)
{
	return NPARAM;
}

/* conf_key_find - the index of the key named by n bytes of name, or -1 */
int
conf_key_find(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < NPARAM; i++)
		if (strlen(params[i].name) == n &&
		    memcmp(params[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

/* conf_key_name - key i's name */
const char *
conf_key_name(size_t i)
{
	return params[i].name;
}

/* conf_key_default - key i's default text; NULL: gethostname() */
const char *
conf_key_default(size_t i)
{
	return params[i].def;
}

/* conf_key_parse - text as key i's value into its field of c */
int
conf_key_parse(struct conf *c, size_t i, const char *text, char *why,
    size_t wl)
{
	return conf_type_parse(&params[i].v, text, (char *)c + params[i].off,
	    why, wl);
}

/* conf_line - the line where a key was set, 0 for a default */
int
conf_line(const struct conf *c, const char *key)
{
	int i = conf_key_find(key, strlen(key));

	return i >= 0 && c->set_line != NULL ? c->set_line[i] : 0;
}

/* conf_print - "key = value" lines in table order; see conf.h */
void
conf_print(FILE *fp, const struct conf *c, int all)
{
	size_t i;

	for (i = 0; i < NPARAM; i++) {
		if (!all && (c->set_line == NULL || c->set_line[i] == 0))
			continue;
		fprintf(fp, "%s =", params[i].name);
		conf_type_print(params[i].v.type, fp,
		    (const char *)c + params[i].off);
		fputc('\n', fp);
	}
}

/* conf_free - free every field; safe on a zeroed or half-loaded struct */
void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NPARAM; i++)
		conf_type_free(params[i].v.type, (char *)c + params[i].off);
	free(c->set_line);
	memset(c, 0, sizeof(*c));
}
