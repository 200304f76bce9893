/*
 * t_journal.c - unit tests for the journal: the chain's pieces
 * (smapd/journal_chain.c: days, keys and their evolution, MACs against
 * values computed independently, escaping, records both ways), the
 * writer (smapd/journal.c: records over several days, the roll-over and
 * the key's evolution, a cut record, a record that could not be written)
 * and the verifier (smapd/journal_verify.c), which must find each kind
 * of tampering at its day and line.
 *
 * Usage: t_journal
 *
 * Works in a fresh directory made with mkdtemp(3) below /tmp (removed
 * at the end), as smapd does in its spool: journal/ below the current
 * directory. The clock is the test's: time() and clock_gettime() are
 * wrapped at link time (see the Makefile) so that days pass at once.
 * Every write goes through a child process, as smapd's delivery workers
 * do, so that each one opens the journal afresh after a restore.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "../../smapd/journal.h"
#include "../../smapd/review.h"
#include "tap.h"

#define PATH_LEN	4096
#define T0		1795410000LL	/* 2026-11-23 05:00:00 UTC */
#define DAY0		20780L		/* 2026-11-23 */
#define LINES_MAX	64

static char work[] = "/tmp/t_journal.XXXXXX";
static long long fake_now;		/* 0: the real clock */
static long fake_ns;

time_t __real_time(time_t *t);
time_t __wrap_time(time_t *t);
int __real_clock_gettime(clockid_t c, struct timespec *ts);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts);

/* __wrap_time - the test's clock */
time_t
__wrap_time(time_t *t)
{
	time_t v = fake_now ? (time_t)fake_now : __real_time(NULL);

	if (t != NULL)
		*t = v;
	return v;
}

/* __wrap_clock_gettime - the test's clock, a microsecond per call */
int
__wrap_clock_gettime(clockid_t c, struct timespec *ts)
{
	if (!fake_now || c != CLOCK_REALTIME)
		return __real_clock_gettime(c, ts);
	fake_ns = (fake_ns + 1000) % 1000000000L;
	ts->tv_sec = (time_t)fake_now;
	ts->tv_nsec = fake_ns;
	return 0;
}

/* cleanup - remove the work directory */
static void
cleanup(void)
{
	if (chdir("/") == 0)
		(void)tap_rmtree(work);
}

/* hex_is - bytes as hex against the expected hex */
static int
hex_is(const unsigned char *b, const char *want, const char *desc)
{
	char got[JMAC_HEX + 1];

	jhex(b, JMAC_LEN, got);
	return tap_is(got, want, "%s", desc);
}

/* test_days - day numbers and names */
static void
test_days(void)
{
	static const char *const bad[] = { "2026-02-30", "2026-13-01",
		"2026-1-01", "2026-11-23x", "1969-12-31", "2026/11/23", "",
		"2026-11-2", "20261123000" };
	char name[JDAY_LEN];
	long d;
	size_t i;

	jday_name(0, name);
	tap_is(name, "1970-01-01", "day 0 is 1970-01-01");
	tap_ok(jday_of((time_t)T0) == DAY0, "2026-11-23 05:00 UTC is day %ld",
	    DAY0);
	jday_name(DAY0, name);
	tap_is(name, "2026-11-23", "day %ld is named 2026-11-23", DAY0);
	tap_ok(jday_parse("2026-11-23", &d) == 0 && d == DAY0,
	    "2026-11-23 parses back to day %ld", DAY0);
	tap_ok(jday_parse("2028-02-29", &d) == 0, "a leap day is a day");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tap_ok(jday_parse(bad[i], &d) < 0, "\"%s\" is no day file name",
		    bad[i]);
}

/* key0 - the test key: bytes 0..31, for day DAY0 */
static void
key0(struct jkey *k)
{
	size_t i;

	for (i = 0; i < JMAC_LEN; i++)
		k->k[i] = (unsigned char)i;
	k->day = DAY0;
}

/* test_keys - evolution against HMAC-SHA-256 computed elsewhere (Python's
 * hmac module), the one-line form */
