/*
 * t_conf.c - unit tests of conf*.c: golden configs, bad values, bounds,
 * the sample configuration, and domain_match().
 *
 * Usage: t_conf [golden-dir [sample-conf]], by default "tests/golden"
 * and "conf/smap.conf". For each golden-dir/conf/NAME.cf, NAME.out is
 * the exact conf_print(all = 1) text of a good file or the exact error
 * text of a bad one, with "golden-dir/conf/" cut from file names and
 * the system hostname shown as @HOSTNAME@ where it is the default; an
 * optional NAME.set is the conf_print(all = 0) text. Temporary files
 * go to /tmp and are named TMP in expected errors. Prints TAP.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "relay.h"
#include "paths.h"
#include "bounds.h"
#include "tap.h"

#define ERRMAX 65536

struct bad {
	const char *line;	/* the whole file, one line */
	const char *why;	/* the error after "TMP:1: " */
};

static char *print_conf(const struct conf *, int);
static char *replace(const char *, const char *, const char *);
static char *host_normalise(char *, const struct conf *);
static int count_lines(const char *);
static int load_text(const char *, size_t, struct conf *, char **);
static void golden_roundtrip(const char *, const struct conf *);
static void golden_case(const char *, const char *);
static int is_cf(const struct dirent *);
static void test_golden(const char *);
static void test_bad_values(void);
static void test_long_values(void);
static void test_files(const char *);
static void test_bounds(void);
static void test_expand_bounds(void);
static void test_errbuf(void);
static void test_defaults(void);
static void test_domain_match(void);
static char *uncomment(const char *);
static char *grep_key(const char *, const char *);
static void test_sample(const char *);

