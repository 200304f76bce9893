/*
 * conf.c - read the configuration shared by smap and smapd.
 *
 * Postfix main.cf syntax: "key = value" logical lines, "#" comment
 * lines, blank lines ignored, a line starting with white space
 * continues the previous logical line. Every key is a row of params[]
 * below ({name, type, offset in struct conf, default, min, max}); the
 * type decides how the value is checked, stored, printed and freed.
 * To add a key: add a field to struct conf (conf.h) named like the key
 * and one P() row; nothing else.
 *
 * Loading is in three steps: the file is read into raw text per key
 * (later settings win), unset keys get their default text, then every
 * value has $name / ${name} expanded (against the other keys' final
 * expanded text; "$$" is a literal "$") and is parsed by its type.
 *
 * SECURITY: the file is written by root, but trusted only that far:
 * its size (CONF_FILE_MAX), logical lines (CONF_LINE_MAX), lists
 * (CONF_LIST_MAX), expanded values and expansion depth are capped,
 * numbers are parsed without overflow, control characters are refused
 * in text, and every value is checked against its type and range.
 * Errors never stop the parse: all are collected and reported in line
 * order, and the caller refuses to run if there is any. No global
 * mutable state; no DNS.
 *
 * Beyond single values, one setting is refused as a whole: mynetworks
 * with a network wide enough to make an open relay (IPv4 shorter than
 * /8, IPv6 shorter than /16, outside loopback, RFC 1918, unique-local
 * and link-local space) is an error unless allow_open_relay = yes.
 * conf_warnings() reports settings that are legal but risky.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/limits.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "bounds.h"
#include "net.h"
#include "paths.h"		/* generated: SMAP_SHLIB_DIR */

/* <limits.h> is shadowed by common/limits.h under -Icommon. */
_Static_assert(sizeof(long long) == sizeof(int64_t), "long long is 64 bits");
#define LL_MAX INT64_MAX

#define EXPAND_DEPTH 10		/* $a -> $b -> ... nesting */
#define QBUF 200		/* a quoted snippet in an error message */
#define QMAX 48			/* source bytes shown in a snippet */
#define ITEM_MAX 255		/* one list item */
#define SUGGEST_MAX 64		/* longest key we look for a near miss of */
#define BLANKS " \t\r\f\v"
#define LIST_SEP " \t\r\f\v,"
#define OPEN4 8			/* mynetworks: shorter is an open relay */
#define OPEN6 16
#define WIDE4 16		/* shorter draws a warning */
#define WIDE6 48
#define WARN_SIZE (100LL * 1024 * 1024)	/* message_size_limit */
#define WARN_TIMEOUT 600	/* smtpd_timeout, seconds */

enum ptype {
	T_STR,		/* any text without control characters */
	T_HOST,		/* a hostname: LDH labels and dots */
	T_PATH,		/* an absolute path */
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
	T_DOMAINS	/* a list of domains, ".domain" for subdomains */
};

struct param {
	const char *name;
	enum ptype type;
	size_t off;		/* of the field in struct conf */
	const char *def;	/* default text; NULL: gethostname() */
	long long min, max;	/* value; text: length; list: item count */
};

#define P(key, type, def, min, max) \
	{ #key, type, offsetof(struct conf, key), def, min, max }

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
	P(mynetworks, T_NETS, "127.0.0.0/8 [::1]/128", 0, CONF_LIST_MAX),
	P(relay_domains, T_DOMAINS, "", 0, CONF_LIST_MAX),
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
};

#define NPARAM (sizeof(params) / sizeof(params[0]))

typedef int parse_fn(const struct param *, const char *, void *, char *,
    size_t);

struct ptype_ops {
	parse_fn *parse;
	void (*print)(FILE *, const void *);
	void (*release)(void *);
	int (*valid)(const char *);	/* text types only */
	const char *bad;		/* text types: why valid() failed */
};

struct cerr {
	int line;
	size_t seq;
	char *msg;
};

enum { X_NEW, X_BUSY, X_DONE, X_FAILED };

struct ctx {
	const char *path;
	struct conf *c;
	char *raw[NPARAM];		/* text as set, before expansion */
	char *val[NPARAM];		/* text after expansion */
	unsigned char state[NPARAM];	/* of the expansion */
	int set_line[NPARAM];
	struct cerr *ev;		/* errors kept for the report */
	size_t en, ecap, ebytes, ebudget;
	int nerr;			/* all errors, kept or not */
	char line[CONF_LINE_MAX + 1];	/* the logical line being read */
	size_t llen;
	int lnum;			/* its first line; 0: none open */
	int lbad;			/* already reported, discard it */
};

