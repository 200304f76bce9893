/*
 * smapq_review.c - smapq's review commands (review.h, smapq(8)):
 *
 *   smapq [-c config] verify [--key FILE] [--head HEAD]... [--log FILE]...
 *         [DAY...]
 *   smapq [-c config] report [--since AGE] [-j | --message | --mail]
 *         [--key FILE] [--log FILE]...
 *   smapq [-c config] check [-w N] [-c N] [-W AGE] [-C AGE]
 *   smapq [-c config] journal-key
 *
 * Trusts its command line and the configuration. What only root may
 * read (the key file, the log) is opened first; then, started as root,
 * smapq becomes smapd_user (no capabilities) before it looks at the
 * spool, as for its other commands. Everything read afterwards is
 * hostile (review.h's readers).
 *
 * report --mail hands the report, as a message to report_recipient, to
 * SBINDIR/smap-sendmail -t (no shell).
 *
 * Exit status: verify 0 intact, 1 not; report and journal-key 0, 1
 * (report --mail: smap-sendmail's, 69 when it cannot be run);
 * check 0, 1, 2, 3 (Nagios: OK, WARNING, CRITICAL, UNKNOWN, also for
 * every error below); 64 bad usage; 66 the key file cannot be read;
 * 71 cannot drop privileges or reach the spool; 74 cannot write the
 * output; 78 a bad configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "jail.h"
#include "journal.h"
#include "log.h"
#include "paths.h"		/* generated: SMAP_SBIN_DIR */
#include "queueadm.h"
#include "review.h"

#define EX_USAGE 64
#define EX_NOINPUT 66
#define EX_UNAVAILABLE 69
#define EX_OSERR 71
#define EX_IOERR 74
#define EX_CONFIG 78
#define HEADS_ARG 16
#define DAYS_ARG 64
#define AGE_MAX (400LL * 86400)

enum cmd { C_VERIFY, C_REPORT, C_CHECK, C_KEY };

static const char *const cmd_names[] = { "verify", "report", "check",
	"journal-key" };

struct args {
	const char *conf;
	enum cmd cmd;
	int json, message, send;
	const char *keyfile;
	char *logs[LOGS_MAX];
	size_t nlogs;
	struct jhead heads[HEADS_ARG];
	size_t nheads;
	long days[DAYS_ARG];
	size_t ndays;
	long long since, warn_age, crit_age;
	long warn_n, crit_n;
};

/* usage - the synopsis of the review commands; EX_USAGE (check: 3) */
static int
usage(const struct args *a, const char *why)
{
	if (why != NULL)
		fprintf(stderr, "smapq: %s\n", why);
	fprintf(stderr, "usage: smapq [-c config] verify [--key FILE] "
	    "[--head HEAD] [--log FILE] [DAY...]\n"
	    "       smapq [-c config] report [--since AGE] [-j | --message | "
	    "--mail] [--key FILE] [--log FILE]\n"
	    "       smapq [-c config] check [-w N] [-c N] [-W AGE] [-C AGE]\n"
	    "       smapq [-c config] journal-key\n");
	return a->cmd == C_CHECK ? 3 : EX_USAGE;
}

/* parse_age - "90", "90s", "15m", "24h", "7d", "2w": seconds, or -1 */
static long long
parse_age(const char *s)
{
	static const char units[] = "smhdw";
	static const long long secs[] = { 1, 60, 3600, 86400, 7 * 86400 };
	long long v = 0;
	const char *p = s, *u;

	for (; *p >= '0' && *p <= '9' && p - s < 12; p++)
		v = v * 10 + (*p - '0');
	if (p == s || (p[0] != '\0' && p[1] != '\0'))
		return -1;
	if (*p != '\0') {
		if ((u = strchr(units, *p)) == NULL)
			return -1;
		v *= secs[u - units];
	}
	return v <= AGE_MAX ? v : -1;
}

/* parse_count - a number of messages, or -1 */
static long
parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || end == s || *end != '\0' || v < 0 || v > 100000000 ?
	    -1 : v;
}

/* global - -c and -j before the command word: its index, or -1 */
static int
global(int argc, char **argv, struct args *a)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-j") == 0)
			a->json = 1;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			a->conf = argv[++i];
		else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0')
			a->conf = argv[i] + 2;
		else
			break;
	}
	return i < argc && argv[i][0] != '-' ? i : -1;
}