static const struct bad bad[] = {
	{ "myhostname = foo_bar",
	  "myhostname: \"foo_bar\" is not a valid hostname" },
	{ "myhostname = -foo.example",
	  "myhostname: \"-foo.example\" is not a valid hostname" },
	{ "myhostname = foo-.example",
	  "myhostname: \"foo-.example\" is not a valid hostname" },
	{ "myhostname = foo..example",
	  "myhostname: \"foo..example\" is not a valid hostname" },
	{ "myhostname = foo.example.",
	  "myhostname: \"foo.example.\" is not a valid hostname" },
	{ "myhostname = .foo.example",
	  "myhostname: \".foo.example\" is not a valid hostname" },
	{ "myhostname = host name",
	  "myhostname: \"host name\" is not a valid hostname" },
	{ "myhostname = "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
	  "myhostname: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" "
	  "is not a valid hostname" },
	{ "myhostname =", "myhostname: an empty value is not allowed" },
	{ "smtpd_banner =", "smtpd_banner: an empty value is not allowed" },
	{ "smtpd_banner = a\001b",
	  "smtpd_banner: \"a\\x01b\" contains a control character" },
	{ "syslog_name = a\tb",
	  "syslog_name: \"a\\x09b\" contains a control character" },
	{ "syslog_facility = mial", "syslog_facility: \"mial\" is not a "
	  "syslog facility (use mail, daemon, user or local0 to local7)" },
	{ "syslog_facility = local8", "syslog_facility: \"local8\" is not a "
	  "syslog facility (use mail, daemon, user or local0 to local7)" },
	{ "syslog_facility = MAIL", "syslog_facility: \"MAIL\" is not a "
	  "syslog facility (use mail, daemon, user or local0 to local7)" },
	{ "maillog_file = var/log/smap.log",
	  "maillog_file: \"var/log/smap.log\" is not an absolute path" },
	{ "spool_directory =",
	  "spool_directory: an empty value is not allowed" },
	{ "spool_directory = spool",
	  "spool_directory: \"spool\" is not an absolute path" },
	{ "mail_owner = Smap",
	  "mail_owner: \"Smap\" is not a valid user name" },
	{ "mail_owner = 1smap",
	  "mail_owner: \"1smap\" is not a valid user name" },
	{ "mail_owner = smap user",
	  "mail_owner: \"smap user\" is not a valid user name" },
	{ "mail_owner = abcdefghijklmnopqrstuvwxyz0123456",
	  "mail_owner: \"abcdefghijklmnopqrstuvwxyz0123456\" must be 1 to 32 "
	  "bytes long" },
	{ "queue_minfree = 10k", "queue_minfree: \"10k\" is not a number" },
	{ "queue_minfree = -1", "queue_minfree: -1 is below the minimum 0" },
	{ "queue_minfree = 1099511627777", "queue_minfree: 1099511627777 is "
	  "above the maximum 1099511627776" },
	{ "message_size_limit = 5",
	  "message_size_limit: 5 is below the minimum 1024" },
	{ "message_size_limit = 2147483648", "message_size_limit: 2147483648 "
	  "is above the maximum 2147483647" },
	{ "message_size_limit = 9223372036854775807",
	  "message_size_limit: 9223372036854775807 is above the maximum "
	  "2147483647" },
	{ "message_size_limit = 9223372036854775808", "message_size_limit: "
	  "\"9223372036854775808\" is out of range" },
	{ "message_size_limit = 99999999999999999999999", "message_size_limit: "
	  "\"99999999999999999999999\" is out of range" },
	{ "message_size_limit = -9223372036854775807", "message_size_limit: "
	  "-9223372036854775807 is below the minimum 1024" },
	{ "message_size_limit = 1 024",
	  "message_size_limit: \"1 024\" is not a number" },
	{ "message_size_limit = +2048",
	  "message_size_limit: \"+2048\" is not a number" },
	{ "message_size_limit = 0x400",
	  "message_size_limit: \"0x400\" is not a number" },
	{ "message_size_limit = 10m",
	  "message_size_limit: \"10m\" is not a number" },
	{ "message_size_limit =", "message_size_limit: \"\" is not a number" },
	{ "smtpd_recipient_limit = 0",
	  "smtpd_recipient_limit: 0 is below the minimum 1" },
	{ "smtpd_recipient_limit = 10001",
	  "smtpd_recipient_limit: 10001 is above the maximum 10000" },
	{ "smtpd_message_limit = 10001",
	  "smtpd_message_limit: 10001 is above the maximum 10000" },
	{ "smtpd_hard_error_limit = 1001",
	  "smtpd_hard_error_limit: 1001 is above the maximum 1000" },
	{ "smtpd_junk_command_limit = 0",
	  "smtpd_junk_command_limit: 0 is below the minimum 1" },
	{ "hopcount_limit = 1001",
	  "hopcount_limit: 1001 is above the maximum 1000" },
	{ "smtpd_timeout = 0s", "smtpd_timeout: 0s is below the minimum 1s" },
	{ "smtpd_timeout = 61m",
	  "smtpd_timeout: 3660s is above the maximum 3600s" },
	{ "smtpd_timeout = 5x", "smtpd_timeout: \"5x\" is not a time (a number "
	  "with an optional unit s, m, h, d or w)" },
	{ "smtpd_timeout = 5 m", "smtpd_timeout: \"5 m\" is not a time (a "
	  "number with an optional unit s, m, h, d or w)" },
	{ "smtpd_timeout = 5ms", "smtpd_timeout: \"5ms\" is not a time (a "
	  "number with an optional unit s, m, h, d or w)" },
	{ "smtpd_timeout = 5S", "smtpd_timeout: \"5S\" is not a time (a "
	  "number with an optional unit s, m, h, d or w)" },
	{ "smtpd_timeout = m", "smtpd_timeout: \"m\" is not a time (a "
	  "number with an optional unit s, m, h, d or w)" },
	{ "smtpd_timeout = 99999999999999999w",
	  "smtpd_timeout: \"99999999999999999w\" is out of range" },
	{ "smtpd_session_deadline = 9s",
	  "smtpd_session_deadline: 9s is below the minimum 10s" },
	{ "smtpd_session_deadline = 2d",
	  "smtpd_session_deadline: 172800s is above the maximum 86400s" },
	{ "smtpd_greet_pause = -1s",
	  "smtpd_greet_pause: -1s is below the minimum 0s" },
	{ "smtpd_greet_pause = 2m",
	  "smtpd_greet_pause: 120s is above the maximum 60s" },
	{ "mynetworks = 10.0.0.1/8", "mynetworks: \"10.0.0.1/8\" is not a "
	  "valid network (address[/prefix], host bits clear)" },
	{ "mynetworks = 127.0.0.0/8 1.2.3.4/33", "mynetworks: \"1.2.3.4/33\" "
	  "is not a valid network (address[/prefix], host bits clear)" },
	{ "mynetworks = ::/129", "mynetworks: \"::/129\" is not a valid "
	  "network (address[/prefix], host bits clear)" },
	{ "mynetworks = [1.2.3.4]", "mynetworks: \"[1.2.3.4]\" is not a valid "
	  "network (address[/prefix], host bits clear)" },
	{ "mynetworks = localhost", "mynetworks: \"localhost\" is not a valid "
	  "network (address[/prefix], host bits clear)" },
	{ "mynetworks = [::1]/128; 10.0.0.0/8", "mynetworks: \"[::1]/128;\" is "
	  "not a valid network (address[/prefix], host bits clear)" },
	{ "relay_domains = example..com",
	  "relay_domains: \"example..com\" is not a valid domain name" },
	{ "relay_domains = example.com.",
	  "relay_domains: \"example.com.\" is not a valid domain name" },
	{ "relay_domains = ..example.com",
	  "relay_domains: \"..example.com\" is not a valid domain name" },
	{ "relay_domains = ok.example exa_mple.com",
	  "relay_domains: \"exa_mple.com\" is not a valid domain name" },
	{ "relay_domains = *.example.com",
	  "relay_domains: \"*.example.com\" is not a valid domain name" },
	{ "relay_domains = .",
	  "relay_domains: \".\" is not a valid domain name" },
	{ "smtpd_banner = $nosuch",
	  "smtpd_banner: unknown parameter \"nosuch\" in value" },
	{ "smtpd_banner = ${myhostname", "smtpd_banner: bad \"$\" syntax (use "
	  "$name, ${name}, or $$ for a literal \"$\")" },
	{ "smtpd_banner = cost $", "smtpd_banner: bad \"$\" syntax (use "
	  "$name, ${name}, or $$ for a literal \"$\")" },
	{ "smtpd_banner = $(myhostname)", "smtpd_banner: bad \"$\" syntax (use "
	  "$name, ${name}, or $$ for a literal \"$\")" },
	{ "smtpd_banner = ${}", "smtpd_banner: bad \"$\" syntax (use "
	  "$name, ${name}, or $$ for a literal \"$\")" },
	{ "smtpd_banner = $smtpd_banner x",
	  "smtpd_banner: expansion of \"smtpd_banner\" loops" },
	{ "Myhostname = x", "unknown parameter \"Myhostname\"; did you mean \"myhostname\"?" },
	{ "my-hostname = x", "bad parameter name \"my-hostname\"" },
	{ "= x", "bad parameter name \"\"" },
	{ "myhostname x", "missing \"=\" in \"myhostname x\"" },
	{ "mynetwork = 10.0.0.0/8",
	  "unknown parameter \"mynetwork\"; did you mean \"mynetworks\"?" },
	{ "smtpd_timeot = 5",
	  "unknown parameter \"smtpd_timeot\"; "
	  "did you mean \"smtpd_timeout\"?" },
	{ "foo = bar", "unknown parameter \"foo\"" },
	{ " indented = 1", "continuation line (starting with white space) "
	  "before any parameter" },
};