static void conf_err(struct ctx *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static int cerr_cmp(const void *, const void *);
static int conf_report(struct ctx *, char *, size_t);
static const char *quote(char *, size_t, const char *, size_t);
static int is_blank(int);
static char *trim(char *);
static size_t edit_distance(const char *, const char *);
static const char *suggest(const char *);
static int param_find(const char *, size_t);
static int conf_open(struct ctx *, off_t *);
static char *conf_slurp(struct ctx *, size_t *);
static void conf_lines(struct ctx *, const char *, size_t);
static void line_physical(struct ctx *, const char *, size_t, int);
static void line_append(struct ctx *, const char *, size_t);
static void line_flush(struct ctx *);
static void line_parse(struct ctx *, char *, int);
static void set_default(struct ctx *, size_t);
static int expand(struct ctx *, size_t, int);
static int expand_text(struct ctx *, size_t, int, char *, size_t *);
static int expand_ref(struct ctx *, size_t, int, const char **, char *,
    size_t *);
static void conf_finish(struct ctx *);
static void conf_value(struct ctx *, size_t);
static int net_breadth(const struct net *);
static void relay_check(struct ctx *);
static void users_check(struct ctx *);
static int warn(char *, size_t, size_t *, const char *, int, const char *,
    ...) __attribute__((format(printf, 6, 7)));
static void ctx_init(struct ctx *, struct conf *, const char *, size_t);
static int ctx_done(struct ctx *, char *, size_t);
static int valid_key(const char *);
static int valid_domain(const char *, int);
static int valid_host(const char *);
static int valid_path(const char *);
static int valid_user(const char *);
static int valid_facility(const char *);
static int valid_slevel(const char *);
static int valid_clevel(const char *);
static int valid_uproxy(const char *);
static int valid_any(const char *);
static int range_check(const struct param *, long long, const char *, char *,
    size_t);
static int num_parse(const char *, long long *, const char **);
static const char *list_next(const char **, size_t *);
static size_t list_count(const char *, const struct param *, char *, size_t);
static parse_fn parse_text, parse_int, parse_time, parse_bool, parse_nets,
    parse_domains;
static void print_text(FILE *, const void *);
static void print_int(FILE *, const void *);
static void print_time(FILE *, const void *);
static void print_bool(FILE *, const void *);
static void print_nets(FILE *, const void *);
static void print_domains(FILE *, const void *);
static void free_text(void *);
static void free_none(void *);
static void free_nets(void *);
static void free_domains(void *);

static const struct ptype_ops ops[] = {
	[T_STR] = { parse_text, print_text, free_text, valid_any, "" },
	[T_HOST] = { parse_text, print_text, free_text, valid_host,
	    "is not a valid hostname" },
	[T_PATH] = { parse_text, print_text, free_text, valid_path,
	    "is not an absolute path" },
	[T_USER] = { parse_text, print_text, free_text, valid_user,
	    "is not a valid user name" },
	[T_FACILITY] = { parse_text, print_text, free_text, valid_facility,
	    "is not a syslog facility (use mail, daemon, user or "
	    "local0 to local7)" },
	[T_SLEVEL] = { parse_text, print_text, free_text, valid_slevel,
	    "is not a TLS level (use none, may or encrypt)" },
	[T_CLEVEL] = { parse_text, print_text, free_text, valid_clevel,
	    "is not a TLS level (use none, may, encrypt, verify or "
	    "fingerprint)" },
	[T_UPROXY] = { parse_text, print_text, free_text, valid_uproxy,
	    "is not a proxy protocol (use haproxy, or nothing)" },
	[T_INT] = { parse_int, print_int, free_none, NULL, NULL },
	[T_SIZE] = { parse_int, print_int, free_none, NULL, NULL },
	[T_TIME] = { parse_time, print_time, free_none, NULL, NULL },
	[T_BOOL] = { parse_bool, print_bool, free_none, NULL, NULL },
	[T_NETS] = { parse_nets, print_nets, free_nets, NULL, NULL },
	[T_DOMAINS] = { parse_domains, print_domains, free_domains, NULL,
	    NULL },
};

static const char *const facilities[] = {
	"mail", "daemon", "user", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7"
};

/* ---- errors ---- */

/* Count an error at a line (0: none) and keep it while err has room. */
static void
conf_err(struct ctx *x, int line, const char *fmt, ...)
{
	char msg[512];
	struct cerr *nv;
	va_list ap;

	x->nerr++;
	if (x->ebytes >= x->ebudget)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->en == x->ecap) {
		nv = reallocarray(x->ev, x->ecap * 2 + 8, sizeof(*nv));
		if (nv == NULL)
			return;
		x->ev = nv;
		x->ecap = x->ecap * 2 + 8;
	}
	if ((x->ev[x->en].msg = strdup(msg)) == NULL)
		return;
	x->ev[x->en].line = line;
	x->ev[x->en].seq = x->en;
	x->en++;
	x->ebytes += strlen(msg) + strlen(x->path) + 14;
}