/* option - one option of the command: 0, or an exit status */
static int
option(struct args *a, int ch, const char *arg)
{
	switch (ch) {
	case 'k': a->keyfile = arg; return 0;
	case 'j': a->json = 1; return 0;
	case 'M': a->message = 1; return 0;
	case 'm': a->send = 1; return 0;
	case 'l':
		if (a->nlogs == LOGS_MAX)
			return usage(a, "too many --log files");
		a->logs[a->nlogs++] = (char *)arg;
		return 0;
	case 'H':
		if (a->nheads == HEADS_ARG ||
		    head_parse(arg, strlen(arg), &a->heads[a->nheads]) < 0)
			return usage(a, "--head: \"day=YYYY-MM-DD records=N mac=HEX\"");
		a->heads[a->nheads++].sec = 0;
		return 0;
	case 's': return (a->since = parse_age(arg)) < 0 ?
		    usage(a, "--since: an age such as 24h") : 0;
	case 'W': return (a->warn_age = parse_age(arg)) < 0 ?
		    usage(a, "-W: an age such as 1h") : 0;
	case 'C': return (a->crit_age = parse_age(arg)) < 0 ?
		    usage(a, "-C: an age such as 4h") : 0;
	case 'w': return (a->warn_n = parse_count(arg)) < 0 ?
		    usage(a, "-w: a number of messages") : 0;
	case 'c': return (a->crit_n = parse_count(arg)) < 0 ?
		    usage(a, "-c: a number of messages") : 0;
	default: return usage(a, NULL);
	}
}

/* options - the command's options and DAY arguments: 0 or a status */
static int
options(int argc, char **argv, struct args *a)
{
	static const struct option longs[] = { { "key", 1, NULL, 'k' },
		{ "head", 1, NULL, 'H' }, { "log", 1, NULL, 'l' },
		{ "since", 1, NULL, 's' }, { "json", 0, NULL, 'j' },
		{ "mail", 0, NULL, 'm' }, { "message", 0, NULL, 'M' },
		{ NULL, 0, NULL, 0 } };
	static const char *const shorts[] = { "k:H:l:", "s:jmk:l:",
		"w:c:W:C:", "" };
	int ch, rc, i;

	optind = 0;	/* getopt afresh, on the command's own arguments */
	opterr = 1;
	while ((ch = getopt_long(argc, argv, shorts[a->cmd], a->cmd <= C_REPORT ?
	    longs : NULL, NULL)) != -1)
		if ((rc = option(a, ch, optarg)) != 0)
			return rc;
	for (i = optind; i < argc; i++) {
		if (a->cmd != C_VERIFY || a->ndays == DAYS_ARG ||
		    jday_parse(argv[i], &a->days[a->ndays]) < 0)
			return usage(a, "a DAY is YYYY-MM-DD (verify only)");
		a->ndays++;
	}
	if (a->warn_n > a->crit_n || a->warn_age > a->crit_age)
		return usage(a, "a warning threshold above the critical one");
	return 0;
}

/* read_keyfile - the admin's copy of the first key, before the drop */
static int
read_keyfile(const char *path, struct jkey *k)
{
	char why[300];
	int dfd = open(path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC), rc;

	if (dfd < 0) {
		fprintf(stderr, "smapq: %s: %s\n", path, strerror(errno));
		return -1;
	}
	rc = journal_read_key(dfd, path[0] == '/' ? path + 1 : path, k, why,
	    sizeof(why));
	(void)close(dfd);
	if (rc < 0)
		fprintf(stderr, "smapq: --key %s\n", why);
	return rc;
}

/* before_drop - the configuration, the log, what only root may read:
 * 0 or an exit status */
static int
before_drop(struct args *a, struct review *rv, struct conf *cf)
{
	static char err[8192];

	if (conf_load(cf, a->conf, err, sizeof(err)) != 0) {
		fputs(err, stderr);
		return EX_CONFIG;
	}
	rv->cf = cf;
	if (a->cmd == C_KEY && log_open("smap/smapq", cf->syslog_facility,
	    cf->maillog_file) < 0) {
		fprintf(stderr, "smapq: cannot open %s: %s\n", cf->maillog_file,
		    strerror(errno));
		return EX_CONFIG;
	}
	if (a->keyfile != NULL) {
		if (read_keyfile(a->keyfile, &rv->key) < 0)
			return EX_NOINPUT;
		rv->have_key = 1;
	}
	if (a->cmd == C_VERIFY || a->cmd == C_REPORT)
		logs_open(&rv->logs, a->logs, a->nlogs, cf, a->cmd == C_REPORT ?
		    rv->since : 0);
	return 0;
}