/* conf_print() into a malloc'd string. */
static char *
print_conf(const struct conf *c, int all)
{
	char *s = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&s, &len);

	if (fp == NULL)
		return NULL;
	conf_print(fp, c, all);
	fclose(fp);
	return s;
}

/* A malloc'd copy of s with every "from" replaced by "to". */
static char *
replace(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; fl > 0 && (p = strstr(p, from)) != NULL; p += fl)
		n++;
	if ((out = malloc(strlen(s) + n * tl + 1)) == NULL)
		return NULL;
	for (o = out; fl > 0 && (p = strstr(s, from)) != NULL; s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, s);
	return out;
}

/* Show the system hostname as @HOSTNAME@ when it is myhostname, and
 * the SHLIBDIR compiled in as @SHLIBDIR@. */
static char *
host_normalise(char *s, const struct conf *c)
{
	char host[256], *r;

	if (s != NULL && (r = replace(s, "= " SMAP_SHLIB_DIR "\n", "= @SHLIBDIR@\n")) != NULL) {
		free(s);
		s = r;
	}
	if (s == NULL || gethostname(host, sizeof(host)) == -1)
		return s;
	host[sizeof(host) - 1] = '\0';
	if (c->myhostname == NULL || strcmp(c->myhostname, host) != 0)
		return s;
	r = replace(s, host, "@HOSTNAME@");
	free(s);
	return r;
}

