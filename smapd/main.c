/*
 * main.c - smapd: hand every message smap spooled to the backend.
 *
 * Runs in the foreground (systemd Type=notify), wakes when smap commits
 * a file into new/ (inotify) and rescans every queue_run_delay. Started
 * as root it checks the spool's owners and modes and drops to
 * smapd_user with no capabilities, then opens its directories as that
 * user (what it cannot open it could not use); -P (as root) lays the
 * spool out first (layout_setup.h). SIGHUP reloads the configuration
 * and reopens maillog_file (after logrotate). Trusts its command line
 * and configuration file; every spool file is hostile (queue.c).
 *
 * Exit status: 0; 64 bad usage; 71 cannot drop privileges or open the
 * spool; 78 a bad configuration or spool (-t prints every problem, one
 * line each, on stderr; a fatal error goes to stderr and the log).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>

#include "check.h"
#include "conf.h"
#include "jail.h"
#include "layout_queue.h"
#include "layout_setup.h"
#include "log.h"
#include "notify.h"
#include "queue.h"
#include "sweep.h"
#include "sandbox.h"
#include "startup.h"

#ifndef SMAP_VERSION
#define SMAP_VERSION "unknown"
#endif

static volatile sig_atomic_t stop, reload;
static int wakeup[2] = { -1, -1 };	/* self-pipe: a signal wakes poll() */
static struct startup st = { "smapd", "smap/qmgr", "/etc/smap/smap.conf",
	0, 0, 0, 0 };

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

