/*
 * main.c - smapd: hand every message smap spooled to the backend.
 *
 * Runs in the foreground (systemd Type=notify), wakes when smap commits
 * a file into new/ (inotify) and rescans every queue_run_delay. Started
 * as root it checks the spool's owners and modes, opens its directories
 * and drops to smapd_user with no capabilities; -P (as root) lays the
 * spool out first (layout_setup.h). Trusts its command line and
 * configuration file; every spool file is hostile (queue.c).
 *
 * Exit status: 0; 64 bad usage; 71 cannot drop privileges; 78 a bad
 * configuration or spool (-t prints every problem, one line each).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>

#include "conf.h"
#include "jail.h"
#include "layout_queue.h"
#include "layout_setup.h"
#include "log.h"
#include "notify.h"
#include "queue.h"
#include "sandbox.h"

#define EX_USAGE 64
#define EX_OSERR 71
#define EX_CONFIG 78

static volatile sig_atomic_t stop, reload;
static int wakeup[2] = { -1, -1 };	/* self-pipe: a signal wakes poll() */
static const char *conf_path = "/etc/smap/smap.conf";

/* on_signal - TERM/INT stop after the delivery in progress; HUP reloads */
static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		reload = 1;
	else
		stop = 1;
	(void)!write(wakeup[1], "", 1);
	errno = saved;
}

/* load - configuration and transport; prints every error; 0 or -1 */
static int
load(struct conf *cf, struct transport *t)
{
	static char err[8192];
	char why[512];

	memset(cf, 0, sizeof(*cf));
	if (conf_load(cf, conf_path, err, sizeof(err)) != 0) {
		fputs(err, stderr);
		log_fatal("%s: bad configuration: %.400s", conf_path, err);
		conf_free(cf);
		return -1;
	}
	if (transport_parse(cf->default_transport, t, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s: %s\n", conf_path, why);
		log_fatal("%s: %s", conf_path, why);
		conf_free(cf);
		return -1;
	}
	return 0;
}

/* say - one problem or change, on stderr and in the log */
static void
say(void *ctx, const char *line)
{
	(*(int *)ctx)++;
	fprintf(stderr, "smapd: %s\n", line);
	log_warn("%s", line);
}

/* users - the two users, or exit 78 saying why */
static void
users(const struct conf *cf, struct layout_ids *ids)
{
	char why[512];

	if (layout_users(cf->mail_owner, cf->smapd_user, ids, why,
	    sizeof(why)) < 0) {
		fprintf(stderr, "smapd: %s: %s\n", conf_path, why);
		log_fatal("%s: %s", conf_path, why);
		exit(EX_CONFIG);
	}
}

/* check - -t: users and spool; -P: lay the spool out; the exit status */
static int
check(const struct conf *cf, int prepare)
{
	static char warns[8192];
	struct layout_ids ids;
	int changes = 0;

	if (conf_warnings(cf, conf_path, warns, sizeof(warns)) > 0)
		fputs(warns, stderr);
	users(cf, &ids);
	if (prepare && layout_prepare(cf->spool_directory, &ids, say,
	    &changes) > 0)
		return EX_OSERR;
	return layout_check_config(cf, SIDE_ALL, say, &changes) ? EX_CONFIG : 0;
}

/* signals - handlers without SA_RESTART, so poll() wakes up */
static void
signals(void)
{
	struct sigaction sa;

	if (pipe2(wakeup, O_NONBLOCK | O_CLOEXEC) < 0)
		log_warn("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* setup - log, spool directory, privileges; exits on failure */
static void
setup(struct conf *cf, struct qctx *q)
{
	char why[512] = "";
	struct layout_ids ids;
	int rc, bad = 0;

	if (log_open("smap/qmgr", cf->syslog_facility, cf->maillog_file) < 0) {
		fprintf(stderr, "smapd: cannot open %s: %s\n", cf->maillog_file,
		    strerror(errno));
		exit(EX_CONFIG);
	}
	users(cf, &ids);
	q->spool_uid = ids.smap_uid;
	if (layout_check(cf->spool_directory, &ids, SIDE_ALL, say, &bad) > 0)
		exit(EX_CONFIG);
	if (chdir(cf->spool_directory) < 0)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else if (layout_open(&q->dirs, why, sizeof(why)) == 0)
		why[0] = '\0';
	if (why[0] != '\0') {
		log_fatal("%s: %s", cf->spool_directory, why);
		exit(EX_OSERR);
	}
	if (jail_enter(NULL, cf->smapd_user, q->t.kind == T_SENDMAIL ?
	    JAIL_ALLOW_SETGID : 0, why, sizeof(why)) < 0) {
		log_fatal("cannot drop privileges to %s: %s", cf->smapd_user, why);
		exit(EX_OSERR);
	}
	if ((rc = sandbox_smapd(why, sizeof(why))) < 0) {
		log_fatal("%s", why);
		exit(EX_OSERR);
	}
	if (rc > 0)
		log_info("%s", why);
}

/* unreloadable - what a reload cannot change in a running smapd (it is
 * fixed at start: the spool it opened, the user it became, and whether
 * it runs under no_new_privs and its filter); NULL when nothing is */
static const char *
unreloadable(const struct conf *old, const struct conf *new,
    const struct transport *t_old, const struct transport *t_new)
{
	if (strcmp(old->spool_directory, new->spool_directory) != 0)
		return "spool_directory changed: restart smapd";
	if (strcmp(old->smapd_user, new->smapd_user) != 0)
		return "smapd_user changed: restart smapd";
	if ((t_old->kind == T_SENDMAIL) != (t_new->kind == T_SENDMAIL))
		return "to or from the sendmail transport, smapd's privileges "
		    "change (no_new_privs): restart smapd";
	if (strcmp(old->maillog_file, new->maillog_file) != 0 ||
	    strcmp(old->syslog_facility, new->syslog_facility) != 0)
		return "maillog_file or syslog_facility changed: restart smapd";
	return NULL;
}

/* do_reload - SIGHUP: the new configuration, if it is good */
static void
do_reload(struct conf *cf, struct qctx *q)
{
	struct conf fresh;
	struct transport t;
	struct layout_ids ids;
	const char *no;
	char why[512];

	reload = 0;
	notify("RELOADING=1");
	if (load(&fresh, &t) < 0) {
		log_warn("%s has errors; keeping the running configuration",
		    conf_path);
	} else if ((no = unreloadable(cf, &fresh, &q->t, &t)) != NULL ||
	    layout_users(fresh.mail_owner, fresh.smapd_user, &ids, why,
	    sizeof(why)) < 0) {
		log_warn("%s: reload refused, keeping the running configuration: "
		    "%s", conf_path, no != NULL ? no : why);
		conf_free(&fresh);
	} else {
		conf_free(cf);
		*cf = fresh;
		q->t = t;
		q->spool_uid = ids.smap_uid;	/* who writes new/ from now on */
		log_info("reloaded %s", conf_path);
	}
	notify("READY=1");
}

/* wait_for - new files in new/, a request from smapq, a signal, or the
 * timeout; returns 2 for queue/.flush, 1 for queue/.run, else 0 */
static int
wait_for(int ino, long long seconds)
{
	struct pollfd p[2] = { { wakeup[0], POLLIN, 0 }, { ino, POLLIN, 0 } };
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n, off;
	int flush = 0;

	if (seconds > 86400)
		seconds = 86400;
	if (stop || reload || poll(p, ino >= 0 ? 2 : 1, (int)seconds * 1000) <= 0)
		return 0;
	while (read(wakeup[0], buf, sizeof(buf)) > 0)
		;
	while (ino >= 0 && (n = read(ino, buf, sizeof(buf))) > 0)
		for (off = 0; off + (ssize_t)sizeof(*ev) <= n;
		    off += (ssize_t)sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->len > 0 && strcmp(ev->name, FLUSH_FILE) == 0)
				flush = 2;
			else if (ev->len > 0 && strcmp(ev->name, RUN_FILE) == 0 &&
			    flush == 0)
				flush = 1;
		}
	return flush;
}

/* status - the queue counts for systemctl status */
static void
status(const struct qctx *q)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "STATUS=%lld queued, %lld deferred",
	    q->active, q->deferred);
	notify(msg);
}