static void
test_keys(void)
{
	static const char *const bad[] = { "smap-journal-key 2 2026-11-25 %.64s",
		"smap-journal-key 1 2026-11-25 %.63s", "journal-key 1 2026-11-25 %.64s",
		"smap-journal-key 1 2026-13-25 %.64s",
		"smap-journal-key 1 2026-11-25 %.64s x",
		"smap-journal-key 1 2026-11-25  %.64s" };
	char line[JKEY_LINE_MAX], text[JKEY_LINE_MAX + 80];
	struct jkey k, back;
	size_t i;

	key0(&k);
	tap_ok(jkey_next(&k) == 0 && k.day == DAY0 + 1, "next: one day later");
	hex_is(k.k, "48775f459dcaa72b7f4d6ac939efb0c93e8ea37f69248eeca82c61e7023ee45d",
	    "next = HMAC-SHA-256(key, \"next\")");
	key0(&k);
	tap_ok(jkey_advance(&k, DAY0 + 2) == 0 && k.day == DAY0 + 2,
	    "advance by two days");
	hex_is(k.k, "705d6da2cda41a01f1fc51355139f9f1cf9f9ea9b63d14dcd0fe98bc203f799a",
	    "two days on: next applied twice");
	tap_ok(jkey_advance(&k, DAY0) < 0, "a key never goes back a day");
	jkey_format(&k, line);
	tap_ok(strncmp(line, "smap-journal-key 1 2026-11-25 705d6da2", 38) == 0 &&
	    line[strlen(line) - 1] == '\n', "the key's line: %.40s...", line);
	tap_ok(jkey_parse(line, strlen(line), &back) == 0 && back.day == k.day &&
	    memcmp(back.k, k.k, JMAC_LEN) == 0, "the line parses back");
	snprintf(text, sizeof(text), "  \n%s\r\n", line);
	tap_ok(jkey_parse(text, strlen(text), &back) == 0, "white space around "
	    "it is allowed");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), bad[i], line + 30);
		tap_ok(jkey_parse(text, strlen(text), &back) < 0, "refused: %.40s",
		    text);
	}
	memcpy(text, line, strlen(line) + 1);
	text[40] = 'A';
	tap_ok(jkey_parse(text, strlen(text), &back) < 0, "upper-case hex refused");
}

/* test_put - values escaped, capped, never empty */
static void
test_put(void)
{
	char f[4096] = "", big[3000];

	tap_ok(jput(f, sizeof(f), "a", "x y\\z\n\x7f\xe9", 8) == 0, "jput");
	tap_is(f, " a=x\\x20y\\x5cz\\x0a\\x7f\\xe9", "space, backslash, LF, DEL, "
	    "8-bit: \\xHH");
	f[0] = '\0';
	(void)jput(f, sizeof(f), "e", "", 0);
	tap_is(f, " e=-", "an empty value is \"-\"");
	memset(big, 'v', sizeof(big));
	f[0] = '\0';
	(void)jput(f, sizeof(f), "b", big, sizeof(big));
	tap_ok(strlen(f) == 3 + JOURNAL_VALUE_MAX && strcmp(f + strlen(f) - 3,
	    "...") == 0, "a long value is cut at JOURNAL_VALUE_MAX, ending "
	    "\"...\" (%zu)", strlen(f));
	tap_ok(jput(f, 20, "x", "y", 1) < 0 && strlen(f) == 3 + JOURNAL_VALUE_MAX,
	    "a full buffer is refused and left as it was");
}

