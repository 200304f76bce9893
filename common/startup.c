/*
 * startup.c - the start of smap, smapd and smapq (see startup.h).
 *
 * TRUST: the command line and the configuration file. Nothing a client
 * sends is read here; the only byte written to a client is the fixed
 * 421 line.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "log.h"
#include "startup.h"
#include "suffix.h"

#define BUSY "421 4.3.0 Service temporarily unavailable\r\n"

/* startup_fail - stderr, the log, the client; then exit */
void
startup_fail(struct startup *st, int status, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", st->prog, msg);
	if (!st->logging)	/* under inetd nobody reads stderr: syslog */
		log_open(st->ident, "mail", "");
	log_fatal("%s", msg);
	if (st->client)
		(void)!write(STDOUT_FILENO, BUSY, sizeof(BUSY) - 1);
	exit(status);
}

/* startup_load - the configuration, or every error and exit 78 */
void
startup_load(struct startup *st, struct conf *cf)
{
	static char err[8192];
	size_t n;

	if (conf_load(cf, st->conf, err, sizeof(err)) == 0)
		return;
	n = strlen(err);
	if (n > 0 && err[n - 1] == '\n')
		err[n - 1] = '\0';
	startup_fail(st, EX_CONFIG, "bad configuration:\n%s", err);
}

/* startup_log - syslog or maillog_file */
void
startup_log(struct startup *st, const struct conf *cf)
{
	if (log_open(st->ident, cf->syslog_facility, cf->maillog_file) < 0)
		startup_fail(st, EX_CONFIG, "maillog_file %s: cannot open it: %s",
		    cf->maillog_file, strerror(errno));
	st->logging = 1;
}

/* startup_say - one problem */
void
startup_say(void *ctx, const char *line)
{
	struct startup *st = ctx;

	st->problems++;
	fprintf(stderr, "%s: %s%s: %s\n", st->prog, st->warn ? "warning: " : "",
	    st->conf, line);
	if (st->logging)
		log_warn("%s: %s", st->conf, line);
}

/* suffixes - ".co.uk" in relay_domains relays for everyone under a
 * public suffix, as ".com" does (which the configuration's own check
 * refuses): an error unless allow_open_relay; the list is asked here,
 * by -t only, since loading it costs more than a session */
static void
suffixes(struct startup *st, const struct conf *cf)
{
	const char *d;
	char err[256];
	size_t i;
	int r, ln = conf_line(cf, "relay_domains");

	for (i = 0; i < cf->relay_domains.n && !cf->allow_open_relay; i++) {
		d = cf->relay_domains.v[i];
		if (d[0] != '.' || strchr(d + 1, '.') == NULL ||
		    (r = suffix_public(d + 1, err, sizeof(err))) == 0)
			continue;
		if (r < 0) {
			fprintf(stderr, "%s: warning: relay_domains: not checked "
			    "against the public suffix list: %s\n", st->prog, err);
			return;
		}
		st->problems++;
		fprintf(stderr, "%s:%d: relay_domains: \"%s\" is every domain "
		    "under the public suffix \"%s\": this host would relay for "
		    "anyone to all of them; set allow_open_relay = yes if you "
		    "mean it\n", st->conf, ln, d, d + 1);
	}
}

/* startup_check - warnings, users, spool */
int
startup_check(struct startup *st, const struct conf *cf,
    enum layout_side side)
{
	static char warns[8192];

	if (conf_warnings(cf, st->conf, warns, sizeof(warns)) > 0)
		fputs(warns, stderr);
	suffixes(st, cf);
	(void)layout_check_config(cf, side, startup_say, st);
	return st->problems;
}

/* become - user's ids, as the jail would set them; 0 or -1 */
static int
become(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL || pw->pw_uid == 0)
		return -1;
	if (setgroups(1, &pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid,
	    pw->pw_gid) < 0 || setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		return -1;
	return 0;
}

/* startup_as - fn as user, in a child when we are root */
int
startup_as(struct startup *st, const struct conf *cf, const char *user,
    void (*fn)(struct startup *, const struct conf *))
{
	int p[2], status, n = 0, before = st->problems;
	pid_t pid;

	if (geteuid() != 0) {
		fn(st, cf);
		return st->problems - before;
	}
	fflush(stderr);
	if (pipe(p) < 0 || (pid = fork()) < 0) {
		startup_say(st, "cannot fork to check as the program's user");
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		st->problems = 0;
		if (become(user) == 0)
			fn(st, cf);
		else
			startup_say(st, "cannot take on the program's user to check");
		fflush(stderr);
		_exit(write(p[1], &st->problems, sizeof(int)) == sizeof(int) ? 0 : 1);
	}
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (read(p[0], &n, sizeof(n)) != (ssize_t)sizeof(n))
		n = 1;
	close(p[0]);
	if (!st->warn)
		st->problems += n;
	return n;
}

/* startup_readable - may this process read the file? */
int
startup_readable(struct startup *st, const char *key, const char *path)
{
	char line[4400];
	FILE *fp = fopen(path, "re");

	if (fp != NULL) {
		fclose(fp);
		return 0;
	}
	snprintf(line, sizeof(line), "%s: %s: %s (as uid %lu)", key, path,
	    errno == ENOENT ? "no such file" : errno == EACCES ?
	    "permission denied" : strerror(errno), (unsigned long)geteuid());
	startup_say(st, line);
	return 1;
}
