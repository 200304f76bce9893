/*
 * main.c - smap: one SMTP session on fd 0/1, jailed.
 *
 * Started by inetd, xinetd, tcpserver or systemd (Accept=yes) with the
 * connection on fd 0 and 1. Reads the configuration, opens the log,
 * makes the checks -t makes, jails itself (see jail.h), and only then
 * reads from the client. When it cannot serve, it says why on stderr
 * and in the log and answers 421 4.3.0 (startup.h). Trusts its command
 * line and configuration file; nothing else. The default build is
 * linked statically; for -t, and where TLS is on, it runs smap-dynamic
 * instead (the same smap with the module loader, common/static/notls.c),
 * before anything else is done.
 *
 * Exit status: 0 after a session, 78 (EX_CONFIG) for a bad
 * configuration, 71 (EX_OSERR) when the jail cannot be entered,
 * 64 (EX_USAGE) for a bad command line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "conf.h"
#include "jail.h"
#include "layout_check.h"
#include "log.h"
#include "sandbox.h"
#include "smtpd.h"
#include "startup.h"
#include "tls_server.h"
#include "trusted.h"

#ifndef SMAP_VERSION
#define SMAP_VERSION "unknown"
#endif

/* connected - fd 0 a connected socket (a client waits), 0 when it is no
 * socket at all, -1 when its peer is gone already (reset: a health
 * check); a listening one (Accept=no) cannot be served */
static int
connected(struct startup *st)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int on = 1;

	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &len) == 0)
		return 1;
	if (errno != ENOTCONN)
		return 0;
	len = sizeof(on);
	if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 &&
	    !on)
		return -1;
	startup_fail(st, EX_USAGE, "standard input is a socket with no peer: "
	    "a listening socket? (systemd needs Accept=yes, "
	    "systemd-socket-activate --accept)");
	return 0;
}

/* tls_files - smtpd_tls_cert_file, _key_file, _CAfile readable by us */
static void
tls_files(struct startup *st, const struct conf *cf)
{
	if (startup_readable(st, "smtpd_tls_cert_file", cf->smtpd_tls_cert_file) +
	    startup_readable(st, "smtpd_tls_key_file", cf->smtpd_tls_key_file) +
	    (cf->smtpd_tls_CAfile[0] ? startup_readable(st, "smtpd_tls_CAfile",
	    cf->smtpd_tls_CAfile) : 0) > 0 && geteuid() != 0)
		startup_say(st, "TLS: smap, started as this user, cannot read "
		    "its certificate or key (see above)");
}

/* tls_setup - smap-tls.so (only if root's, built for this smap) and the
 * server context, before the jail; NULL when TLS is off or on failure
 * (each problem said) */
static const struct tls_server *
tls_setup(struct startup *st, const struct conf *cf)
{
	const struct tls_server *tls;
	char path[4096], why[4200], line[4300];
	int n = st->problems;

	if (cf->smtpd_tls_security_level == TLS_NONE &&
	    !cf->smtpd_tls_wrappermode)
		return NULL;
	if (cf->smtpd_tls_cert_file[0] == '\0') {
		snprintf(why, sizeof(why), "%s:%d: TLS is on (smtpd_tls_security_level"
		    " or smtpd_tls_wrappermode) but smtpd_tls_cert_file is empty",
		    st->conf, conf_line(cf, "smtpd_tls_security_level"));
		startup_say(st, why);
		return NULL;
	}
	tls_files(st, cf);
	snprintf(path, sizeof(path), "%s/smap-tls.so", cf->shlib_directory);
	if ((tls = trusted_dlsym(path, TLS_SERVER_SYMBOL, why, sizeof(why))) !=
	    NULL && tls->abi != TLS_SERVER_ABI)
		snprintf(why, sizeof(why), "%s: built for another smap", path);
	else if (tls != NULL && (st->problems > n || tls->init(
	    cf->smtpd_tls_cert_file, cf->smtpd_tls_key_file, cf->smtpd_tls_CAfile,
	    cf->relay_clientcerts[0] != '\0', why, sizeof(why)) == 0))
		return st->problems == n ? tls : NULL;
	snprintf(line, sizeof(line), "TLS: %s", why);
	startup_say(st, line);
	return NULL;
}

/* rcpt_map - relay_recipient_maps, opened once; on failure the session
 * goes on and answers 451 for the recipients it governs */