/* test_records - a record's line against an independent MAC, and back */
static void
test_records(void)
{
	static const unsigned char zero[JMAC_LEN];
	static struct jrec r;
	struct timespec ts = { (time_t)(T0 - 5 * 3600), 0 };
	char line[JOURNAL_LINE_MAX + 1], f[256] = "";
	unsigned char mac[JMAC_LEN];
	const char *why;
	struct jkey k;
	int n;

	key0(&k);
	(void)jput(f, sizeof(f), "day", "2026-11-23", 10);
	(void)jput(f, sizeof(f), "prev_day", "-", 1);
	(void)jput(f, sizeof(f), "prev_records", "0", 1);
	memset(line, '0', JMAC_HEX);
	line[JMAC_HEX] = '\0';
	(void)jput(f, sizeof(f), "prev_mac", line, JMAC_HEX);
	n = jrec_line(line, sizeof(line), &k, zero, 1, &ts, J_OPEN, f, mac);
	tap_ok(n > 0 && strncmp(line, "1 2026-11-23T00:00:00.000000Z open "
	    "day=2026-11-23 prev_day=- prev_records=0 prev_mac=0000", 80) == 0,
	    "an open record's line: %.60s...", line);
	hex_is(mac, "fb3934adacc68ca5c29c2a3492a0fa63303f15070053de6dd0d5cb64e7c4e049",
	    "its MAC = HMAC-SHA-256(key, 32 zero bytes || line up to \" mac=\")");
	tap_ok(jrec_parse(line, (size_t)n - 1, &r, &why) == 0 && r.seq == 1 &&
	    r.ev == J_OPEN && r.sec == T0 - 5 * 3600 && r.nf == 4 &&
	    memcmp(r.mac, mac, JMAC_LEN) == 0 && r.body_len == (size_t)n - 70,
	    "it parses back: number, event, time, fields, MAC");
	tap_is(jrec_get(&r, "prev_records"), "0", "a field's value");
	tap_ok(jrec_get(&r, "nothing") == NULL, "no such field");
}

/* parse_bad - a line that must not parse, and why */
static void
parse_bad(const char *line, const char *want)
{
	static struct jrec r;
	const char *why = "";
	int rc = jrec_parse(line, strlen(line), &r, &why);

	tap_ok(rc < 0 && strstr(why, want) != NULL, "not a record (%s): %.50s",
	    why, line);
}

/* test_parse_bad - what jrec_parse refuses */
static void
test_parse_bad(void)
{
	char mac[80], line[256];

	memset(mac, 'a', JMAC_HEX);
	mac[JMAC_HEX] = '\0';
	parse_bad("1 2026-11-23T00:00:00.000000Z open", "MAC");
#define L(s) (snprintf(line, sizeof(line), s " mac=%s", mac), line)
	parse_bad(L("01 2026-11-23T00:00:00.000000Z open"), "number");
	parse_bad(L("x 2026-11-23T00:00:00.000000Z open"), "number");
	parse_bad(L("1 2026-11-23 00:00:00.000000Z open"), "time");
	parse_bad(L("1 2026-11-23T25:00:00.000000Z open"), "time");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z opened"), "event");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open  a=b"), "name=value");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open a"), "name=value");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open A=b"), "name=value");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open a="), "name=value");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open a=\x7f"), "byte");
	parse_bad(L("1 2026-11-23T00:00:00.000000Z open a=\t"), "byte");
#undef L
	mac[5] = 'G';
	snprintf(line, sizeof(line), "1 2026-11-23T00:00:00.000000Z open mac=%s",
	    mac);
	parse_bad(line, "MAC");
}

/* child - fn run in a child process (a fresh journal writer), waited for */
static void
child(void (*fn)(void))
{
	pid_t pid;
	int status = 0;

	(void)fflush(stdout);	/* valgrind's exit flushes the child's copy */
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0) {
		fn();
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the writer (pid %ld) exits 0", (long)pid);
}

/* add - one record of event ev with one field */
static void
add(enum jevent ev, const char *id)
{
	char f[128] = "";

	(void)jput(f, sizeof(f), "id", id, strlen(id));
	journal_add(ev, f);
}

/* day0 - four records and two heads on 2026-11-23 */
static void
day0(void)
{
	fake_now = T0;
	add(J_ACCEPTED, "A1");
	add(J_ACCEPTED, "A2");
	add(J_ACCEPTED, "A3");
	journal_sync();
	(void)journal_tick((time_t)fake_now);
	fake_now = T0 + 3600;
	add(J_DELIVERED, "A1");
	(void)journal_tick((time_t)fake_now);
}

/* day1 - the next day: two records, the day rolled over first */
static void
day1(void)
{
	fake_now = T0 + 86400;
	add(J_DELIVERED, "A2");
	add(J_BOUNCED, "A3");
	(void)journal_tick((time_t)fake_now);
}

/* day3 - a day is skipped: 2026-11-26 */
static void
day3(void)
{
	fake_now = T0 + 3 * 86400;
	add(J_ACCEPTED, "B1");
	add(J_DEFERRED, "B1");
	(void)journal_tick((time_t)fake_now);
}