/* Order errors by line, then by when they were found. */
static int
cerr_cmp(const void *a, const void *b)
{
	const struct cerr *ea = a, *eb = b;

	if (ea->line != eb->line)
		return ea->line < eb->line ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

/* Write the kept errors, whole lines only, into err; free them. */
static int
conf_report(struct ctx *x, char *err, size_t errlen)
{
	char ln[16];
	size_t i, used = 0;
	int n, full = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (x->en > 0)
		qsort(x->ev, x->en, sizeof(*x->ev), cerr_cmp);
	for (i = 0; i < x->en; i++) {
		snprintf(ln, sizeof(ln), ":%d", x->ev[i].line);
		if (err != NULL && !full) {
			n = snprintf(err + used, errlen - used, "%s%s: %s\n",
			    x->path, x->ev[i].line ? ln : "", x->ev[i].msg);
			if (n < 0 || (size_t)n >= errlen - used) {
				err[used] = '\0';
				full = 1;
			} else
				used += (size_t)n;
		}
		free(x->ev[i].msg);
	}
	free(x->ev);
	x->ev = NULL;
	x->en = x->ecap = 0;
	return x->nerr;
}

/* Quote n bytes of s as "..." with \xHH escapes, cut after QMAX bytes. */
static const char *
quote(char *dst, size_t len, const char *s, size_t n)
{
	size_t i, o = 0;
	unsigned char ch;

	dst[o++] = '"';
	for (i = 0; i < n && i < QMAX && o + 8 < len; i++) {
		ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			dst[o++] = (char)ch;
		else
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", ch);
	}
	if (i < n)
		o += (size_t)snprintf(dst + o, len - o, "...");
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* ---- small text helpers ---- */

/* Is ch white space (but not a newline)? */
static int
is_blank(int ch)
{
	return ch != '\0' && strchr(BLANKS, ch) != NULL;
}

/* Cut leading and trailing white space of s in place. */
static char *
trim(char *s)
{
	char *e;

	while (is_blank((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_blank((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Levenshtein distance of two short strings (<= SUGGEST_MAX). */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, sub;
	size_t prev[SUGGEST_MAX + 1], cur[SUGGEST_MAX + 1];

	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			cur[j] = prev[j] + 1 < cur[j - 1] + 1 ?
			    prev[j] + 1 : cur[j - 1] + 1;
			if (sub < cur[j])
				cur[j] = sub;
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

/* The key nearest to an unknown one, if within distance 2, or NULL. */
static const char *
suggest(const char *key)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	if (strlen(key) > SUGGEST_MAX)
		return NULL;
	for (i = 0; i < NPARAM; i++) {
		if (strlen(params[i].name) > SUGGEST_MAX)
			continue;
		if ((d = edit_distance(key, params[i].name)) < bestd) {
			bestd = d;
			best = params[i].name;
		}
	}
	return best;
}

/* Index of the key named by n bytes of name, or -1. */
static int
param_find(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < NPARAM; i++)
		if (strlen(params[i].name) == n &&
		    memcmp(params[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

/* ---- reading the file ---- */

/* Open the file; it must be a regular file within CONF_FILE_MAX. */
static int
conf_open(struct ctx *x, off_t *size)
{
	struct stat st;
	int fd;

	/* O_NONBLOCK: a FIFO must not hang us before fstat refuses it. */
	fd = open(x->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		conf_err(x, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1)
		conf_err(x, 0, "cannot stat: %s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		conf_err(x, 0, "not a regular file");
	else if (st.st_size > CONF_FILE_MAX)
		conf_err(x, 0, "file too large (more than %d bytes)",
		    CONF_FILE_MAX);
	else {
		*size = st.st_size;
		return fd;
	}
	close(fd);
	return -1;
}

/* Read the whole file into a NUL-terminated buffer, or NULL. */
static char *
conf_slurp(struct ctx *x, size_t *lenp)
{
	char *buf;
	size_t cap, n = 0;
	ssize_t r = 0;
	off_t size;
	int fd;

	if ((fd = conf_open(x, &size)) == -1)
		return NULL;
	cap = (size_t)size + 1;		/* one more byte: did it grow? */
	if ((buf = malloc(cap + 1)) == NULL) {
		conf_err(x, 0, "out of memory");
		close(fd);
		return NULL;
	}
	while (n < cap) {
		if ((r = read(fd, buf + n, cap - n)) == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (r == -1)
		conf_err(x, 0, "read error: %s", strerror(errno));
	else if (n == cap)
		conf_err(x, 0, "file changed while being read");
	if (r == -1 || n == cap) {
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
		*lenp = n;
	}
	close(fd);
	return buf;
}

/* Split the text into physical lines and feed them on. */
static void
conf_lines(struct ctx *x, const char *buf, size_t len)
{
	const char *nl;
	size_t off = 0, n;
	int ln = 0;

	while (off < len) {
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		line_physical(x, buf + off, n, ++ln);
		off += n + 1;
	}
	line_flush(x);
}

/* One physical line: skip, start a logical line or continue one. */
static void
line_physical(struct ctx *x, const char *p, size_t n, int ln)
{
	size_t a = 0, b = n;

	while (a < b && is_blank((unsigned char)p[a]))
		a++;
	while (b > a && is_blank((unsigned char)p[b - 1]))
		b--;
	if (a == b || p[a] == '#')
		return;
	if (a == 0) {
		line_flush(x);
		x->lnum = ln;
	} else if (x->lnum == 0) {
		conf_err(x, ln, "continuation line (starting with white "
		    "space) before any parameter");
		return;
	}
	if (!x->lbad && memchr(p + a, '\0', b - a) != NULL) {
		conf_err(x, ln, "NUL byte in line");
		x->lbad = 1;
	}
	line_append(x, p + a, b - a);
}

/* Add a trimmed piece to the logical line, joined with one space. */
static void
line_append(struct ctx *x, const char *p, size_t n)
{
	size_t sep = x->llen > 0;

	if (x->lbad)
		return;
	if (x->llen + sep + n > CONF_LINE_MAX) {
		conf_err(x, x->lnum, "line too long (more than %d bytes)",
		    CONF_LINE_MAX);
		x->lbad = 1;
		return;
	}
	if (sep)
		x->line[x->llen++] = ' ';
	memcpy(x->line + x->llen, p, n);
	x->llen += n;
}

/* Parse the logical line collected so far, if any, and reset. */
static void
line_flush(struct ctx *x)
{
	if (x->lnum != 0 && !x->lbad) {
		x->line[x->llen] = '\0';
		line_parse(x, x->line, x->lnum);
	}
	x->lnum = 0;
	x->llen = 0;
	x->lbad = 0;
}

/* "key = value": check the key and keep the raw value text. */
static void
line_parse(struct ctx *x, char *s, int ln)
{
	char *eq, *key, *val, q[QBUF];
	const char *near;
	int i;

	if ((eq = strchr(s, '=')) == NULL) {
		conf_err(x, ln, "missing \"=\" in %s",
		    quote(q, sizeof(q), s, strlen(s)));
		return;
	}
	*eq = '\0';
	key = trim(s);
	val = trim(eq + 1);
	if (!valid_key(key)) {
		conf_err(x, ln, "bad parameter name %s",
		    quote(q, sizeof(q), key, strlen(key)));
		return;
	}
	if ((i = param_find(key, strlen(key))) < 0) {
		near = suggest(key);
		conf_err(x, ln, "unknown parameter %s%s%s%s",
		    quote(q, sizeof(q), key, strlen(key)),
		    near ? "; did you mean \"" : "", near ? near : "",
		    near ? "\"?" : "");
		return;
	}
	free(x->raw[i]);
	if ((x->raw[i] = strdup(val)) == NULL)
		conf_err(x, ln, "out of memory");
	x->set_line[i] = ln;
}

/* ---- defaults, expansion, values ---- */

/* Give an unset key its default text (myhostname: gethostname()). */
static void
set_default(struct ctx *x, size_t i)
{
	char host[256];
	const char *def = params[i].def;

	if (def == NULL) {
		if (gethostname(host, sizeof(host)) == -1) {
			conf_err(x, 0, "%s: gethostname: %s; set %s",
			    params[i].name, strerror(errno), params[i].name);
			x->state[i] = X_FAILED;
			return;
		}
		host[sizeof(host) - 1] = '\0';
		def = host;
	}
	if ((x->raw[i] = strdup(def)) == NULL) {
		conf_err(x, 0, "out of memory");
		x->state[i] = X_FAILED;
	}
}

/* Expand key i's raw text into val[i] (once). Returns 0 or -1. The
 * expansion is built on the stack and kept at its own length: 49 keys
 * at CONF_LINE_MAX each made a smap session's heap 200 KB larger. */
static int
expand(struct ctx *x, size_t i, int depth)
{
	char out[CONF_LINE_MAX + 1];
	size_t n = 0;

	if (x->state[i] == X_DONE || x->state[i] == X_FAILED)
		return x->state[i] == X_DONE ? 0 : -1;
	x->state[i] = X_BUSY;
	if (expand_text(x, i, depth, out, &n) == -1) {
		x->state[i] = X_FAILED;
		return -1;
	}
	out[n] = '\0';
	if ((x->val[i] = strdup(out)) == NULL) {
		conf_err(x, x->set_line[i], "out of memory");
		x->state[i] = X_FAILED;
		return -1;
	}
	x->state[i] = X_DONE;
	return 0;
}

/* Copy raw[i] to out, expanding references; out holds CONF_LINE_MAX. */
static int
expand_text(struct ctx *x, size_t i, int depth, char *out, size_t *n)
{
	const char *s = x->raw[i];

	while (*s != '\0') {
		if (s[0] == '$' && s[1] != '$') {
			if (expand_ref(x, i, depth, &s, out, n) == -1)
				return -1;
			continue;
		}
		if (*n == CONF_LINE_MAX) {
			conf_err(x, x->set_line[i], "%s: value longer than "
			    "%d bytes after expansion", params[i].name,
			    CONF_LINE_MAX);
			return -1;
		}
		out[(*n)++] = *s;
		s += s[0] == '$' ? 2 : 1;
	}
	return 0;
}

/* Expand one "$name" or "${name}" at *sp of key i; advance *sp. */
static int
expand_ref(struct ctx *x, size_t i, int depth, const char **sp, char *out,
    size_t *n)
{
	const char *s = *sp + 1, *key = params[i].name;
	int brace = *s == '{', ln = x->set_line[i], j;
	size_t len = strspn(s + brace, "abcdefghijklmnopqrstuvwxyz0123456789_");
	char q[QBUF];

	if (len == 0 || (brace && s[1 + len] != '}')) {
		conf_err(x, ln, "%s: bad \"$\" syntax (use $name, ${name}, "
		    "or $$ for a literal \"$\")", key);
		return -1;
	}
	quote(q, sizeof(q), s + brace, len);
	*sp = s + brace + len + brace;
	if ((j = param_find(s + brace, len)) < 0)
		conf_err(x, ln, "%s: unknown parameter %s in value", key, q);
	else if (x->state[j] == X_BUSY)
		conf_err(x, ln, "%s: expansion of %s loops", key, q);
	else if (depth >= EXPAND_DEPTH)
		conf_err(x, ln, "%s: more than %d levels of expansion", key,
		    EXPAND_DEPTH);
	else if (expand(x, (size_t)j, depth + 1) == 0) {
		if (*n + strlen(x->val[j]) > CONF_LINE_MAX) {
			conf_err(x, ln, "%s: value longer than %d bytes after "
			    "expansion", key, CONF_LINE_MAX);
			return -1;
		}
		memcpy(out + *n, x->val[j], strlen(x->val[j]));
		*n += strlen(x->val[j]);
		return 0;
	}
	return -1;
}

/* Fill in defaults, then expand and parse every value. */
static void
conf_finish(struct ctx *x)
{
	size_t i;

	for (i = 0; i < NPARAM; i++)
		if (x->raw[i] == NULL && x->state[i] == X_NEW)
			set_default(x, i);
	for (i = 0; i < NPARAM; i++)
		if (expand(x, i, 0) == 0)
			conf_value(x, i);
	relay_check(x);
	users_check(x);
}

/* Parse key i's expanded text into its field of struct conf. */
static void
conf_value(struct ctx *x, size_t i)
{
	const struct param *p = &params[i];
	char why[400];

	why[0] = '\0';
	if (ops[p->type].parse(p, x->val[i], (char *)x->c + p->off, why,
	    sizeof(why)) == 0)
		return;
	if (x->set_line[i] != 0)
		conf_err(x, x->set_line[i], "%s: %s", p->name, why);
	else if (p->def == NULL || p->def[0] != '$')	/* else: that key's */
		conf_err(x, 0, "%s: %s (%s)", p->name, why, p->def == NULL ?
		    "from gethostname(); set it in the file" :
		    "the default");
}

/* Start a load: clear the struct and the context. */
static void
ctx_init(struct ctx *x, struct conf *c, const char *path, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	memset(x, 0, sizeof(*x));
	x->c = c;
	x->path = path;
	x->ebudget = errlen;
}

/* End a load: publish set_line, free scratch text, report errors. */
static int
ctx_done(struct ctx *x, char *err, size_t errlen)
{
	size_t i;

	if ((x->c->set_line = calloc(NPARAM, sizeof(int))) != NULL)
		memcpy(x->c->set_line, x->set_line, sizeof(x->set_line));
	else
		conf_err(x, 0, "out of memory");
	for (i = 0; i < NPARAM; i++) {
		free(x->raw[i]);
		free(x->val[i]);
	}
	return conf_report(x, err, errlen);
}

/* ---- validators ---- */

/* Is s a parameter name: [a-z0-9_]+? */
static int
valid_key(const char *s)
{
	return *s != '\0' &&
	    s[strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] == '\0';
}

/* LDH labels of 1..63 bytes joined by dots, <= 255 bytes; dot_ok
 * allows one leading dot. No trailing dot. */
static int
valid_domain(const char *s, int dot_ok)
{
	size_t lab = 0;
	const char *p;
	unsigned char ch;

	if (dot_ok && *s == '.')
		s++;
	if (*s == '\0' || strlen(s) > 255)
		return 0;
	for (p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (lab == 0 || lab > 63 || p[-1] == '-')
				return 0;
			if (*p == '\0')
				return 1;
			lab = 0;
			continue;
		}
		ch = (unsigned char)*p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch == '-' && lab > 0)))
			return 0;
		lab++;
	}
}

/* Is s a hostname? */
static int
valid_host(const char *s)
{
	return valid_domain(s, 0);
}

/* Is s an absolute path? (Control bytes are refused before.) */
static int
valid_path(const char *s)
{
	return s[0] == '/';
}

/* Is s a user name: [a-z_][a-z0-9_-]*? */
static int
valid_user(const char *s)
{
	return s[0] != '\0' && strchr("abcdefghijklmnopqrstuvwxyz_", s[0]) &&
	    s[strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-")] == '\0';
}

/* Is s one of the syslog facilities we accept? */
static int
valid_facility(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(s, facilities[i]) == 0)
			return 1;
	return 0;
}

/* A server TLS level. */
static int
valid_slevel(const char *s)
{
	return strcmp(s, "none") == 0 || strcmp(s, "may") == 0 ||
	    strcmp(s, "encrypt") == 0;
}

/* smtpd_upstream_proxy_protocol: off, or HAProxy's PROXY v1/v2. */
static int
valid_uproxy(const char *s)
{
	return *s == '\0' || strcmp(s, "haproxy") == 0;
}

/* A client TLS level; empty means "by the next hop" (see smapd(8)). */
static int
valid_clevel(const char *s)
{
	return *s == '\0' || valid_slevel(s) || strcmp(s, "verify") == 0 ||
	    strcmp(s, "fingerprint") == 0;
}

/* Any text is fine (control bytes are refused before). */
static int
valid_any(const char *s)
{
	(void)s;
	return 1;
}

/* ---- parsers ---- */

/* Check v against the key's range; unit is "" or "s". */
static int
range_check(const struct param *p, long long v, const char *unit, char *why,
    size_t wl)
{
	if (v < p->min)
		snprintf(why, wl, "%lld%s is below the minimum %lld%s", v,
		    unit, p->min, unit);
	else if (v > p->max)
		snprintf(why, wl, "%lld%s is above the maximum %lld%s", v,
		    unit, p->max, unit);
	else
		return 0;
	return -1;
}

/* Parse [-]digits without overflow; *end after the digits. 0: ok,
 * -1: no digits, -2: out of range. */
static int
num_parse(const char *s, long long *v, const char **end)
{
	int neg = *s == '-', d, over = 0;
	long long n = 0;

	s += neg;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = *s - '0';
		if (n > (LL_MAX - d) / 10)
			over = 1;
		else
			n = n * 10 + d;
	}
	*v = neg ? -n : n;
	*end = s;
	return over ? -2 : 0;
}

/* Text types: length range, no control bytes, then the type check. */
static int
parse_text(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	const struct ptype_ops *o = &ops[p->type];
	size_t len = strlen(s), i;
	char q[QBUF];

	quote(q, sizeof(q), s, len);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			break;
	if (len == 0 && p->min > 0)
		snprintf(why, wl, "an empty value is not allowed");
	else if ((long long)len < p->min || (long long)len > p->max)
		snprintf(why, wl, "%s must be %lld to %lld bytes long", q,
		    p->min, p->max);
	else if (i < len)
		snprintf(why, wl, "%s contains a control character", q);
	else if (len > 0 && !o->valid(s))
		snprintf(why, wl, "%s %s", q, o->bad);
	else if ((*(char **)f = strdup(s)) == NULL)
		snprintf(why, wl, "out of memory");
	else
		return 0;
	return -1;
}

/* T_INT, T_SIZE: a plain integer in range. */
static int
parse_int(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	const char *end = s;
	char q[QBUF];
	long long v = 0;
	int r;

	quote(q, sizeof(q), s, strlen(s));
	if ((r = num_parse(s, &v, &end)) == -1 || *end != '\0')
		snprintf(why, wl, "%s is not a number", q);
	else if (r == -2)
		snprintf(why, wl, "%s is out of range", q);
	else if (range_check(p, v, "", why, wl) == 0) {
		*(long long *)f = v;
		return 0;
	}
	return -1;
}

/* T_TIME: an integer with an optional unit s, m, h, d or w. */
static int
parse_time(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	static const char units[] = "smhdw";
	static const long long mul[] = { 1, 60, 3600, 86400, 604800 };
	const char *end = s, *u;
	char q[QBUF];
	long long v = 0;
	int r;

	quote(q, sizeof(q), s, strlen(s));
	r = num_parse(s, &v, &end);
	u = r != -1 && *end != '\0' ? strchr(units, *end) : units;
	if (r == -1 || u == NULL || (*end != '\0' && end[1] != '\0'))
		snprintf(why, wl, "%s is not a time (a number with an optional "
		    "unit s, m, h, d or w)", q);
	else if (r == -2 || v > LL_MAX / mul[u - units] ||
	    v < -LL_MAX / mul[u - units])
		snprintf(why, wl, "%s is out of range", q);
	else if (range_check(p, v * mul[u - units], "s", why, wl) == 0) {
		*(long long *)f = v * mul[u - units];
		return 0;
	}
	return -1;
}

/* T_BOOL: yes or no (any case). */
static int
parse_bool(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	char q[QBUF];

	(void)p;
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "no") == 0) {
		*(int *)f = strcasecmp(s, "yes") == 0;
		return 0;
	}
	snprintf(why, wl, "%s is not \"yes\" or \"no\"",
	    quote(q, sizeof(q), s, strlen(s)));
	return -1;
}

/* The next item of a list separated by white space and/or commas. */
static const char *
list_next(const char **sp, size_t *len)
{
	const char *s = *sp + strspn(*sp, LIST_SEP);

	if (*s == '\0')
		return NULL;
	*len = strcspn(s, LIST_SEP);
	*sp = s + *len;
	return s;
}

/* Count the items of a list; (size_t)-1 if more than the key allows. */
static size_t
list_count(const char *s, const struct param *p, char *why, size_t wl)
{
	size_t n = 0, len;

	while (list_next(&s, &len) != NULL)
		n++;
	if ((long long)n >= p->min && (long long)n <= p->max)
		return n;
	if ((long long)n > p->max)
		snprintf(why, wl, "more than %lld items", p->max);
	else
		snprintf(why, wl, "fewer than %lld items", p->min);
	return (size_t)-1;
}

/* T_NETS: CIDR networks, see net_parse(). */
static int
parse_nets(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	struct netlist *l = f;
	char item[ITEM_MAX + 1], q[QBUF];
	const char *t;
	size_t n, len;

	if ((n = list_count(s, p, why, wl)) == (size_t)-1)
		return -1;
	if (n > 0 && (l->v = calloc(n, sizeof(*l->v))) == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	while ((t = list_next(&s, &len)) != NULL) {
		memcpy(item, t, len < ITEM_MAX ? len : ITEM_MAX);
		item[len < ITEM_MAX ? len : ITEM_MAX] = '\0';
		if (len > ITEM_MAX || net_parse(item, &l->v[l->n]) == -1) {
			snprintf(why, wl, "%s is not a valid network "
			    "(address[/prefix], host bits clear)",
			    quote(q, sizeof(q), t, len));
			free_nets(l);
			return -1;
		}
		l->n++;
	}
	return 0;
}

/* T_DOMAINS: domain names, lowercased, ".domain" for subdomains. */
static int
parse_domains(const struct param *p, const char *s, void *f, char *why,
    size_t wl)
{
	struct strlist *l = f;
	const char *t;
	char q[QBUF], *d;
	size_t n, len, k;

	if ((n = list_count(s, p, why, wl)) == (size_t)-1)
		return -1;
	if (n > 0 && (l->v = calloc(n, sizeof(*l->v))) == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	while ((t = list_next(&s, &len)) != NULL) {
		if ((d = strndup(t, len)) == NULL) {
			snprintf(why, wl, "out of memory");
			free_domains(l);
			return -1;
		}
		for (k = 0; k < len; k++)
			if (d[k] >= 'A' && d[k] <= 'Z')
				d[k] = (char)(d[k] - 'A' + 'a');
		l->v[l->n++] = d;
		if (!valid_domain(d, 1)) {
			snprintf(why, wl, "%s is not a valid domain name",
			    quote(q, sizeof(q), t, len));
			free_domains(l);
			return -1;
		}
	}
	return 0;
}

/* ---- printers and destructors ---- */

/* " text" with "$" doubled so that it reads back the same. */
static void
print_text(FILE *fp, const void *f)
{
	const char *s = *(char *const *)f;

	if (s == NULL || *s == '\0')
		return;
	fputc(' ', fp);
	for (; *s != '\0'; s++) {
		if (*s == '$')
			fputc('$', fp);
		fputc(*s, fp);
	}
}

/* " 123" */
static void
print_int(FILE *fp, const void *f)
{
	fprintf(fp, " %lld", *(const long long *)f);
}

/* " 300s" */
static void
print_time(FILE *fp, const void *f)
{
	fprintf(fp, " %llds", *(const long long *)f);
}

/* " yes" or " no" */
static void
print_bool(FILE *fp, const void *f)
{
	fputs(*(const int *)f ? " yes" : " no", fp);
}

/* " net net ..." */
static void
print_nets(FILE *fp, const void *f)
{
	const struct netlist *l = f;
	char buf[80];
	size_t i;

	for (i = 0; i < l->n; i++) {
		net_format(&l->v[i], buf, sizeof(buf));
		fprintf(fp, " %s", buf);
	}
}

/* " domain domain ..." */
static void
print_domains(FILE *fp, const void *f)
{
	const struct strlist *l = f;
	size_t i;

	for (i = 0; i < l->n; i++)
		fprintf(fp, " %s", l->v[i]);
}

/* Free a text field. */
static void
free_text(void *f)
{
	free(*(char **)f);
	*(char **)f = NULL;
}

/* Numbers own no memory. */
static void
free_none(void *f)
{
	(void)f;
}

/* Free a network list. */
static void
free_nets(void *f)
{
	struct netlist *l = f;

	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Free a domain list. */
static void
free_domains(void *f)
{
	struct strlist *l = f;
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- relay policy and warnings ---- */

enum { NET_OK, NET_WIDE, NET_OPEN };

/* How much of the internet a mynetworks entry lets relay: NET_OPEN
 * (IPv4 shorter than /OPEN4, IPv6 shorter than /OPEN6), NET_WIDE
 * (shorter than /WIDE4, /WIDE6) or NET_OK. Loopback, RFC 1918,
 * unique-local and link-local networks are never wide. */
static int
net_breadth(const struct net *n)
{
	static const struct net local[] = {
		{ AF_INET, { 127 }, 8 },
		{ AF_INET, { 10 }, 8 },
		{ AF_INET, { 172, 16 }, 12 },
		{ AF_INET, { 192, 168 }, 16 },
		{ AF_INET6, { 0xfc }, 7 },
		{ AF_INET6, { 0xfe, 0x80 }, 10 },
	};
	struct net one;
	struct netlist l = { &one, 1 };
	size_t i;
	int v6 = n->family == AF_INET6;

	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		one = local[i];
		if (n->prefix >= one.prefix && net_match(&l, n->family, n->addr))
			return NET_OK;
	}
	if (n->prefix < (v6 ? OPEN6 : OPEN4))
		return NET_OPEN;
	return n->prefix < (v6 ? WIDE6 : WIDE4) ? NET_WIDE : NET_OK;
}

/* An open relay by mynetworks is an error unless allow_open_relay says
 * it is meant (a value that does not parse says nothing). */
static void
relay_check(struct ctx *x)
{
	const struct netlist *l = &x->c->mynetworks;
	int ln = x->set_line[param_find("mynetworks", strlen("mynetworks"))];
	char net[80];
	size_t i;

	if (x->c->allow_open_relay)
		return;
	for (i = 0; i < l->n; i++) {
		if (net_breadth(&l->v[i]) != NET_OPEN)
			continue;
		net_format(&l->v[i], net, sizeof(net));
		conf_err(x, ln, "mynetworks: %s would make this host an open "
		    "relay (IPv4 networks must be /%d or longer, IPv6 /%d or "
		    "longer); set allow_open_relay = yes if you mean it", net,
		    OPEN4, OPEN6);
	}
	ln = x->set_line[param_find("relay_domains", strlen("relay_domains"))];
	for (i = 0; i < x->c->relay_domains.n; i++)	/* ".com" */
		if (x->c->relay_domains.v[i][0] == '.' &&
		    strchr(x->c->relay_domains.v[i] + 1, '.') == NULL)
			conf_err(x, ln, "relay_domains: \"%s\" is every domain "
			    "under a top-level domain: this host would relay for "
			    "anyone to all of them; set allow_open_relay = yes if you "
			    "mean it", x->c->relay_domains.v[i]);
}

/* smap and smapd must run as two users: smap may never reach smapd's
 * queue (the ids behind the names are checked by layout_users()). */
static void
users_check(struct ctx *x)
{
	int a = x->set_line[param_find("mail_owner", strlen("mail_owner"))];
	int b = x->set_line[param_find("smapd_user", strlen("smapd_user"))];

	if (x->c->mail_owner == NULL || x->c->smapd_user == NULL ||
	    strcmp(x->c->mail_owner, x->c->smapd_user) != 0)
		return;
	conf_err(x, a > b ? a : b, "mail_owner and smapd_user are both %s: "
	    "smap and smapd must run as different users (defaults: smap and "
	    "smapd), or a compromised smap could rewrite smapd's queue",
	    x->c->mail_owner);
}

/* Append "path:line: warning: ..." to buf when the whole line fits
 * (*used = len once one did not). Returns 1, the count of a warning. */
static int
warn(char *buf, size_t len, size_t *used, const char *path, int line,
    const char *fmt, ...)
{
	char msg[512], ln[16] = "";
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ln, sizeof(ln), ":%d", line);
	if (buf == NULL || *used >= len)
		return 1;
	n = snprintf(buf + *used, len - *used, "%s%s: warning: %s\n", path, ln,
	    msg);
	if (n < 0 || (size_t)n >= len - *used) {
		buf[*used] = '\0';
		*used = len;
	} else
		*used += (size_t)n;
	return 1;
}

/* conf_line - the line where a key was set, 0 for a default */
int
conf_line(const struct conf *c, const char *key)
{
	int i = param_find(key, strlen(key));

	return i >= 0 && c->set_line != NULL ? c->set_line[i] : 0;
}

/* ---- the interface ---- */

/* Load defaults, then the file; collect every error. See conf.h. */
int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct ctx *x;
	char *buf;
	size_t len = 0;
	int n;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(c, 0, sizeof(*c));
	if ((x = malloc(sizeof(*x))) == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: out of memory\n", path);
		return 1;
	}
	ctx_init(x, c, path, err != NULL ? errlen : 0);
	if ((buf = conf_slurp(x, &len)) != NULL)
		conf_lines(x, buf, len);
	free(buf);
	conf_finish(x);
	n = ctx_done(x, err, errlen);
	free(x);
	return n;
}

/* Defaults only. Returns the number of errors: 0 unless gethostname()
 * gives no valid hostname or memory runs out. */
int
conf_defaults(struct conf *c)
{
	struct ctx *x;
	int n;

	memset(c, 0, sizeof(*c));
	if ((x = malloc(sizeof(*x))) == NULL)
		return 1;
	ctx_init(x, c, "defaults", 0);
	conf_finish(x);
	n = ctx_done(x, NULL, 0);
	free(x);
	return n;
}

/* Free every field; safe on a zeroed or half-loaded struct. */
void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NPARAM; i++)
		ops[params[i].type].release((char *)c + params[i].off);
	free(c->set_line);
	memset(c, 0, sizeof(*c));
}

/* Print "key = value" lines in table order; see conf.h. */
void
conf_print(FILE *fp, const struct conf *c, int all)
{
	size_t i;

	for (i = 0; i < NPARAM; i++) {
		if (!all && (c->set_line == NULL || c->set_line[i] == 0))
			continue;
		fprintf(fp, "%s =", params[i].name);
		ops[params[i].type].print(fp, (const char *)c + params[i].off);
		fputc('\n', fp);
	}
}

/* Risky but legal settings, one warning line each; see conf.h. */
int
conf_warnings(const struct conf *c, const char *path, char *buf, size_t len)
{
	const struct netlist *l = &c->mynetworks;
	const char *d;
	char net[80];
	size_t i, used = 0;
	int n = 0, b, ln = conf_line(c, "mynetworks");

	if (buf != NULL && len > 0)
		buf[0] = '\0';
	for (i = 0; i < l->n; i++) {
		if ((b = net_breadth(&l->v[i])) == NET_OK)
			continue;
		net_format(&l->v[i], net, sizeof(net));
		if (b == NET_OPEN)
			n += warn(buf, len, &used, path, ln, "mynetworks: %s "
			    "makes this host an open relay (allow_open_relay = "
			    "yes)", net);
		else
			n += warn(buf, len, &used, path, ln, "mynetworks: %s is "
			    "wider than a /%d of public addresses: every host in "
			    "it may relay", net, l->v[i].family == AF_INET6 ?
			    WIDE6 : WIDE4);
	}
	ln = conf_line(c, "relay_domains");
	for (i = 0; i < c->relay_domains.n; i++) {
		d = c->relay_domains.v[i];
		if (strchr(d + 1, '.') != NULL)
			continue;
		if (d[0] == '.')
			n += warn(buf, len, &used, path, ln, "relay_domains: "
			    "\"%s\" accepts mail from anyone for every domain "
			    "under the top-level domain \"%s\"", d, d + 1);
		else
			n += warn(buf, len, &used, path, ln, "relay_domains: "
			    "\"%s\" is a single label (a top-level domain?), "
			    "not a mail domain", d);
	}
	if (c->message_size_limit > WARN_SIZE)
		n += warn(buf, len, &used, path, conf_line(c,
		    "message_size_limit"), "message_size_limit: %lld is above "
		    "100 MB (%lld): the spool and the backend must hold "
		    "messages that large", c->message_size_limit, WARN_SIZE);
	if (c->smtpd_timeout > WARN_TIMEOUT)
		n += warn(buf, len, &used, path, conf_line(c, "smtpd_timeout"),
		    "smtpd_timeout: %llds is above %ds: an idle client holds a "
		    "session (and a connection slot) that long",
		    c->smtpd_timeout, WARN_TIMEOUT);
	return n;
}