/* Number of newlines in s. */
static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* Load text from a temporary file; *err gets the errors with the
 * file named TMP (malloc'd). Returns the error count. */
static int
load_text(const char *text, size_t len, struct conf *c, char **err)
{
	char path[] = "/tmp/t_conf.XXXXXX", *buf;
	int fd, n;

	*err = NULL;
	memset(c, 0, sizeof(*c));
	if ((fd = mkstemp(path)) == -1)
		return -1;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	if ((buf = malloc(ERRMAX)) == NULL)
		return -1;
	n = conf_load(c, path, buf, ERRMAX);
	unlink(path);
	*err = replace(buf, path, "TMP");
	free(buf);
	return n;
}

/* What a good file prints must read back to the same thing. */
static void
golden_roundtrip(const char *name, const struct conf *c)
{
	struct conf c2;
	char *p1 = print_conf(c, 1), *p2 = NULL, *err = NULL;
	int n = -1;

	memset(&c2, 0, sizeof(c2));
	if (p1 != NULL && (n = load_text(p1, strlen(p1), &c2, &err)) == 0)
		p2 = print_conf(&c2, 1);
	tap_ok(n == 0, "%s: printed config loads with no errors", name);
	tap_is(p2, p1, "%s: printed config prints the same", name);
	free(p1);
	free(p2);
	free(err);
	conf_free(&c2);
}

/* write_file - replace a golden file with what the code produced */
static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		return;
	fputs(text ? text : "", fp);
	fclose(fp);
}

/* One golden case: NAME.cf against NAME.out (and NAME.set). */
static void
golden_case(const char *dir, const char *name)
{
	char cf[4400], out[4400], pfx[4000], *err, *got, *want;
	struct conf c;
	int n;

	snprintf(pfx, sizeof(pfx), "%s/conf/", dir);
	snprintf(cf, sizeof(cf), "%s%s.cf", pfx, name);
	snprintf(out, sizeof(out), "%s%s.out", pfx, name);
	err = malloc(ERRMAX);
	n = conf_load(&c, cf, err, ERRMAX);
	got = n == 0 ? host_normalise(print_conf(&c, 1), &c) :
	    replace(err, pfx, "");
	if (getenv("SMAP_GOLDEN_WRITE") != NULL)
		write_file(out, got);	/* regenerate; review with git diff */
	want = tap_slurp(out, NULL);
	tap_is(got, want, "golden %s", name);
	tap_ok(n == count_lines(err), "%s: %d errors, one line each", name, n);
	if (n == 0)
		golden_roundtrip(name, &c);
	free(got);
	free(want);
	snprintf(out, sizeof(out), "%s%s.set", pfx, name);
	if ((want = tap_slurp(out, NULL)) != NULL) {
		got = print_conf(&c, 0);
		tap_is(got, want, "%s: non-default settings", name);
		free(got);
		free(want);
	}
	free(err);
	conf_free(&c);
}