/* file_lines - day's file split into lines (LF kept), in buf */
static size_t
file_lines(const char *day, char *buf, size_t cap, char **v)
{
	char path[PATH_LEN];
	size_t len = 0, n = 0;
	char *data, *p;

	snprintf(path, sizeof(path), "journal/%s", day);
	if ((data = tap_slurp(path, &len)) == NULL || len >= cap)
		tap_fatal(path);
	memcpy(buf, data, len + 1);
	free(data);
	for (p = buf; *p != '\0' && n < LINES_MAX; n++) {
		v[n] = p;
		p = strchr(p, '\n');
		p = p != NULL ? p + 1 : buf + len;
	}
	return n;
}

/* put_lines - day's file made of the lines given, in order */
static void
put_lines(const char *day, char **v, size_t n)
{
	char path[PATH_LEN];
	FILE *fp;
	size_t i;

	snprintf(path, sizeof(path), "journal/%s", day);
	if ((fp = fopen(path, "w")) == NULL)
		tap_fatal(path);
	for (i = 0; i < n; i++)
		fwrite(v[i], 1, strcspn(v[i], "\n") + (strchr(v[i], '\n') ? 1 : 0),
		    fp);
	fclose(fp);
}

/* copy_dir - every file of from into to (made 0700) */
static void
copy_dir(const char *from, const char *to)
{
	char a[PATH_LEN], b[PATH_LEN];
	struct dirent *de;
	size_t len;
	char *data;
	DIR *d;
	FILE *fp;

	if (mkdir(to, 0700) < 0 || (d = opendir(from)) == NULL)
		tap_fatal(to);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
		if ((data = tap_slurp(a, &len)) == NULL ||
		    (fp = fopen(b, "w")) == NULL)
			tap_fatal(b);
		fwrite(data, 1, len, fp);
		fclose(fp);
		(void)chmod(b, 0600);
		free(data);
	}
	closedir(d);
}

/* restore - journal/ as it was after the three days were written */
static void
restore(void)
{
	if (tap_rmtree("journal") < 0)
		tap_fatal("rm journal");
	copy_dir("journal.orig", "journal");
}

/* on_head - a logged head */
static void
on_head(void *ctx, const struct logline *l)
{
	struct jhead h;

	if (log_head(l, &h))
		heads_add(ctx, &h);
}

/* log_heads - the heads in the test's log so far */
static void
log_heads(struct heads *hs)
{
	char *paths[] = { "log" };
	struct logs lg;

	free(hs->v);
	memset(hs, 0, sizeof(*hs));
	logs_open(&lg, paths, 1, NULL, 0);
	logs_scan(&lg, T0, on_head, hs);
	logs_close(&lg);
}

/* verify - the journal as it is now */
static int
verify(struct verify *v, const struct jkey *k, const struct heads *hs)
{
	int dfd = open("journal", O_RDONLY | O_DIRECTORY), rc;

	memset(v, 0, sizeof(*v));
	v->key = k;
	v->heads = hs != NULL ? hs->v : NULL;
	v->nheads = hs != NULL ? hs->n : 0;
	rc = journal_verify(dfd, v);
	(void)close(dfd);
	return rc;
}

/* intact - verification passes */
static void
intact(const char *desc, const struct jkey *k, const struct heads *hs)
{
	static struct verify v;

	if (!tap_ok(verify(&v, k, hs) == 0, "%s: intact", desc))
		tap_diag("%s line %ld: %s", v.bad_day, v.bad_line, v.why);
}

/* found - verification fails at day and line, saying why */
static void
found(const char *desc, const struct jkey *k, const struct heads *hs,
    const char *day, long line, const char *why)
{
	static struct verify v;
	int rc = verify(&v, k, hs);

	if (!tap_ok(rc == 1 && strcmp(v.bad_day, day) == 0 && v.bad_line == line &&
	    strstr(v.why, why) != NULL, "%s: found at %s line %ld (%s)", desc,
	    day, line, why))
		tap_diag("got %d: %s line %ld: %s", rc, v.bad_day, v.bad_line,
		    v.why);
}