/* setup - before_drop(), then smapd_user in the spool: 0 or a status */
static int
setup(struct args *a, struct review *rv, struct conf *cf)
{
	char why[512];
	int rc = before_drop(a, rv, cf);

	if (rc != 0)
		return rc;
	if ((rc = qadm_enter(cf)) != 0)
		return rc;
	(void)layout_open(&rv->dirs, why, sizeof(why));	/* census says */
	rv->jfd = open(JOURNAL_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	return 0;
}

/* on_head - a head in the log, for verify */
static void
on_head(void *ctx, const struct logline *l)
{
	struct jhead h;

	if (log_head(l, &h))
		heads_add(ctx, &h);
}

/* cmd_verify - smapq verify */
static int
cmd_verify(const struct args *a, struct review *rv)
{
	static struct verify v;
	struct heads hs = { NULL, 0, 0 };
	size_t i;

	for (i = 0; i < a->nheads; i++)
		heads_add(&hs, &a->heads[i]);
	logs_scan(&rv->logs, rv->now, on_head, &hs);
	memset(&v, 0, sizeof(v));
	v.key = rv->have_key ? &rv->key : NULL;
	v.heads = hs.v;
	v.nheads = hs.n;
	v.only = a->ndays > 0 ? a->days : NULL;
	v.nonly = a->ndays;
	if (rv->jfd < 0) {
		printf("journal: FAILED: %s/: %s\n", JOURNAL_DIR, strerror(errno));
		free(hs.v);
		return 1;
	}
	(void)journal_verify(rv->jfd, &v);
	verify_print(stdout, &v);
	printf("journal: heads read from %s (%zu found)\n", rv->logs.n > 0 ?
	    rv->logs.what : "no log", hs.n);
	free(hs.v);
	return v.bad ? 1 : 0;
}

/* send_report - the report as a message, on smap-sendmail's standard
 * input: its exit status */
static int
send_report(const struct args *a, struct review *rv)
{
	char path[512], *argv[] = { "smap-sendmail", "-t", NULL, NULL, NULL };
	int p[2], status = 0, ok;
	pid_t pid;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/smap-sendmail", SMAP_SBIN_DIR);
	if (strcmp(a->conf, "/etc/smap/smap.conf") != 0) {
		argv[1] = "-C";
		argv[2] = (char *)a->conf;
		argv[3] = "-t";
	}
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "smapq: cannot run %s: %s\n", path, strerror(errno));
		return EX_UNAVAILABLE;
	}
	if (pid == 0) {
		if (dup2(p[0], STDIN_FILENO) == STDIN_FILENO)
			execv(path, argv);
		fprintf(stderr, "smapq: %s: %s\n", path, strerror(errno));
		_exit(EX_UNAVAILABLE);
	}
	(void)close(p[0]);
	signal(SIGPIPE, SIG_IGN);	/* a dead smap-sendmail: EPIPE */
	if ((fp = fdopen(p[1], "w")) == NULL)
		(void)close(p[1]);
	else
		(void)review_report(rv, fp);
	ok = fp != NULL && fclose(fp) == 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return WIFEXITED(status) ? WEXITSTATUS(status) : EX_UNAVAILABLE;
	return ok ? 0 : EX_IOERR;
}

/* run - the command, set up: its exit status */
static int
run(struct args *a, struct review *rv, struct conf *cf)
{
	int rc;

	if ((rc = setup(a, rv, cf)) != 0)
		return a->cmd == C_CHECK ? (printf("SMAP UNKNOWN - cannot read "
		    "the configuration or the spool (exit %d)\n", rc), 3) : rc;
	switch (a->cmd) {
	case C_VERIFY:
		return cmd_verify(a, rv);
	case C_REPORT:
		return a->send ? send_report(a, rv) : review_report(rv, stdout);
	case C_CHECK:
		return review_check(rv, stdout);
	default:
		return journal_print_first(stdout, stderr);
	}
}

/* smapq_review - the review commands, or -1 for smapq's others */
int
smapq_review(int argc, char **argv)
{
	static struct args a;
	static struct review rv;
	static struct conf cf;
	int k, rc;

	journal_set_actor();	/* hold, release, delete: who did it */
	memset(&a, 0, sizeof(a));
	a.conf = "/etc/smap/smap.conf";
	a.since = 86400;
	a.warn_n = 100, a.crit_n = 500, a.warn_age = 3600, a.crit_age = 4 * 3600;
	if ((k = global(argc, argv, &a)) < 0)
		return -1;
	for (a.cmd = C_VERIFY; a.cmd <= C_KEY; a.cmd++)
		if (strcmp(argv[k], cmd_names[a.cmd]) == 0)
			break;
	if (a.cmd > C_KEY)
		return -1;
	if ((rc = options(argc - k, argv + k, &a)) != 0)
		return rc;
	if (a.json && a.cmd != C_REPORT)
		return usage(&a, "-j is for report (and smapq list)");
	if (a.json + a.message + a.send > 1)
		return usage(&a, "one of -j, --message and --mail");
	umask(077);
	memset(&rv, 0, sizeof(rv));
	rv.jfd = -1;
	rv.json = a.json;
	rv.mail = a.message || a.send;
	rv.now = (long long)time(NULL);
	rv.since = rv.now - a.since;
	rv.warn_n = a.warn_n, rv.crit_n = a.crit_n;
	rv.warn_age = a.warn_age, rv.crit_age = a.crit_age;
	rc = run(&a, &rv, &cf);
	logs_close(&rv.logs);
	conf_free(&cf);
	OPENSSL_cleanse(&rv.key, sizeof(rv.key));
	if (fflush(stdout) != 0 && rc == 0)
		rc = a.cmd == C_CHECK ? 3 : EX_IOERR;
	return rc;
}