int
main(int argc, char **argv)
{
	static struct conf cf;
	static struct qctx q;
	int ch, once = 0, mode = 0, ino = -1;
	long long wait = 0;
	time_t full_at = 0;

	while ((ch = getopt(argc, argv, "c:1tPfnd")) != -1) {
		if (ch == 'c')
			conf_path = optarg;
		else if (ch == '1')
			once = 1;
		else if (ch == 'f')
			q.flush = 1;
		else if (ch == 't' || ch == 'P' || ch == 'n' || ch == 'd')
			mode = ch;
		else {
			fprintf(stderr, "usage: smapd [-c config] "
			    "[-1 [-f] | -t | -P | -n | -d]\n");
			return EX_USAGE;
		}
	}
	if (optind != argc || load(&cf, &q.t) < 0)
		return optind != argc ? EX_USAGE : EX_CONFIG;
	if (mode != 0) {
		ch = mode == 't' || mode == 'P' ? check(&cf, mode == 'P') : 0;
		if (mode == 'n' || mode == 'd')
			conf_print(stdout, &cf, mode == 'd');
		conf_free(&cf);
		return ch;
	}
	q.cf = &cf;
	q.stop = &stop;
	setup(&cf, &q);
	signals();
	if (!once && (ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) >= 0 &&
	    (inotify_add_watch(ino, layout_name(L_NEW), IN_MOVED_TO |
	    IN_CLOSE_WRITE) < 0 || inotify_add_watch(ino, layout_name(L_QUEUE),
	    IN_CLOSE_WRITE | IN_ATTRIB) < 0))
		log_warn("inotify on %s: %s", layout_name(L_NEW), strerror(errno));
	log_info("started, delivering by %s", cf.default_transport);
	notify("READY=1");
	while (!stop) {
		int full = time(NULL) >= full_at || q.flush;

		wait = queue_run(&q, full);
		if (!once)
			q.flush = 0;
		if (full) {
			queue_clean_tmp(&q);
			full_at = time(NULL) + wait;
			status(&q);
		}
		if (once)
			break;
		switch (wait_for(ino, full_at > time(NULL) ? full_at - time(NULL) : 0)) {
		case 2:
			q.flush = 1;
			break;
		case 1:
			full_at = 0;
			break;
		}
		if (reload)
			do_reload(&cf, &q);
	}
	notify("STOPPING=1");
	log_info("stopped");
	conf_free(&cf);
	return 0;
}