/* first_key - journal.orig/key.first */
static void
first_key(struct jkey *k)
{
	char why[300];
	int dfd = open("journal.orig", O_RDONLY | O_DIRECTORY);

	if (dfd < 0 || journal_read_key(dfd, JOURNAL_FIRST, k, why,
	    sizeof(why)) < 0)
		tap_fatal("key.first");
	(void)close(dfd);
}

/* test_written - what the writer left after three days */
static void
test_written(const struct jkey *first, const struct heads *hs)
{
	static char buf[65536];
	char *v[LINES_MAX], why[300];
	struct jkey now, want = *first;
	size_t n;
	int dfd = open("journal", O_RDONLY | O_DIRECTORY);

	n = file_lines("2026-11-23", buf, sizeof(buf), v);
	tap_ok(n == 6 && strstr(v[0], " open day=2026-11-23 prev_day=- ") &&
	    strstr(v[4], " delivered id=A1 ") && strstr(v[5], " close "
	    "day=2026-11-23 records=6 "), "2026-11-23: open, 4 records, close");
	n = file_lines("2026-11-24", buf, sizeof(buf), v);
	tap_ok(n == 4 && strstr(v[0], " open day=2026-11-24 prev_day=2026-11-23 "
	    "prev_records=6 ") && strstr(v[3], " close "), "2026-11-24: opens "
	    "naming 2026-11-23's 6 records, closes");
	n = file_lines("2026-11-26", buf, sizeof(buf), v);
	tap_ok(n == 3 && strstr(v[0], " prev_day=2026-11-24 prev_records=4 "),
	    "2026-11-26 (a day without a file between): opens naming 2026-11-24");
	tap_ok(journal_read_key(dfd, JOURNAL_KEY, &now, why, sizeof(why)) == 0 &&
	    jkey_advance(&want, DAY0 + 3) == 0 && now.day == DAY0 + 3 &&
	    memcmp(now.k, want.k, JMAC_LEN) == 0, "journal/key is the first key "
	    "evolved to 2026-11-26, and only that");
	(void)close(dfd);
	tap_ok(hs->n >= 6, "heads in the log: %zu (hourly, at each day's end)",
	    hs->n);
	intact("three days, with the key and the logged heads", first, hs);
	intact("without the key", NULL, hs);
}

/* edit - day's file changed by fn(lines, &n) */
static void
edit(const char *day, void (*fn)(char **, size_t *))
{
	static char buf[65536];
	char *v[LINES_MAX];
	size_t n;

	restore();
	n = file_lines(day, buf, sizeof(buf), v);
	fn(v, &n);
	put_lines(day, v, n);
}

static char changed[JOURNAL_LINE_MAX + 1];

/* byte - one byte of line 2 changed (A2 -> A4) */
static void
byte(char **v, size_t *n)
{
	char *p;

	(void)n;
	snprintf(changed, sizeof(changed), "%s", v[1]);
	if ((p = strstr(changed, "id=A")) != NULL)
		p[4] = '4';
	v[1] = changed;
}

/* drop3 - line 3 deleted */
static void
drop3(char **v, size_t *n)
{
	memmove(v + 2, v + 3, (*n - 3) * sizeof(*v));
	(*n)--;
}

/* dup2nd - line 2 inserted again after itself */
static void
dup2nd(char **v, size_t *n)
{
	memmove(v + 2, v + 1, (*n - 1) * sizeof(*v));
	(*n)++;
}

/* swap23 - lines 2 and 3 swapped */
static void
swap23(char **v, size_t *n)
{
	char *t = v[1];

	(void)n;
	v[1] = v[2];
	v[2] = t;
}

/* cut_last - the last line removed */
static void
cut_last(char **v, size_t *n)
{
	(void)v;
	(*n)--;
}

/* renumber - line 3 deleted, the rest renumbered to hide it */
static void
renumber(char **v, size_t *n)
{
	static char lines[LINES_MAX][JOURNAL_LINE_MAX + 1];
	size_t i;

	drop3(v, n);
	for (i = 2; i < *n; i++) {
		snprintf(lines[i], sizeof(lines[i]), "%zu%s", i + 1,
		    strchr(v[i], ' '));
		v[i] = lines[i];
	}
}