/* scandir() filter: names ending in ".cf". */
static int
is_cf(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 3 && strcmp(d->d_name + n - 3, ".cf") == 0;
}

/* Every golden case, in name order. */
static void
test_golden(const char *dir)
{
	struct dirent **v;
	char path[4096];
	int i, n;

	snprintf(path, sizeof(path), "%s/conf", dir);
	n = scandir(path, &v, is_cf, alphasort);
	if (!tap_ok(n > 0, "golden cases found in %s", path))
		return;
	for (i = 0; i < n; i++) {
		v[i]->d_name[strlen(v[i]->d_name) - 3] = '\0';
		golden_case(dir, v[i]->d_name);
		free(v[i]);
	}
	free(v);
}

/* Every type's bad values, one line each. */
static void
test_bad_values(void)
{
	char want[1024], *err;
	struct conf c;
	size_t i;
	int n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = load_text(bad[i].line, strlen(bad[i].line), &c, &err);
		snprintf(want, sizeof(want), "TMP:1: %s\n", bad[i].why);
		tap_ok(n == 1, "one error for: %s", bad[i].line);
		tap_is(err, want, "error for: %s", bad[i].line);
		free(err);
		conf_free(&c);
	}
}

/* Text lengths at and past the limits of their keys. */
static void
test_long_values(void)
{
	char line[4200], *err;
	struct conf c;
	int n;

	snprintf(line, sizeof(line), "smtpd_banner = %0500d", 7);
	n = load_text(line, strlen(line), &c, &err);
	tap_ok(n == 0 && c.smtpd_banner != NULL &&
	    strlen(c.smtpd_banner) == 500, "a 500-byte banner is fine");
	free(err);
	conf_free(&c);
	snprintf(line, sizeof(line), "smtpd_banner = %0501d", 7);
	n = load_text(line, strlen(line), &c, &err);
	tap_ok(n == 1 && strstr(err, "...\" must be 1 to 500 bytes long\n"),
	    "a 501-byte banner is too long");
	free(err);
	conf_free(&c);
	snprintf(line, sizeof(line), "maillog_file = /%04096d", 7);
	n = load_text(line, strlen(line), &c, &err);
	tap_ok(n == 1 && strstr(err, "must be 0 to 4095 bytes long\n"),
	    "a path longer than PATH_MAX - 1 is refused");
	free(err);
	conf_free(&c);
}

/* Missing file, a directory, a file too large, NUL bytes, CRLF. */
static void
test_files(const char *dir)
{
	static const char nul[] = "syslog_name = a\0b\nfoo = 1\n";
	static const char crlf[] = "syslog_name = crlf\r\n  more\r\n";
	char path[4096], want[4200], *err, *big;
	struct conf c;
	int n;

	err = malloc(ERRMAX);
	snprintf(path, sizeof(path), "%s/conf/no-such-file.cf", dir);
	n = conf_load(&c, path, err, ERRMAX);
	snprintf(want, sizeof(want), "%s: cannot open: %s\n", path,
	    strerror(ENOENT));
	tap_ok(n == 1, "missing file: one error");
	tap_is(err, want, "missing file: cannot open");
	conf_free(&c);
	snprintf(path, sizeof(path), "%s/conf", dir);
	n = conf_load(&c, path, err, ERRMAX);
	snprintf(want, sizeof(want), "%s: not a regular file\n", path);
	tap_ok(n == 1, "directory: one error");
	tap_is(err, want, "directory: not a regular file");
	conf_free(&c);
	free(err);
	big = malloc(CONF_FILE_MAX + 1);
	memset(big, '#', CONF_FILE_MAX + 1);
	big[CONF_FILE_MAX] = '\n';
	n = load_text(big, CONF_FILE_MAX + 1, &c, &err);
	tap_is(err, "TMP: file too large (more than 1048576 bytes)\n",
	    "file of CONF_FILE_MAX + 1 bytes refused");
	free(err);
	conf_free(&c);
	n = load_text(big, CONF_FILE_MAX, &c, &err);
	tap_ok(n == 0, "file of CONF_FILE_MAX bytes is fine");
	free(err);
	conf_free(&c);
	free(big);
	n = load_text(nul, sizeof(nul) - 1, &c, &err);
	tap_is(err, "TMP:1: NUL byte in line\n"
	    "TMP:2: unknown parameter \"foo\"\n",
	    "NUL byte in a line");
	free(err);
	conf_free(&c);
	n = load_text(crlf, sizeof(crlf) - 1, &c, &err);
	tap_ok(n == 0 && strcmp(c.syslog_name, "crlf more") == 0,
	    "CRLF line ends are white space");
	free(err);
	conf_free(&c);
}

