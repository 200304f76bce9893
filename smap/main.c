/*
 * main.c - smap: one SMTP session on fd 0/1, jailed.
 *
 * Started by inetd, xinetd, tcpserver or systemd (Accept=yes) with the
 * connection on fd 0 and 1. Reads the configuration, opens the log,
 * jails itself (see jail.h), and only then reads from the client.
 * Trusts its command line and configuration file; nothing else.
 *
 * Exit status: 0 after a session, 78 (EX_CONFIG) for a bad
 * configuration, 71 (EX_OSERR) when the jail cannot be entered,
 * 64 (EX_USAGE) for a bad command line.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "conf.h"
#include "jail.h"
#include "layout_setup.h"
#include "log.h"
#include "sandbox.h"
#include "session.h"
#include "tls_server.h"
#include "trusted.h"

#define EX_USAGE 64
#define EX_OSERR 71
#define EX_CONFIG 78

static const char *conf_path = "/etc/smap/smap.conf";

/* usage - the command line, then exit */
static void
usage(void)
{
	fprintf(stderr, "usage: smap [-c config] [-t | -n | -d]\n");
	exit(EX_USAGE);
}

/* connected - refuse a listening socket on fd 0 (Accept=no, no --accept) */
static int
connected(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &len) == 0 ||
	    errno != ENOTCONN)
		return 1;
	log_fatal("standard input is a socket with no peer: a listening "
	    "socket? (systemd needs Accept=yes, systemd-socket-activate --accept)");
	return 0;
}

/* tls_load - smap-tls.so from shlib_directory, opened once, checked by
 * its descriptor (trusted.h) and loaded from that very descriptor;
 * built for this smap; NULL and why if not */
static const struct tls_server *
tls_load(const char *dir, char *why, size_t len)
{
	const struct tls_server *tls = NULL;
	char path[4096], self[64];
	void *h;
	int fd;

	snprintf(path, sizeof(path), "%s/smap-tls.so", dir);
	if ((fd = trusted_open(path, why, len)) < 0)
		return NULL;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if ((h = dlopen(self, RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (tls = dlsym(h, TLS_SERVER_SYMBOL)) == NULL)
		snprintf(why, len, "%s: %s", path, dlerror());
	else if (tls->abi != TLS_SERVER_ABI) {
		snprintf(why, len, "%s: built for another smap", path);
		tls = NULL;
	}
	(void)close(fd);
	return tls;
}

/* tls_setup - OpenSSL and the server context, before the jail; NULL when off */
static const struct tls_server *
tls_setup(const struct conf *cf, char *why, size_t len)
{
	const struct tls_server *tls;

	if (strcmp(cf->smtpd_tls_security_level, "none") == 0 &&
	    !cf->smtpd_tls_wrappermode)
		return NULL;
	if (cf->smtpd_tls_cert_file[0] == '\0') {
		log_fatal("TLS is on but smtpd_tls_cert_file is empty");
		exit(EX_CONFIG);
	}
	if ((tls = tls_load(cf->shlib_directory, why, len)) == NULL ||
	    tls->init(cf->smtpd_tls_cert_file, cf->smtpd_tls_key_file,
	    cf->smtpd_tls_CAfile, cf->relay_clientcerts[0] != '\0', why, len) < 0) {
		log_fatal("TLS: %s", why);
		exit(EX_CONFIG);
	}
	return tls;
}

/* load - the configuration, or exit 78 with every error on stderr */
static void
load(struct conf *cf, char *err, size_t errlen)
{
	if (conf_load(cf, conf_path, err, errlen) == 0)
		return;
	fputs(err, stderr);
	/* Also to syslog: under inetd nobody reads stderr. */
	log_open("smap/smtpd", "mail", "");
	log_fatal("%s: bad configuration: %.400s", conf_path, err);
	exit(EX_CONFIG);
}

/* say - one problem found by -t, on stderr */
static void
say(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", conf_path, line);
}

/* check - smap -t: the configuration, the users, the spool; exit status */
static int
check(const struct conf *cf, char *err, size_t len)
{
	if (conf_warnings(cf, conf_path, err, len) > 0)
		fputs(err, stderr);
	return layout_check_config(cf, SIDE_SMAP, say, NULL) ? EX_CONFIG : 0;
}

int
main(int argc, char **argv)
{
	static struct session s;
	static char err[8192];
	static struct conf cf;	/* lives as long as the process */
	const struct tls_server *tls;
	char ident[80], root[4096];
	int ch, mode = 0;

	while ((ch = getopt(argc, argv, "c:tnd")) != -1) {
		if (ch == 'c')
			conf_path = optarg;
		else if (ch == 't' || ch == 'n' || ch == 'd')
			mode = ch;
		else
			usage();
	}
	if (optind != argc)
		usage();
	load(&cf, err, sizeof(err));
	if (mode != 0) {
		ch = mode == 't' ? check(&cf, err, sizeof(err)) : 0;
		if (mode != 't')
			conf_print(stdout, &cf, mode == 'd');
		conf_free(&cf);
		return ch;
	}
	snprintf(ident, sizeof(ident), "%s/smtpd", cf.syslog_name);
	if (log_open(ident, cf.syslog_facility, cf.maillog_file) < 0) {
		log_open(ident, cf.syslog_facility, "");
		log_fatal("cannot open %s: %m", cf.maillog_file);
		return EX_CONFIG;
	}
	if (!connected())
		return EX_USAGE;
	tls = tls_setup(&cf, err, sizeof(err));
	if (layout_chroot(cf.spool_directory, root, sizeof(root)) < 0 ||
	    jail_enter(root, cf.mail_owner, 0, err, sizeof(err)) < 0 ||
	    sandbox_smap(err, sizeof(err)) < 0) {
		log_fatal("cannot enter the jail %s as %s: %s", root, cf.mail_owner,
		    err);
		return EX_OSERR;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A backstop beyond every timeout: no session outlives this. */
	alarm((unsigned)(cf.smtpd_session_deadline + cf.smtpd_timeout + 60));
	session_run(&s, &cf, tls, STDIN_FILENO, STDOUT_FILENO);
	return 0;
}
