/*
 * check.c - what smapd -t checks, beyond the configuration and the
 * spool's owners and modes (startup.c, layout_check.c): that smapd,
 * as smapd_user, can read what it picks up and use what its transport
 * needs (the sendmail program, the Maildir, the next hop's name, the
 * TLS and SASL files). Each problem is one line in plain words.
 *
 * TRUST: the configuration. Names are resolved (getaddrinfo) only for
 * an SMTP or LMTP next hop given by name; nothing else is looked up.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "check.h"
#include "layout.h"

static const struct transport *checked;	/* for the child of startup_as() */

/* problem - one line, formatted */
static void __attribute__((format(printf, 2, 3)))
problem(struct startup *st, const char *fmt, ...)
{
	char line[4400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	startup_say(st, line);
}

/* words - errno in the words an admin reads */
static const char *
words(int err)
{
	return err == ENOENT ? "no such file or directory" : err == EACCES ?
	    "permission denied" : strerror(err);
}

/* spool_readable - smapd can list incoming/new and use its own dirs */
static void
spool_readable(struct startup *st, const struct conf *cf)
{
	static const char *const dirs[] = { LAYOUT_INCOMING "/" LAYOUT_NEW,
		LAYOUT_INCOMING "/" LAYOUT_TMP, "queue", "state", "hold",
		"quarantine" };
	char path[4200];
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", cf->spool_directory, dirs[i]);
		if (access(path, R_OK | W_OK | X_OK) < 0)
			problem(st, "%s: smapd_user %s cannot use it: %s", path,
			    cf->smapd_user, words(errno));
	}
}

/* maildir_usable - the Maildir is a directory we may write, or it is
 * missing below one we may write (the transport then makes it); errno 0
 * when the path is there but no directory */
static int
maildir_usable(const char *path)
{
	char parent[4200];
	struct stat sb;
	size_t n = strlen(path);

	errno = 0;
	if (stat(path, &sb) == 0)
		return S_ISDIR(sb.st_mode) && access(path, W_OK | X_OK) == 0;
	if (errno != ENOENT || n >= sizeof(parent))
		return 0;
	memcpy(parent, path, n + 1);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	while (n > 1 && parent[n - 1] != '/')
		parent[--n] = '\0';
	return access(parent, W_OK | X_OK) == 0;
}

/* transport_usable - the program, the Maildir, the next hop's name */
static void
transport_usable(struct startup *st, const struct conf *cf,
    const struct transport *t)
{
	struct addrinfo hints = { 0 }, *ai;
	struct stat sb;
	int rc;

	if (t->kind == T_SENDMAIL && (stat(cf->sendmail_path, &sb) < 0 ||
	    !S_ISREG(sb.st_mode) || access(cf->sendmail_path, X_OK) < 0))
		problem(st, "sendmail_path %s: smapd_user %s cannot run it: %s",
		    cf->sendmail_path, cf->smapd_user, errno ? words(errno) :
		    "not a regular file");
	if (t->kind == T_MAILDIR && !maildir_usable(t->path))
		problem(st, "default_transport maildir:%s: smapd_user %s cannot "
		    "write it: %s", t->path, cf->smapd_user, errno ? words(errno) :
		    "not a directory");
	if (t->kind == T_LMTP && t->path[0] != '\0' && (stat(t->path, &sb) < 0 ||
	    !S_ISSOCK(sb.st_mode)))
		problem(st, "default_transport lmtp:unix:%s: %s", t->path,
		    errno ? words(errno) : "not a socket");
	if ((t->kind != T_SMTP && t->kind != T_LMTP) || t->literal ||
	    t->path[0] != '\0')
		return;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(t->host, NULL, &hints, &ai)) != 0)
		problem(st, "default_transport: the next hop %s does not resolve: "
		    "%s", t->host, gai_strerror(rc));
	else
		freeaddrinfo(ai);
}

/* tls_readable - smapd's own TLS and SASL files */
static void
tls_readable(struct startup *st, const struct conf *cf)
{
	const char *const key[] = { "smtp_tls_CAfile", "smtp_tls_cert_file",
		"smtp_tls_key_file", "smtp_sasl_password_maps" };
	const char *const path[] = { cf->smtp_tls_CAfile, cf->smtp_tls_cert_file,
		cf->smtp_tls_key_file, cf->smtp_sasl_password_maps };
	size_t i;

	for (i = 0; i < sizeof(key) / sizeof(key[0]); i++)
		if (path[i][0] != '\0')
			(void)startup_readable(st, key[i], path[i]);
}

/* as_smapd - everything above, in the child that is smapd_user */
static void
as_smapd(struct startup *st, const struct conf *cf)
{
	spool_readable(st, cf);
	transport_usable(st, cf, checked);
	tls_readable(st, cf);
}

/* check_smapd - smapd -t: the problems found, as smapd will run */
int
check_smapd(struct startup *st, const struct conf *cf,
    const struct transport *t)
{
	(void)startup_check(st, cf, SIDE_ALL);
	checked = t;
	(void)startup_as(st, cf, cf->smapd_user, as_smapd);
	return st->problems;
}