/* Logical line and list length limits. */
static void
test_bounds(void)
{
	char *buf, *err;
	struct conf c;
	size_t i, len;
	int n;

	buf = malloc(3 * CONF_LINE_MAX);
	len = (size_t)snprintf(buf, 100, "smtpd_banner = ");
	memset(buf + len, 'x', CONF_LINE_MAX - len);
	n = load_text(buf, CONF_LINE_MAX, &c, &err);
	tap_ok(n == 1 && strstr(err, "must be 1 to 500 bytes long"),
	    "a logical line of CONF_LINE_MAX bytes is read");
	free(err);
	conf_free(&c);
	buf[CONF_LINE_MAX] = 'x';
	n = load_text(buf, CONF_LINE_MAX + 1, &c, &err);
	tap_is(err, "TMP:1: line too long (more than 8192 bytes)\n",
	    "a logical line of CONF_LINE_MAX + 1 bytes is refused");
	free(err);
	conf_free(&c);
	memcpy(buf, "# one\nsyslog_name = a", 21);
	memset(buf + 21, 'y', 5000);
	memcpy(buf + 5021, "\n # comment\n ", 13);
	memset(buf + 5034, 'z', 4000);
	memcpy(buf + 9034, "\nfoo = 1\n", 9);
	n = load_text(buf, 9043, &c, &err);
	tap_is(err, "TMP:2: line too long (more than 8192 bytes)\n"
	    "TMP:5: unknown parameter \"foo\"\n",
	    "too long by continuation: error names the first line");
	free(err);
	conf_free(&c);
	len = (size_t)snprintf(buf, 100, "relay_domains =");
	for (i = 0; i < CONF_LIST_MAX; i++)
		len += (size_t)snprintf(buf + len, 8, i % 2 ? " a" : ",b");
	n = load_text(buf, len, &c, &err);
	tap_ok(n == 0 && c.relay_domains.n == CONF_LIST_MAX,
	    "a list of CONF_LIST_MAX items is fine");
	free(err);
	conf_free(&c);
	len += (size_t)snprintf(buf + len, 8, " c");
	n = load_text(buf, len, &c, &err);
	tap_is(err, "TMP:1: relay_domains: more than 1024 items\n",
	    "a list of CONF_LIST_MAX + 1 items is refused");
	free(err);
	conf_free(&c);
	free(buf);
}

