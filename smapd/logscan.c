/*
 * logscan.c - the log lines a review reads (review.h): the files named,
 * maillog_file, /var/log/mail.log, or journalctl's output; each line
 * split into its time, program and message.
 *
 * TRUST: log lines are written by every program on the host and hold
 * what clients sent (escaped by the programs that logged them): lines
 * are capped (LOG_LINE_MAX), every field is parsed strictly, and a
 * line that does not parse is passed on with time 0 or not at all.
 * journalctl runs without a shell, from a fixed path, with a fixed
 * argument list.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "lines.h"
#include "log.h"
#include "review.h"

#define MAIL_LOG "/var/log/mail.log"
#define JOURNALCTL "/usr/bin/journalctl"

/* add_fd - one source; what names it */
static void
add_fd(struct logs *lg, int fd, const char *name)
{
	size_t at = strlen(lg->what);

	if (fd < 0) {
		snprintf(lg->what + at, sizeof(lg->what) - at, "%s%s (%s)",
		    at ? ", " : "", name, strerror(errno));
		return;
	}
	if (lg->n >= LOGS_MAX) {
		(void)close(fd);
		return;
	}
	lg->fd[lg->n++] = fd;
	snprintf(lg->what + at, sizeof(lg->what) - at, "%s%s", at ? ", " : "",
	    name);
}

/* open_file - a log file, read-only, no controlling terminal */
static int
open_file(const char *path)
{
	if (strcmp(path, "-") == 0)
		return dup(STDIN_FILENO);
	return open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
}

/* journalctl - its output on a pipe: fd, or -1 */
static int
journalctl(struct logs *lg, const struct conf *cf, long long since)
{
	char fac[32], from[40];
	char *argv[] = { "journalctl", "-q", "--no-pager", "-o", "short-iso",
		fac, since > 0 ? from : NULL, NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", "SYSTEMD_COLORS=0",
		NULL };
	int p[2], code = log_facility(cf->syslog_facility), nul;

	snprintf(fac, sizeof(fac), "SYSLOG_FACILITY=%d", (code < 0 ? LOG_MAIL :
	    code) >> 3);
	snprintf(from, sizeof(from), "--since=@%lld", since);
	if (access(JOURNALCTL, X_OK) < 0 || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((lg->child = fork()) == 0) {
		nul = open("/dev/null", O_RDWR);
		if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 ||
		    dup2(nul, STDERR_FILENO) < 0 || dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execve(JOURNALCTL, argv, envp);
		_exit(127);
	}
	(void)close(p[1]);
	if (lg->child < 0) {
		lg->child = 0;
		(void)close(p[0]);
		return -1;
	}
	return p[0];
}

/* logs_open - the sources, before the privilege drop */
void
logs_open(struct logs *lg, char **paths, size_t npaths,
    const struct conf *cf, long long since)
{
	size_t i;

	memset(lg, 0, sizeof(*lg));
	for (i = 0; i < npaths; i++)
		add_fd(lg, open_file(paths[i]), strcmp(paths[i], "-") == 0 ?
		    "standard input" : paths[i]);
	if (npaths > 0)
		return;
	if (cf->maillog_file[0] != '\0')
		add_fd(lg, open_file(cf->maillog_file), cf->maillog_file);
	else if (access(MAIL_LOG, F_OK) == 0)
		add_fd(lg, open_file(MAIL_LOG), MAIL_LOG);
	else
		add_fd(lg, journalctl(lg, cf, since), "journalctl");
}

/* logs_close - the sources closed, journalctl waited for */
void
logs_close(struct logs *lg)
{
	size_t i;

	for (i = 0; i < lg->n; i++)
		(void)close(lg->fd[i]);
	lg->n = 0;
	if (lg->child > 0) {
		(void)kill(lg->child, SIGTERM);
		while (waitpid(lg->child, NULL, 0) < 0 && errno == EINTR)
			;
		lg->child = 0;
	}
}

/* iso_offset - "Z", "+HH:MM", "+HHMM" at s: seconds east, its length */
static int
iso_offset(const char *s, size_t n, long *east, size_t *len)
{
	long h, m;

	if (n >= 1 && s[0] == 'Z')
		return (*east = 0), (*len = 1), 0;
	if (n < 5 || (s[0] != '+' && s[0] != '-') || (h = lines_digits(s + 1, 2)) < 0)
		return -1;
	if (s[3] == ':' && n >= 6 && (m = lines_digits(s + 4, 2)) >= 0)
		*len = 6;
	else if ((m = lines_digits(s + 3, 2)) >= 0)
		*len = 5;
	else
		return -1;
	*east = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
	return 0;
}

/* iso_time - "YYYY-MM-DDTHH:MM:SS[.frac](Z|offset)": the time and the
 * length, or -1 */
static long long
iso_time(const char *s, size_t n, size_t *len)
{
	struct tm tm = { 0 };
	size_t at = 19, olen;
	long east;

	if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	tm.tm_year = (int)lines_digits(s, 4) - 1900;
	tm.tm_mon = (int)lines_digits(s + 5, 2) - 1;
	tm.tm_mday = (int)lines_digits(s + 8, 2);
	tm.tm_hour = (int)lines_digits(s + 11, 2);
	tm.tm_min = (int)lines_digits(s + 14, 2);
	tm.tm_sec = (int)lines_digits(s + 17, 2);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 ||
	    tm.tm_min < 0 || tm.tm_sec < 0)
		return -1;
	if (s[at] == '.')
		for (at++; at < n && s[at] >= '0' && s[at] <= '9'; at++)
			;
	if (iso_offset(s + at, n - at, &east, &olen) < 0)
		return -1;
	*len = at + olen;
	return (long long)timegm(&tm) - east;
}