/* test_tamper - each kind of change found at its day and line */
static void
test_tamper(const struct jkey *k, const struct heads *hs)
{
	edit("2026-11-24", byte);
	found("one byte of a record changed", k, hs, "2026-11-24", 2, "MAC");
	edit("2026-11-23", drop3);
	found("a record deleted", NULL, hs, "2026-11-23", 3, "numbered 4");
	edit("2026-11-23", dup2nd);
	found("a record inserted", NULL, hs, "2026-11-23", 3, "numbered 2");
	edit("2026-11-23", swap23);
	found("two records swapped", NULL, hs, "2026-11-23", 2, "numbered 3");
	edit("2026-11-23", renumber);
	found("a record deleted, the rest renumbered", k, hs, "2026-11-23", 3,
	    "MAC does not match");
	edit("2026-11-26", cut_last);
	found("the last day cut short", NULL, hs, "2026-11-26", 3,
	    "a head logged");
	edit("2026-11-23", cut_last);
	found("an earlier day cut short", NULL, hs, "2026-11-23", 6,
	    "without its close");
	restore();
	if (truncate("journal/2026-11-24", 100) < 0)
		tap_fatal("truncate");
	found("a day cut inside a record", NULL, hs, "2026-11-24", 1,
	    "ends inside");
	restore();
	(void)unlink("journal/2026-11-24");
	found("a whole day deleted", NULL, hs, "2026-11-24", 0, "deleted");
	restore();
	(void)unlink("journal/2026-11-26");
	found("the last day deleted", NULL, hs, "2026-11-26", 0,
	    "a head for it was logged");
	restore();
	(void)unlink("journal/2026-11-23");
	found("the first day deleted", NULL, hs, "2026-11-23", 0, "deleted");
}

/* forge - 2026-11-24 and 2026-11-26 written again, linked as they were,
 * under a key that is not the journal's: a forgery made without it */
static void
forge(void)
{
	static char buf[65536], out[LINES_MAX][JOURNAL_LINE_MAX + 1];
	static const char *const days[] = { "2026-11-24", "2026-11-26" };
	char *v[LINES_MAX], *p, hex[JMAC_HEX + 1];
	unsigned char prev[JMAC_LEN], mac[JMAC_LEN];
	struct jkey fake;
	size_t d, i, n;

	memset(&fake, 7, sizeof(fake));
	restore();
	n = file_lines("2026-11-23", buf, sizeof(buf), v);
	(void)junhex(strstr(v[n - 1], " mac=") + 5, JMAC_LEN, prev);
	for (d = 0; d < 2; d++) {
		n = file_lines(days[d], buf, sizeof(buf), v);
		for (i = 0; i < n; i++) {
			*strstr(v[i], " mac=") = '\0';
			if (i == 0 && (p = strstr(v[i], " prev_mac=")) != NULL) {
				jhex(prev, JMAC_LEN, hex);
				memcpy(p + 10, hex, JMAC_HEX);
			}
			(void)jmac(&fake, prev, v[i], strlen(v[i]), mac);
			jhex(mac, JMAC_LEN, hex);
			snprintf(out[i], sizeof(out[i]), "%s mac=%s\n", v[i], hex);
			memcpy(prev, mac, JMAC_LEN);
			v[i] = out[i];
		}
		put_lines(days[d], v, n);
	}
}

/* test_forgery - a re-chained forgery: only the key (or a logged head
 * of a day it rewrote) finds it */
static void
test_forgery(const struct jkey *k, const struct heads *hs)
{
	forge();
	intact("a re-chained forgery, without the key or a head (what the key "
	    "is for)", NULL, NULL);
	found("a re-chained forgery, with the key", k, NULL, "2026-11-24", 1,
	    "MAC does not match");
	found("a re-chained forgery, without the key, against the logged heads",
	    NULL, hs, "2026-11-24", 3, "rewritten");
}

/* day3_later - two more records, an hour later */
static void
day3_later(void)
{
	fake_now = T0 + 3 * 86400 + 3600;
	add(J_DELIVERED, "B1");
	add(J_HELD, "B2");
	(void)journal_tick((time_t)fake_now);
}