/* Expansion: the length of the result and the depth are capped. */
static void
test_expand_bounds(void)
{
	static const char deep[] =
	    "smtpd_banner = $syslog_name\nsyslog_name = $maillog_file\n"
	    "maillog_file = /$spool_directory\nspool_directory = $mail_owner\n"
	    "mail_owner = $queue_minfree\nqueue_minfree = $message_size_limit\n"
	    "message_size_limit = $smtpd_recipient_limit\n"
	    "smtpd_recipient_limit = $smtpd_message_limit\n"
	    "smtpd_message_limit = $smtpd_hard_error_limit\n"
	    "smtpd_hard_error_limit = $smtpd_junk_command_limit\n"
	    "smtpd_junk_command_limit = $hopcount_limit\n"
	    "hopcount_limit = $smtpd_timeout\nsmtpd_timeout = 1\n";
	char *buf, *err;
	struct conf c;
	size_t len, i;
	int n;

	buf = malloc(CONF_LINE_MAX + 1);
	len = (size_t)snprintf(buf, 600,
	    "maillog_file = /%0399d\nsmtpd_banner =", 1);
	for (i = 0; i < 40; i++)
		len += (size_t)snprintf(buf + len, 20, " $maillog_file");
	n = load_text(buf, len, &c, &err);
	tap_is(err, "TMP:2: smtpd_banner: value longer than 8192 bytes after "
	    "expansion\n", "expansion longer than CONF_LINE_MAX is refused");
	free(err);
	conf_free(&c);
	free(buf);
	n = load_text(deep, sizeof(deep) - 1, &c, &err);
	tap_is(err, "TMP:11: smtpd_junk_command_limit: more than 10 levels of "
	    "expansion\n", "expansion depth is capped");
	tap_ok(n == 1, "one error for too deep an expansion");
	free(err);
	conf_free(&c);
}

/* A small err buffer keeps whole lines, NUL-terminated. */
static void
test_errbuf(void)
{
	static const char text[] = "a = 1\nb = 2\nc = 3\n";
	char path[] = "/tmp/t_conf.XXXXXX", err[60];
	struct conf c;
	int fd, n;

	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, text, sizeof(text) - 1) != sizeof(text) - 1) {
		tap_ok(0, "temporary file");
		return;
	}
	close(fd);
	memset(err, 'x', sizeof(err));
	n = conf_load(&c, path, err, sizeof(err));
	tap_ok(n == 3, "three errors counted with a small buffer");
	tap_ok(count_lines(err) >= 1 && count_lines(err) < 3 &&
	    err[strlen(err) - 1] == '\n', "only whole lines kept");
	conf_free(&c);
	n = conf_load(&c, path, NULL, 0);
	tap_ok(n == 3, "errors counted with no buffer");
	conf_free(&c);
	unlink(path);
	conf_free(&c);
	memset(&c, 0, sizeof(c));
	conf_free(&c);
	tap_ok(1, "conf_free twice and on a zeroed struct");
}

/* conf_defaults() matches an empty file. */
static void
test_defaults(void)
{
	struct conf c, e;
	char *p1, *p2, *err;
	int n;

	tap_ok(conf_defaults(&c) == 0, "conf_defaults: no errors");
	n = load_text("", 0, &e, &err);
	p1 = print_conf(&c, 1);
	p2 = print_conf(&e, 1);
	tap_ok(n == 0, "empty file: no errors");
	tap_is(p1, p2, "conf_defaults prints like an empty file");
	tap_ok(c.set_line != NULL && c.set_line[0] == 0,
	    "conf_defaults: nothing set in a file");
	free(p1);
	free(p2);
	p1 = print_conf(&c, 0);
	tap_is(p1, "", "conf_defaults: -n prints nothing");
	free(p1);
	tap_ok(c.mynetworks.n == 2 && c.relay_domains.n == 0 &&
	    c.smtpd_timeout == 300 && c.message_size_limit == 10240000,
	    "default values in the struct");
	free(err);
	conf_free(&c);
	conf_free(&e);
}