/* load - configuration and transport; 0, or -1 after saying why */
static int
load(struct conf *cf, struct transport *t)
{
	static char err[8192];
	char why[512];

	memset(cf, 0, sizeof(*cf));
	if (conf_load(cf, st.conf, err, sizeof(err)) != 0) {
		fputs(err, stderr);
		log_warn("%s: bad configuration: %.400s", st.conf, err);
	} else if (transport_parse(cf->default_transport, t, why,
	    sizeof(why)) < 0) {
		snprintf(err, sizeof(err), "%s:%d: default_transport: %s", st.conf,
		    conf_line(cf, "default_transport"), why);
		startup_say(&st, err);
	} else
		return 0;
	conf_free(cf);
	return -1;
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

/* setup - log, users, spool, privileges; on failure says why and exits */
static void
setup(struct conf *cf, struct qctx *q)
{
	char why[512];
	struct layout_ids ids;
	int rc;

	startup_log(&st, cf);
	if (layout_users(cf->mail_owner, cf->smapd_user, &ids, why,
	    sizeof(why)) < 0)
		startup_fail(&st, EX_CONFIG, "%s: %s", st.conf, why);
	q->spool_uid = ids.smap_uid;
	if (layout_check(cf->spool_directory, &ids, SIDE_ALL, startup_say,
	    &st) > 0)
		startup_fail(&st, EX_CONFIG, "the spool %s is not laid out for "
		    "smap and smapd (see above; smapd -P)", cf->spool_directory);
	if (chdir(cf->spool_directory) < 0)
		startup_fail(&st, EX_OSERR, "%s: %s", cf->spool_directory,
		    strerror(errno));
	if (jail_enter(NULL, cf->smapd_user, q->t.kind == T_SENDMAIL ?
	    JAIL_ALLOW_SETGID : 0, why, sizeof(why)) < 0)
		startup_fail(&st, EX_OSERR, "cannot drop privileges to %s: %s",
		    cf->smapd_user, why);
	if (layout_open(&q->dirs, why, sizeof(why)) < 0)
		startup_fail(&st, EX_OSERR, "%s/%s", cf->spool_directory, why);
	if ((rc = sandbox_smapd(why, sizeof(why))) < 0)
		startup_fail(&st, EX_OSERR, "%s", why);
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

/* do_reload - SIGHUP: the log reopened; the new configuration, if it is
 * good and changes nothing a reload cannot */
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
	if (log_reopen() < 0)
		log_warn("cannot reopen %s, still writing the old one: %s",
		    cf->maillog_file, strerror(errno));
	if (load(&fresh, &t) < 0) {
		log_warn("%s has errors; keeping the running configuration",
		    st.conf);
	} else if ((no = unreloadable(cf, &fresh, &q->t, &t)) != NULL ||
	    layout_users(fresh.mail_owner, fresh.smapd_user, &ids, why,
	    sizeof(why)) < 0) {
		log_warn("%s: reload refused, keeping the running configuration: "
		    "%s", st.conf, no != NULL ? no : why);
		conf_free(&fresh);
	} else {
		conf_free(cf);
		*cf = fresh;
		q->t = t;
		q->spool_uid = ids.smap_uid;	/* who writes new/ from now on */
		log_info("reloaded %s", st.conf);
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

/* watch - inotify on new/ (smap's commits) and queue/ (smapq's requests) */
static int
watch(void)
{
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (ino >= 0 && (inotify_add_watch(ino, layout_name(L_NEW), IN_MOVED_TO |
	    IN_CLOSE_WRITE) < 0 || inotify_add_watch(ino, layout_name(L_QUEUE),
	    IN_CLOSE_WRITE | IN_ATTRIB) < 0))
		log_warn("inotify on %s: %s", layout_name(L_NEW), strerror(errno));
	return ino;
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

/* run - queue runs until stopped: a full one every queue_run_delay (or
 * when a retry is due), a pickup whenever smap commits */
static void
run(struct conf *cf, struct qctx *q, int once)
{
	int ino = once ? -1 : watch();
	time_t full_at = 0;
	long long wait;

	log_info("started, delivering by %s", cf->default_transport);
	notify("READY=1");
	while (!stop) {
		int full = time(NULL) >= full_at || q->flush;

		wait = queue_run(q, full);
		if (!once)
			q->flush = 0;
		if (full) {
			sweep(q);
			full_at = time(NULL) + wait;
			status(q);
		}
		if (once)
			break;
		switch (wait_for(ino, full_at > time(NULL) ? full_at - time(NULL) : 0)) {
		case 2:
			q->flush = 1;
			break;
		case 1:
			full_at = 0;
			break;
		}
		if (reload)
			do_reload(cf, q);
	}
	notify("STOPPING=1");
	log_info("stopped");
}

/* check - -t; -P: the spool laid out, then checked: the exit status */
static int
check(const struct conf *cf, const struct transport *t, int prepare)
{
	struct layout_ids ids;
	char why[512];

	if (prepare) {
		if (layout_users(cf->mail_owner, cf->smapd_user, &ids, why,
		    sizeof(why)) < 0)
			startup_fail(&st, EX_CONFIG, "%s: %s", st.conf, why);
		if (layout_prepare(cf->spool_directory, &ids, startup_say, &st) > 0)
			return EX_OSERR;
		st.problems = 0;	/* what -P did is not a problem */
		return startup_check(&st, cf, SIDE_ALL) ? EX_CONFIG : 0;
	}
	return check_smapd(&st, cf, t) ? EX_CONFIG : 0;
}

/* options - the command line: the mode (t, P, n, d, V; 0 to run), -c,
 * -1 (*once) and -f (*flush); a bad one exits with the usage */
static int
options(int argc, char **argv, int *once, int *flush)
{
	int ch, mode = 0;

	while ((ch = getopt(argc, argv, "c:1tPfndV")) != -1) {
		if (ch == 'c')
			st.conf = optarg;
		else if (ch == '1' || ch == 'f')
			*(ch == '1' ? once : flush) = 1;
		else if (ch == '?')
			mode = '?';
		else
			mode = ch;
	}
	if (mode == '?' || optind != argc) {
		fprintf(stderr, "usage: smapd [-c config] "
		    "[-1 [-f] | -t | -P | -n | -d | -V]\n");
		exit(EX_USAGE);
	}
	return mode;
}

/* one_shot - -t, -P (check); -n, -d (print the configuration): the
 * exit status */
static int
one_shot(int mode, const struct conf *cf, const struct transport *t)
{
	if (mode == 't' || mode == 'P')
		return check(cf, t, mode == 'P');
	return conf_print(stdout, cf, mode == 'd'), 0;
}

int
main(int argc, char **argv)
{
	static struct conf cf;
	static struct qctx q;
	int once = 0, mode = options(argc, argv, &once, &q.flush);

	if (mode == 'V')
		return puts("smapd " SMAP_VERSION) < 0;
	if (load(&cf, &q.t) < 0)
		startup_fail(&st, EX_CONFIG, "%s: bad configuration (see above)",
		    st.conf);
	if (mode != 0)
		return one_shot(mode, &cf, &q.t);
	q.cf = &cf;
	q.stop = &stop;
	setup(&cf, &q);
	signals();
	run(&cf, &q, once);
	conf_free(&cf);
	return 0;
}
