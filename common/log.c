/*
 * log.c - Postfix-shaped log lines, to syslog or to a file.
 *
 * Trusts its callers to have escaped attacker-supplied strings with
 * log_esc(). Opened before the jail; after chroot only the already
 * open descriptor (file) or socket (syslog, LOG_NDELAY) is used.
 *
 * Built with musl (the static smap), syslog lines are written here, in
 * glibc's syslog(3) format, to a datagram socket connected to /dev/log:
 * musl's syslog(3) stamps the line with UTC, cuts the ident at 31
 * bytes and the line at 1,024.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"

static int log_fd = -1;		/* file or stderr; -1: syslog */
static char log_path[4096];	/* the file, for log_reopen() */
static char log_ident_buf[64];
static int log_fac = LOG_MAIL;
static char log_host[64];
#ifndef __GLIBC__
static int log_sock = -1;	/* connected to /dev/log */

/* syslog_connect - the socket to /dev/log, as openlog(LOG_NDELAY) makes
 * it; a failure leaves log lines unwritten, as syslog(3) would */
static void
syslog_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };

	log_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (log_sock >= 0 && connect(log_sock, (struct sockaddr *)&sa,
	    sizeof(sa)) < 0) {
		(void)close(log_sock);
		log_sock = -1;
	}
}
#endif

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

/* log_facility - syslog facility code by name */
int
log_facility(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].code;
	return -1;
}

/* log_open - choose the destination; call before the jail */
int
log_open(const char *ident, const char *facility, const char *file)
{
	int fac = log_facility(facility);
	char *dot;

	log_fac = fac < 0 ? LOG_MAIL : fac;
	snprintf(log_ident_buf, sizeof(log_ident_buf), "%s", ident);
	if (gethostname(log_host, sizeof(log_host)) != 0)
		snprintf(log_host, sizeof(log_host), "localhost");
	log_host[sizeof(log_host) - 1] = '\0';
	if ((dot = strchr(log_host, '.')) != NULL)
		*dot = '\0';
	tzset();
	if (file == NULL || *file == '\0') {
#ifdef __GLIBC__
		openlog(log_ident_buf, LOG_PID | LOG_NDELAY, log_fac);
#else
		syslog_connect();
#endif
		return 0;
	}
	if (strcmp(file, "/dev/stderr") == 0)
		log_fd = STDERR_FILENO;
	else
		log_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		    O_NOCTTY, 0640);
	if (log_fd >= 0 && log_fd != STDERR_FILENO)
		snprintf(log_path, sizeof(log_path), "%s", file);
	return log_fd < 0 ? -1 : 0;
}

/* log_reopen - the file again (renamed by logrotate); the old one is kept
 * when the new one cannot be opened */
int
log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return 0;	/* syslog or stderr */
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0640);
	if (fd < 0)
		return -1;
	(void)dup3(fd, log_fd, O_CLOEXEC);
	(void)close(fd);
	return 0;
}

#ifdef __GLIBC__
/* log_syslog - one line to syslog(3) under ident */
static void
log_syslog(const char *ident, int prio, const char *fmt, va_list ap)
{
	static char as[64];	/* syslog keeps the pointer it is given */

	if (strcmp(ident, log_ident_buf) == 0) {
		vsyslog(prio, fmt, ap);
		return;
	}
	snprintf(as, sizeof(as), "%s", ident);
	openlog(as, LOG_PID | LOG_NDELAY, log_fac);
	vsyslog(prio, fmt, ap);
	openlog(log_ident_buf, LOG_PID | LOG_NDELAY, log_fac);
}
#endif

/* line_start - a line's start: "<PRI>" for syslog, the time, the host for
 * a file, ident[pid]: */
static int
line_start(char *line, size_t len, const char *ident, int prio)
{
	struct tm tm;
	time_t now = time(NULL);
	int n = log_fd < 0 ? snprintf(line, len, "<%d>", prio | log_fac) : 0;

	localtime_r(&now, &tm);
	n += (int)strftime(line + n, len - (size_t)n, "%b %e %H:%M:%S ", &tm);
	n += snprintf(line + n, len - (size_t)n, "%s%s%.63s[%ld]: ",
	    log_fd < 0 ? "" : log_host, log_fd < 0 ? "" : " ", ident,
	    (long)getpid());
	return n;
}

/* log_line - one line under ident: to the file, prefixed like a syslog
 * file line, or to syslog */
static void
log_line(const char *ident, int prio, const char *fmt, va_list ap)
{
	char line[2048];
	int n, m;

#ifdef __GLIBC__
	if (log_fd < 0) {
		log_syslog(ident, prio, fmt, ap);
		return;
	}
#endif
	n = line_start(line, sizeof(line), ident, prio);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
#ifndef __GLIBC__
	if (log_fd < 0) {
		(void)send(log_sock, line, (size_t)n, MSG_NOSIGNAL);
		return;
	}
#endif
	line[n++] = '\n';
	(void)!write(log_fd, line, (size_t)n);
}

/* log_msg - one line under the program's ident */
void
log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(log_ident_buf, prio, fmt, ap);
	va_end(ap);
}

/* log_msg_as - one line under ident (NULL: the program's) */
void
log_msg_as(const char *ident, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(ident != NULL ? ident : log_ident_buf, prio, fmt, ap);
	va_end(ap);
}

/* log_hex - "\\xNN" for c, the escape of every byte shown as hex */
size_t
log_hex(char *dst, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	dst[0] = '\\';
	dst[1] = 'x';
	dst[2] = hex[c >> 4];
	dst[3] = hex[c & 15];
	return 4;
}

/* log_esc - printable copy of untrusted bytes, "..." when cut short */
char *
log_esc(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t i, o = 0;

	if (dstlen < 4) {
		if (dstlen > 0)
			*dst = '\0';
		return dst;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		int plain = c >= 0x20 && c < 0x7f && c != '\\';

		if (o + (plain ? 1 : 4) > dstlen - 4) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (plain)
			dst[o++] = (char)c;
		else
			o += log_hex(dst + o, c);
	}
	dst[o] = '\0';
	return dst;
}