/* domain_match(): exact names and ".domain" subdomains, any case. */
static void
test_domain_match(void)
{
	char *v[] = { "example.com", ".sub.example.org" };
	struct strlist l = { v, 2 }, empty = { NULL, 0 };

	tap_ok(domain_match(&l, "example.com"), "exact match");
	tap_ok(domain_match(&l, "EXAMPLE.Com"), "exact match ignores case");
	tap_ok(!domain_match(&l, "a.example.com"), "no subdomain without dot");
	tap_ok(!domain_match(&l, "xexample.com"), "no suffix match");
	tap_ok(!domain_match(&l, "example.co"), "no prefix match");
	tap_ok(domain_match(&l, "a.sub.example.org"), ".domain: subdomain");
	tap_ok(domain_match(&l, "x.y.SUB.example.org"),
	    ".domain: deeper subdomain, any case");
	tap_ok(!domain_match(&l, "sub.example.org"), ".domain: not itself");
	tap_ok(!domain_match(&l, "xsub.example.org"), ".domain: label bound");
	tap_ok(!domain_match(&l, "example.org"), ".domain: not the parent");
	tap_ok(!domain_match(&l, ""), "empty domain");
	tap_ok(!domain_match(&empty, "example.com"), "empty list");
	tap_ok(!domain_match(NULL, "example.com"), "NULL list");
}

/* A copy of text with "#key = value" lines uncommented. */
static char *
uncomment(const char *text)
{
	char *out = malloc(strlen(text) + 1), *o = out;
	const char *p;

	for (p = text; out != NULL && *p != '\0'; p++) {
		if ((p == text || p[-1] == '\n') && p[0] == '#' &&
		    p[1] >= 'a' && p[1] <= 'z')
			continue;
		*o++ = *p;
	}
	if (out != NULL)
		*o = '\0';
	return out;
}

/* The line "key = ...\n" of text, malloc'd, or NULL. */
static char *
grep_key(const char *text, const char *key)
{
	const char *p = text, *e;
	size_t kl = strlen(key);

	while (*p != '\0') {
		e = strchr(p, '\n');
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strndup(p, e ? (size_t)(e - p + 1) : strlen(p));
		if (e == NULL)
			break;
		p = e + 1;
	}
	return NULL;
}

/* The sample parses, and so does every setting in it, uncommented. */
static void
test_sample(const char *sample)
{
	struct conf c, d, h;
	char *text, *un, *err, *hl = NULL, *p1, *p2, *p3 = NULL;
	int n;

	text = tap_slurp(sample, NULL);
	if (!tap_ok(text != NULL, "read %s", sample))
		return;
	err = malloc(ERRMAX);
	n = conf_load(&c, sample, err, ERRMAX);
	tap_ok(n == 0, "%s: no errors", sample);
	conf_defaults(&d);
	p1 = print_conf(&c, 1);
	p2 = print_conf(&d, 1);
	tap_is(p1, p2, "%s: the same as the defaults", sample);
	free(p1);
	free(err);
	conf_free(&c);
	un = uncomment(text);
	n = load_text(un, strlen(un), &c, &err);
	tap_ok(n == 0, "%s uncommented: no errors", sample);
	if (err != NULL && *err != '\0')
		tap_diag("%s", err);
	free(err);
	p1 = print_conf(&c, 1);
	free(p2);
	p2 = print_conf(&c, 0);
	tap_is(p2, p1, "%s uncommented: sets every key", sample);
	memset(&h, 0, sizeof(h));
	err = NULL;
	if ((hl = grep_key(p1, "myhostname")) != NULL &&
	    load_text(hl, strlen(hl), &h, &err) == 0)
		p3 = print_conf(&h, 1);
	tap_is(p1, p3, "%s uncommented: defaults but for myhostname", sample);
	free(err);
	conf_free(&h);
	free(p1);
	free(p2);
	free(p3);
	free(hl);
	free(un);
	free(text);
	conf_free(&c);
	conf_free(&d);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/golden";
	const char *sample = argc > 2 ? argv[2] : "conf/smap.conf";
	struct conf c;

	if (conf_defaults(&c) != 0)
		tap_diag("the system hostname is not valid: expect failures");
	conf_free(&c);
	test_golden(dir);
	test_bad_values();
	test_long_values();
	test_files(dir);
	test_bounds();
	test_expand_bounds();
	test_errbuf();
	test_defaults();
	test_domain_match();
	test_sample(sample);
	return tap_done();
}