static void
rcpt_map(struct startup *st, const struct conf *cf, struct opened *o)
{
	char line[MAP_WHY_MAX + 64];

	if (cf->relay_recipient_maps[0] == '\0' ||
	    map_open(&o->rcpt, cf->relay_recipient_maps, o->rcpt_why,
	    sizeof(o->rcpt_why)) == 0)
		return;
	snprintf(line, sizeof(line), "relay_recipient_maps: %s", o->rcpt_why);
	if (st->logging)	/* a session: 451 for what it governs */
		log_warn("%s: %s; recipients in relay_domains get 451", st->conf,
		    line);
	else
		startup_say(st, line);
}

/* check - smap -t: what a session checks before it serves; exit status */
static int
check(struct startup *st, const struct conf *cf)
{
	int n;

	static struct opened o;

	(void)startup_check(st, cf, SIDE_SMAP);
	(void)tls_setup(st, cf);
	rcpt_map(st, cf, &o);
	n = st->problems;	/* as root, all is readable: ask mail_owner */
	st->warn = 1;
	if (geteuid() == 0 && cf->smtpd_tls_cert_file[0] &&
	    startup_as(st, cf, cf->mail_owner, tls_files) > 0)
		fprintf(stderr, "smap: warning: fine for a smap started as root "
		    "(inetd, xinetd, tcpserver), not for one started as %s "
		    "(systemd's smap@.service)\n", cf->mail_owner);
	st->warn = 0;
	st->problems = n;
	return st->problems ? EX_CONFIG : 0;
}

/* start - log, TLS, tables, jail: all before the first byte is read */
static void
start(struct startup *st, const struct conf *cf, struct opened *o)
{
	static char ident[80];
	char err[1024], root[4096];

	snprintf(ident, sizeof(ident), "%s/smtpd", cf->syslog_name);
	st->ident = ident;
	startup_log(st, cf);
	(void)layout_check_config(cf, SIDE_SMAP, startup_say, st);
	o->tls = tls_setup(st, cf);
	rcpt_map(st, cf, o);
	if (st->problems > 0)
		startup_fail(st, EX_CONFIG, "cannot serve: %d problem(s), see "
		    "above or smap -t", st->problems);
	if (layout_chroot(cf->spool_directory, root, sizeof(root)) < 0 ||
	    jail_enter(root, cf->mail_owner, 0, err, sizeof(err)) < 0 ||
	    sandbox_smap(err, sizeof(err)) < 0)
		startup_fail(st, EX_OSERR, "cannot enter the jail %s as %s: %s",
		    root, cf->mail_owner, err);
}

int
main(int argc, char **argv)
{
	static struct session s;
	static struct conf cf;	/* lives as long as the process */
	static struct opened o;
	struct startup st = { "smap", "smap/smtpd", "/etc/smap/smap.conf", 0, 0, 0, 0 };
	int ch, mode = 0, peer = 0;

	while ((ch = getopt(argc, argv, "c:tndV")) != -1) {
		if (ch == 'c')
			st.conf = optarg;
		else if (ch == 't' || ch == 'n' || ch == 'd' || ch == 'V')
			mode = ch;
		else
			mode = '?';
	}
	if (mode == '?' || optind != argc) {
		fprintf(stderr, "usage: smap [-c config] [-t | -n | -d | -V]\n");
		return EX_USAGE;
	}
	if (mode == 'V')
		return puts("smap " SMAP_VERSION) < 0;
	st.client = mode == 0 && (peer = connected(&st)) != 0;
	startup_load(&st, &cf);
	if (mode == 't' || (mode == 0 && (cf.smtpd_tls_wrappermode ||
	    cf.smtpd_tls_security_level != TLS_NONE)))	/* static: trusted.h */
		trusted_modules_exec(cf.shlib_directory, argv);
	if (mode == 't')
		return check(&st, &cf);
	if (mode != 0)
		return conf_print(stdout, &cf, mode == 'd'), 0;
	start(&st, &cf, &o);
	if (peer < 0) {		/* nothing left to serve */
		log_info("lost connection before CONNECT: reset by the peer");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A backstop beyond every timeout: no session outlives this. */
	alarm((unsigned)(cf.smtpd_session_deadline + cf.smtpd_timeout + 60));
	session_run(&s, &cf, &o, STDIN_FILENO, STDOUT_FILENO);
	return 0;
}