/* torn_then_add - a record cut by a crash, then one more */
static void
torn_then_add(void)
{
	int fd = open("journal/2026-11-26", O_WRONLY | O_APPEND);

	if (fd < 0 || write(fd, "4 2026-11-26T06:00", 18) != 18)
		_exit(1);
	(void)close(fd);
	fake_now = T0 + 3 * 86400 + 7200;
	add(J_RELEASED, "B2");
}

/* lost_then_add - the key gone at a day's end: the record is lost (it
 * goes to the log); back again: the next one follows a gap record */
static void
lost_then_add(void)
{
	if (rename("journal/key", "journal/key.away") < 0)
		_exit(1);
	fake_now = T0 + 4 * 86400;
	add(J_ACCEPTED, "C1");
	if (rename("journal/key.away", "journal/key") < 0)
		_exit(1);
	add(J_ACCEPTED, "C2");
}

/* lose_one - a writer that loses a record (no key) and exits: the
 * count waits in journal/lost */
static void
lose_one(void)
{
	if (rename("journal/key", "journal/key.away") < 0)
		_exit(1);
	fake_now = T0 + 4 * 86400 + 60;
	add(J_DELIVERED, "C3");
	if (rename("journal/key.away", "journal/key") < 0)
		_exit(1);
}

/* add_c4 - another writer's first record */
static void
add_c4(void)
{
	fake_now = T0 + 4 * 86400 + 120;
	add(J_ACCEPTED, "C4");
}

/* add_c5 - a record while another process holds journal/'s lock */
static void
add_c5(void)
{
	fake_now = T0 + 4 * 86400 + 180;
	add(J_ACCEPTED, "C5");
}

/* add_c6 - the next writer after the lock was let go */
static void
add_c6(void)
{
	fake_now = T0 + 4 * 86400 + 240;
	add(J_ACCEPTED, "C6");
}

/* test_lost_elsewhere - records lost by a process that exits are gap
 * records of the next writer's; a lock never let go costs a bounded
 * wait, and the record is lost, not waited for */
static void
test_lost_elsewhere(const struct jkey *k, struct heads *hs)
{
	static char buf[65536];
	static struct verify v;
	char *lines[LINES_MAX];
	struct timespec t0, t1;
	size_t n;
	int dfd;

	child(lose_one);
	child(add_c4);
	n = file_lines("2026-11-27", buf, sizeof(buf), lines);
	tap_ok(n == 5 && strstr(lines[3], " gap lost=1 ") &&
	    strstr(lines[4], " accepted id=C4 "), "a record lost by a writer "
	    "that has exited: the next writer's gap record counts it");
	dfd = open("journal", O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || flock(dfd, LOCK_EX) < 0)
		tap_fatal("lock journal/");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	child(add_c5);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	(void)close(dfd);
	tap_ok(t1.tv_sec - t0.tv_sec < 10, "journal/ locked by another: the "
	    "writer gives up in bounded time (%lds)", (long)(t1.tv_sec - t0.tv_sec));
	child(add_c6);
	n = file_lines("2026-11-27", buf, sizeof(buf), lines);
	tap_ok(n == 7 && strstr(lines[5], " gap lost=1 ") &&
	    strstr(lines[6], " accepted id=C6 "), "and the next writer's gap "
	    "record counts the record it lost");
	log_heads(hs);
	tap_ok(verify(&v, k, hs) == 0 && v.gaps == 3 && v.lost == 3,
	    "verify: intact, three gaps noted (%ld, %ld)", v.gaps, v.lost);
}

/* test_after - new records never alert; a cut record and a lost one are
 * noted, not failures */