/* bsd_time - "Mmm dd HH:MM:SS" in local time, the year guessed (the
 * last one when this one's would be more than a day ahead) */
static long long
bsd_time(const char *s, size_t n, long long now)
{
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm = { 0 }, nt;
	time_t t = (time_t)now, v;

	if (n < 15 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' ||
	    localtime_r(&t, &nt) == NULL)
		return -1;
	for (tm.tm_mon = 0; tm.tm_mon < 12 &&
	    memcmp(mon + 3 * tm.tm_mon, s, 3) != 0; tm.tm_mon++)
		;
	if (tm.tm_mon == 12)
		return -1;
	tm.tm_mday = (int)lines_digits(s + 4 + (s[4] == ' '), s[4] == ' ' ? 1 : 2);
	tm.tm_hour = (int)lines_digits(s + 7, 2);
	tm.tm_min = (int)lines_digits(s + 10, 2);
	tm.tm_sec = (int)lines_digits(s + 13, 2);
	tm.tm_year = nt.tm_year;
	tm.tm_isdst = -1;
	if (tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_min < 0 || tm.tm_sec < 0)
		return -1;
	v = mktime(&tm);
	if ((long long)v > now + 86400) {
		tm.tm_year--;
		tm.tm_isdst = -1;
		v = mktime(&tm);
	}
	return (long long)v;
}

/* split - "TIME HOST IDENT[PID]: MSG" */
static int
split(const char *p, size_t n, long long now, struct logline *l)
{
	size_t at = 15, k;
	const char *sp, *colon;

	if ((l->t = iso_time(p, n, &at)) < 0 && (l->t = bsd_time(p, n, now)) < 0)
		return -1;
	if (at >= n || p[at] != ' ' ||
	    (sp = memchr(p + at + 1, ' ', n - at - 1)) == NULL)
		return -1;	/* the host */
	l->ident = sp + 1;
	k = n - (size_t)(l->ident - p);
	if ((colon = memchr(l->ident, ':', k)) == NULL ||
	    (size_t)(colon - l->ident) + 1 >= k || colon[1] != ' ')
		return -1;
	l->ident_len = (size_t)(colon - l->ident);
	l->msg = colon + 2;
	l->msg_len = n - (size_t)(l->msg - p);
	if (l->ident_len > 0 && l->ident[l->ident_len - 1] == ']')
		for (k = l->ident_len; k > 0; k--)
			if (l->ident[k - 1] == '[') {
				l->ident_len = k - 1;
				break;
			}
	return 0;
}

/* logs_scan - every line of every source to fn */
void
logs_scan(struct logs *lg, long long now,
    void (*fn)(void *ctx, const struct logline *l), void *ctx)
{
	static struct lines lr;
	struct logline l;
	enum lstatus st;
	const char *p;
	size_t i, n;

	for (i = 0; i < lg->n; i++) {
		lines_init(&lr, lg->fd[i], LOG_LINE_MAX, -1);
		while ((st = lines_next(&lr, &p, &n)) != L_END && st != L_ERR)
			if ((st == L_LINE || st == L_PARTIAL) &&
			    split(p, n, now, &l) == 0)
				fn(ctx, &l);
	}
}

/* head_parse - "day=D records=N mac=HEX", exactly, n bytes at s */
int
head_parse(const char *s, size_t n, struct jhead *h)
{
	char day[JDAY_LEN];
	const char *r = s + 4 + JDAY_LEN, *m;
	size_t k;

	if (n < 4 + JDAY_LEN + 8 || memcmp(s, "day=", 4) != 0 ||
	    s[3 + JDAY_LEN] != ' ' || memcmp(r, "records=", 8) != 0)
		return -1;
	memcpy(day, s + 4, JDAY_LEN - 1);
	day[JDAY_LEN - 1] = '\0';
	r += 8;
	for (k = 0; r + k < s + n && r[k] >= '0' && r[k] <= '9' && k < 10; k++)
		;
	m = r + k;
	if (k == 0 || r[0] == '0' || m + 5 + JMAC_HEX != s + n ||
	    memcmp(m, " mac=", 5) != 0 || jday_parse(day, &h->day) < 0 ||
	    junhex(m + 5, JMAC_LEN, h->mac) < 0)
		return -1;
	h->records = (long)lines_digits(r, k);
	return 0;
}

/* log_head - "journal head: day=D records=N mac=HEX" from smap/ */
int
log_head(const struct logline *l, struct jhead *h)
{
	static const char *const what[] = { "journal head: ",
		"journal closed: ", "journal started: " };
	size_t i, k;

	if (l->ident_len < 5 || memcmp(l->ident, "smap/", 5) != 0)
		return 0;
	for (i = 0; i < 3; i++) {
		k = strlen(what[i]);
		if (l->msg_len > k && memcmp(l->msg, what[i], k) == 0 &&
		    head_parse(l->msg + k, l->msg_len - k, h) == 0) {
			h->sec = l->t;
			return 1;
		}
	}
	return 0;
}

/* heads_add - one more head, the array grown as needed */
void
heads_add(struct heads *hs, const struct jhead *h)
{
	struct jhead *nv;
	size_t cap;

	if (hs->n == hs->cap) {
		cap = hs->cap ? 2 * hs->cap : 64;
		if (hs->n >= HEADS_MAX ||
		    (nv = realloc(hs->v, cap * sizeof(*nv))) == NULL)
			return;
		hs->v = nv;
		hs->cap = cap;
	}
	hs->v[hs->n++] = *h;
}
