/*
 * smapq.c - smapq: list and manage smapd's queue (see smapq(8)).
 *
 * Trusts its command line and the configuration file (root's, read with
 * conf.c's bounds) but checks every queue id before it can reach a
 * path. Opens the log, then, when started as root, becomes smapd_user
 * with no capabilities before it looks at the spool; everything in the
 * spool is hostile (queueadm.c). Never speaks SMTP.
 *
 * Exit status: 0; 1 a message was not found, busy or not handled;
 * 64 bad usage or a bad queue id; 71 cannot drop privileges or reach
 * the spool; 74 cannot write the output; 77 this user may not read the
 * queue; 78 a bad configuration.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "conf.h"
#include "jail.h"
#include "layout_queue.h"
#include "log.h"
#include "queueadm.h"
#include "review.h"

#define EX_USAGE 64
#define EX_OSERR 71
#define EX_IOERR 74
#define EX_NOPERM 77
#define EX_CONFIG 78

static const char *conf_path = "/etc/smap/smap.conf";

static const struct {
	const char *name;
	int min, max;		/* queue ids it takes */
	int logs;		/* changes the queue: log it */
	int (*each)(const struct qadm *, const char *);
} cmds[] = {
	{ "list", 0, 0, 0, NULL },
	{ "show", 1, 1, 0, qadm_show },
	{ "hold", 1, INT_MAX, 1, qadm_hold },
	{ "release", 1, INT_MAX, 1, qadm_release },
	{ "delete", 1, INT_MAX, 1, qadm_delete },
	{ "flush", 0, 0, 1, NULL },
	{ "quarantine", 0, 0, 0, NULL },
};

#define NCMDS (int)(sizeof(cmds) / sizeof(cmds[0]))

/* usage - the synopsis on stderr; returns EX_USAGE */
static int
usage(void)
{
	fprintf(stderr, "usage: smapq [-c config] [-j] [list]\n"
	    "       smapq [-c config] show ID\n"
	    "       smapq [-c config] hold|release|delete ID...\n"
	    "       smapq [-c config] flush\n"
	    "       smapq [-c config] [-j] quarantine\n"
	    "       smapq [-c config] verify|report|check|journal-key ...\n");
	return EX_USAGE;
}

/* find_cmd - index of a command word, or -1 */
static int
find_cmd(const char *word)
{
	int k;

	for (k = 0; k < NCMDS; k++)
		if (strcmp(word, cmds[k].name) == 0)
			return k;
	return -1;
}

/* ids_ok - is every argument a queue id? Says which is not. */
static int
ids_ok(char **v, int n)
{
	char esc[80];
	int i, ok = 1;

	for (i = 0; i < n; i++)
		if (!qid_ok(v[i])) {
			fprintf(stderr, "smapq: bad queue id: %s\n",
			    log_esc(esc, sizeof(esc), v[i], strlen(v[i])));
			ok = 0;
		}
	return ok;
}

/* next_hops - the routes, for show and list (opened as the caller, like
 * smapd at its start); a table that cannot be opened is said once, and
 * the next hops are then "unknown" */
static void
next_hops(const struct conf *cf, struct qadm *a)
{
	static struct routes r;
	char why[2048];
	const char *key;

	if (routes_open(&r, cf, &key, why, sizeof(why)) == 0)
		a->routes = &r;
	else
		fprintf(stderr, "smapq: %s: %s: next hops unknown\n", key, why);
}

/* setup - configuration, log, privileges, spool: 0 or an exit status */
static int
setup(struct conf *cf, struct qadm *a, int logs)
{
	static char err[8192];
	char why[512];
	int rc;

	if (conf_load(cf, conf_path, err, sizeof(err)) != 0) {
		fputs(err, stderr);
		return EX_CONFIG;
	}
	next_hops(cf, a);
	if (logs && log_open("smap/smapq", cf->syslog_facility,
	    cf->maillog_file) < 0) {
		fprintf(stderr, "smapq: cannot open %s: %s\n", cf->maillog_file,
		    strerror(errno));
		return EX_CONFIG;
	}
	if ((rc = qadm_enter(cf)) != 0)
		return rc;
	/* A directory that cannot be opened is reported where it is used,
	 * unless this user may not read the queue at all: that, once. */
	if (layout_open(&a->dirs, why, sizeof(why)) < 0 &&
	    a->dirs.fd[L_QUEUE] < 0 && a->dirs.err[L_QUEUE] == EACCES) {
		fprintf(stderr, "smapq: uid %lu may not read the queue in %s: "
		    "run smapq as root or as %s\n", (unsigned long)geteuid(),
		    cf->spool_directory, cf->smapd_user);
		return EX_NOPERM;
	}
	return 0;
}

/* run - the command on every id given; 0 or 1 */
static int
run(const struct qadm *a, int k, char **ids, int n)
{
	int i, rc = 0;

	if (cmds[k].each == NULL && strcmp(cmds[k].name, "quarantine") == 0)
		return qadm_quarantine(a);
	if (cmds[k].each == NULL)
		return strcmp(cmds[k].name, "flush") == 0 ? qadm_flush(a) :
		    qadm_list(a);
	for (i = 0; i < n; i++)
		if (cmds[k].each(a, ids[i]) != 0)
			rc = 1;
	return rc;
}

int
main(int argc, char **argv)
{
	static struct conf cf;
	struct qadm a = { stdout, stderr, 0, { { 0 }, { 0 } }, NULL };
	int ch, k, n, rc;

	if ((rc = smapq_review(argc, argv)) >= 0)	/* verify, report, ... */
		return rc;
	while ((ch = getopt(argc, argv, "c:j")) != -1) {
		if (ch == 'c')
			conf_path = optarg;
		else if (ch == 'j')
			a.json = 1;
		else
			return usage();
	}
	if ((k = find_cmd(optind < argc ? argv[optind] : "list")) < 0)
		return usage();
	if (optind < argc)
		optind++;
	n = argc - optind;
	if (n < cmds[k].min || n > cmds[k].max || (a.json && k != 0 &&
	    strcmp(cmds[k].name, "quarantine") != 0))
		return usage();
	if (!ids_ok(argv + optind, n))
		return EX_USAGE;
	umask(077);
	if ((rc = setup(&cf, &a, cmds[k].logs)) == 0)
		rc = run(&a, k, argv + optind, n);
	conf_free(&cf);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EX_IOERR;
	return rc;
}