static void
test_after(const struct jkey *k, struct heads *hs)
{
	static char buf[65536];
	static struct verify v;
	char *lines[LINES_MAX], *log;
	size_t n, len;
	int rc;

	restore();
	log_heads(hs);
	intact("before new records", k, hs);
	child(day3_later);
	log_heads(hs);
	intact("new records after verification, old and new heads", k, hs);
	child(torn_then_add);
	n = file_lines("2026-11-26", buf, sizeof(buf), lines);
	tap_ok(n == 7 && strstr(lines[5], " torn bytes=18 ") &&
	    strstr(lines[6], " released "), "a cut record is cut off and noted "
	    "(torn bytes=18) before the next");
	rc = verify(&v, k, hs);
	tap_ok(rc == 0 && v.torn == 1, "verify: intact, one torn record noted "
	    "(%ld)", v.torn);
	child(lost_then_add);
	log = tap_slurp("log", &len);
	tap_ok(log != NULL && strstr(log, "journal: not recorded (") &&
	    strstr(log, "accepted id=C1"), "a record that cannot be written is "
	    "logged in full");
	free(log);
	n = file_lines("2026-11-27", buf, sizeof(buf), lines);
	tap_ok(n == 3 && strstr(lines[1], " gap lost=1 ") &&
	    strstr(lines[2], " accepted id=C2 "), "the next record follows a gap "
	    "record (lost=1)");
	log_heads(hs);
	tap_ok(verify(&v, k, hs) == 0 && v.gaps == 1 && v.lost == 1,
	    "verify: intact, the gap noted");
}

/* closed_by_hand - a crash after the close of 2026-11-26, before the key
 * evolved: the close record is there, nothing after it */
static void
closed_by_hand(const struct jkey *first)
{
	static char buf[65536];
	char *v[LINES_MAX], line[JOURNAL_LINE_MAX + 1];
	unsigned char prev[JMAC_LEN], mac[JMAC_LEN];
	struct timespec ts = { (time_t)(T0 + 3 * 86400 + 60), 0 };
	struct jkey k = *first;
	size_t n;
	FILE *fp;

	restore();
	n = file_lines("2026-11-26", buf, sizeof(buf), v);
	(void)junhex(strstr(v[n - 1], " mac=") + 5, JMAC_LEN, prev);
	(void)jkey_advance(&k, DAY0 + 3);
	(void)jrec_line(line, sizeof(line), &k, prev, (long)n + 1, &ts, J_CLOSE,
	    " day=2026-11-26 records=4", mac);
	if ((fp = fopen("journal/2026-11-26", "a")) == NULL)
		tap_fatal("append");
	fputs(line, fp);
	fclose(fp);
}

/* day4 - the next record, 2026-11-27 */
static void
day4(void)
{
	fake_now = T0 + 4 * 86400;
	add(J_ACCEPTED, "D1");
}

/* test_crash - a roll-over cut short is finished by the next writer */
static void
test_crash(const struct jkey *k, const struct heads *hs)
{
	static char buf[65536];
	char *v[LINES_MAX];

	closed_by_hand(k);
	child(day4);
	tap_ok(file_lines("2026-11-26", buf, sizeof(buf), v) == 4,
	    "a closed day is not closed again");
	tap_ok(file_lines("2026-11-27", buf, sizeof(buf), v) == 2 &&
	    strstr(v[0], " prev_records=4 "), "the next day follows it");
	intact("after a roll-over cut short by a crash", k, hs);
}

/* test_writer - the journal written over days, then each check */
static void
test_writer(void)
{
	static struct heads hs, later;
	struct jkey first;
	char why[300];
	int dfd;

	if (mkdir("journal", 0700) < 0 || (dfd = open("journal", O_RDONLY |
	    O_DIRECTORY)) < 0)
		tap_fatal("journal");
	fake_now = T0;
	tap_ok(journal_make_key(dfd, getuid(), getgid(), why, sizeof(why)) == 0,
	    "the first key made");
	tap_ok(journal_make_key(dfd, getuid(), getgid(), why, sizeof(why)) == 1,
	    "and not made again");
	(void)close(dfd);
	child(day0);
	child(day1);
	child(day3);
	copy_dir("journal", "journal.orig");
	first_key(&first);
	log_heads(&hs);
	test_written(&first, &hs);
	test_tamper(&first, &hs);
	test_forgery(&first, &hs);
	test_after(&first, &later);
	test_lost_elsewhere(&first, &later);
	test_crash(&first, &hs);
	free(hs.v);
	free(later.v);
}

int
main(void)
{
	if (mkdtemp(work) == NULL || chdir(work) < 0)
		tap_fatal("mkdtemp");
	tap_on_fatal(cleanup);
	if (log_open("smap/qmgr", "mail", "log") < 0)
		tap_fatal("log");
	test_days();
	test_keys();
	test_put();
	test_records();
	test_parse_bad();
	test_writer();
	cleanup();
	return tap_done();
}
