/*
 * journal.c - the journal's writer (journal.h; the format and the rules
 * are in smap-spool(5), JOURNAL): appends, the day's roll-over with the
 * key's evolution, the hourly head in the log, the first key.
 *
 * LOCKING: an exclusive flock(2) on journal/ itself around every append
 * and roll-over. A process forked from the one that opened the
 * directory (a delivery worker) opens it again, so that its lock is its
 * own. Each record is one write(2) to a file opened O_APPEND; a short
 * write is cut off again (ftruncate) before the lock is let go. The
 * chain's end (record number, MAC) is read again from the file's last
 * line whenever the file is not as this process left it.
 *
 * ROLL-OVER, in this order, each step durable before the next: the
 * close record of the old day (under its key); the new day's key
 * written to key.tmp, fsync'd, renamed over key, the directory fsync'd
 * (the old key is gone from the directory); the new day's file, made as
 * DAY.tmp holding its open record and renamed into place. A crash
 * between two steps leaves a state the next writer finishes.
 *
 * TRUST: journal/ is smapd's (mode 0700). Nothing in it is followed
 * (O_NOFOLLOW), files are created O_EXCL and renamed into place; the
 * last line is read with a cap and parsed like any other record.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "bounds.h"
#include "groupsync.h"
#include "journal.h"
#include "layout.h"
#include "log.h"

#define HOUR 3600

static struct {
	pid_t pid;		/* the process that opened dfd */
	int dfd, fd;		/* journal/, the current day's file */
	long day;		/* of fd */
	ino_t ino;
	off_t size;		/* as this process last saw or left it */
	long seq;		/* the last record's number */
	unsigned char mac[JMAC_LEN];	/* and its MAC */
	int closed;		/* the last record is the close */
	struct jkey key;	/* the key of key.day */
	int have_key;
	int dirty;		/* written since the last fdatasync */
	long lost;		/* records not written since lost_since */
	long long lost_since;
	long torn;		/* bytes of an incomplete last line cut off */
	long long next_head;	/* when journal_tick logs the head again */
	long logged_day, logged_seq;	/* the head last logged */
	int tell;		/* smapq: failures on stderr too */
	const char *ident;	/* what the head lines are logged as */
	char actor[64];
	char why[300];
} J = { .dfd = -1, .fd = -1, .ident = "smap/qmgr" };

/* fail - remember why (errno's text after what), return -1 */
static int
fail(const char *what)
{
	snprintf(J.why, sizeof(J.why), "%s: %s", what, strerror(errno));
	return -1;
}

/* jdir - journal/ opened by this very process */
static int
jdir(void)
{
	if (J.pid == getpid() && J.dfd >= 0)
		return 0;
	if (J.fd >= 0)
		(void)close(J.fd);
	if (J.dfd >= 0)
		(void)close(J.dfd);
	J.fd = -1;
	J.pid = getpid();
	J.dfd = openat(AT_FDCWD, JOURNAL_DIR, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	return J.dfd < 0 ? fail(JOURNAL_DIR) : 0;
}

/* load_key - the key for day into J.key (evolved and written back when
 * journal/key is older): 0; 1 when journal/key is already a later
 * day's; -1 */
static int
load_key(long day)
{
	char why[200];

	if (!J.have_key) {
		if (journal_read_key(J.dfd, JOURNAL_KEY, &J.key, why,
		    sizeof(why)) < 0) {
			snprintf(J.why, sizeof(J.why), "%s", why);
			return -1;
		}
		J.have_key = 1;
	}
	if (J.key.day > day)
		return 1;
	if (J.key.day == day)
		return 0;
	if (jkey_advance(&J.key, day) < 0 ||
	    journal_persist_key(J.dfd, &J.key, geteuid(), getegid()) < 0) {
		J.have_key = 0;
		return fail("cannot evolve the key");
	}
	return 0;
}

/* last_line - the last complete line of fd (size bytes) into buf; an
 * incomplete one after it is cut off (counted in J.torn): its length,
 * or -1 */
static ssize_t
last_line(int fd, off_t *size, char *buf)
{
	off_t off = *size > JOURNAL_LINE_MAX ? *size - JOURNAL_LINE_MAX : 0;
	ssize_t n = pread(fd, buf, (size_t)(*size - off), off), end, start, i;

	if (n != *size - off)
		return n < 0 ? fail("read") : (errno = EIO, fail("read"));
	for (end = n; end > 0 && buf[end - 1] != '\n'; end--)
		;
	if (end == 0) {
		errno = EINVAL;
		return fail("no complete record at the end of the day's file");
	}
	if (end < n) {
		if (ftruncate(fd, off + end) < 0)
			return fail("cannot cut off an incomplete record");
		J.torn += (long)(n - end);
		*size = off + end;
		log_warn("journal: cut off %ld bytes of a record left incomplete "
		    "(a crash while it was written)", (long)(n - end));
	}
	for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && off > 0) {
		errno = EINVAL;
		return fail("the last record is longer than a record may be");
	}
	for (i = 0; start > 0 && i < end - 1 - start; i++)
		buf[i] = buf[start + i];	/* the record to the front */
	return end - 1 - start;
}

/* read_tail - the chain's end in fd into J */
static int
read_tail(int fd, const struct stat *st)
{
	static struct jrec r;
	char buf[JOURNAL_LINE_MAX + 1];
	off_t size = st->st_size;
	const char *why;
	ssize_t n = last_line(fd, &size, buf);

	if (n < 0)
		return -1;
	if (jrec_parse(buf, (size_t)n, &r, &why) < 0) {
		snprintf(J.why, sizeof(J.why), "the last record cannot be "
		    "read: %s (smapq verify)", why);
		return -1;
	}
	J.seq = r.seq;
	memcpy(J.mac, r.mac, JMAC_LEN);
	J.closed = r.ev == J_CLOSE;
	J.size = size;
	J.ino = st->st_ino;
	return 0;
}

/* open_day - day's file, its end read */
static int
open_day(long day)
{
	char name[JDAY_LEN];
	struct stat st;
	int fd;

	jday_name(day, name);
	if (J.fd >= 0)
		(void)close(J.fd);
	J.fd = -1;
	if ((fd = openat(J.dfd, name, O_RDWR | O_APPEND | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) < 0)
		return fail(name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		errno = EINVAL;
		(void)close(fd);
		return fail(name);
	}
	if (read_tail(fd, &st) < 0) {
		(void)close(fd);
		return -1;
	}
	J.fd = fd;
	J.day = day;
	return 0;
}

/* append - one record under the current key: 0, or -1 (nothing of it
 * left in the file) */
static int
append(enum jevent ev, const char *fields)
{
	char line[JOURNAL_LINE_MAX + 1];
	unsigned char mac[JMAC_LEN];
	struct timespec ts;
	ssize_t w;
	int n, err;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (J.key.day != J.day) {
		errno = EKEYEXPIRED;
		return fail("the key is not the day's");
	}
	n = jrec_line(line, sizeof(line), &J.key, J.mac, J.seq + 1, &ts, ev,
	    fields, mac);
	if (n < 0) {
		errno = EMSGSIZE;
		return fail("record");
	}
	if ((w = write(J.fd, line, (size_t)n)) != n) {
		err = w < 0 ? errno : ENOSPC;
		if (w > 0 && ftruncate(J.fd, J.size) < 0)
			log_msg(LOG_ERR, "error: journal: cannot cut off a part "
			    "written: %s", strerror(errno));
		errno = err;
		return fail("write");
	}
	J.seq++;
	memcpy(J.mac, mac, JMAC_LEN);
	J.size += n;
	J.closed = ev == J_CLOSE;
	J.dirty = 1;
	return 0;
}

/* log_head - the chain's end, as the log keeps it */
static void
log_head(const char *what)
{
	char day[JDAY_LEN], hex[JMAC_HEX + 1];

	jday_name(J.day, day);
	jhex(J.mac, JMAC_LEN, hex);
	J.logged_day = J.day;
	J.logged_seq = J.seq;
	log_info_as(J.ident, "journal %s: day=%s records=%ld mac=%s", what, day,
	    J.seq, hex);
}

/* create_day - day's file with its open record (after prev, the day
 * before, or the chain's first when NULL), made in one rename */
static int
create_day(long day, const struct jhead *prev)
{
	static const unsigned char zero[JMAC_LEN];
	char f[512] = "", line[JOURNAL_LINE_MAX + 1], name[JDAY_LEN];
	char pday[JDAY_LEN] = "-", hex[JMAC_HEX + 1], num[24];
	unsigned char mac[JMAC_LEN];
	struct timespec ts;
	int n;

	jday_name(day, name);
	if (prev != NULL)
		jday_name(prev->day, pday);
	jhex(prev != NULL ? prev->mac : zero, JMAC_LEN, hex);
	snprintf(num, sizeof(num), "%ld", prev != NULL ? prev->records : 0L);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (jput(f, sizeof(f), "day", name, JDAY_LEN) < 0 ||
	    jput(f, sizeof(f), "prev_day", pday, JDAY_LEN) < 0 ||
	    jput(f, sizeof(f), "prev_records", num, sizeof(num)) < 0 ||
	    jput(f, sizeof(f), "prev_mac", hex, sizeof(hex)) < 0 ||
	    (n = jrec_line(line, sizeof(line), &J.key, prev != NULL ?
	    prev->mac : zero, 1, &ts, J_OPEN, f, mac)) < 0) {
		errno = EMSGSIZE;
		return fail("open record");
	}
	if (journal_write_file(J.dfd, name, line, (size_t)n, geteuid(), getegid(),
	    0) < 0)
		return fail(name);
	return open_day(day);
}

/* close_day - the close record of J.day, durable */
static int
close_day(void)
{
	char f[128] = "", day[JDAY_LEN], num[24];

	jday_name(J.day, day);
	snprintf(num, sizeof(num), "%ld", J.seq + 1);
	if (jput(f, sizeof(f), "day", day, sizeof(day)) < 0 ||
	    jput(f, sizeof(f), "records", num, sizeof(num)) < 0 ||
	    append(J_CLOSE, f) < 0)
		return -1;
	if (fdatasync(J.fd) < 0)
		return fail("fdatasync");
	J.dirty = 0;
	log_head("closed");
	return 0;
}

/* rollover - J.day ends: closed, the key evolved, target's day opened */
static int
rollover(long target)
{
	struct jhead prev;
	char day[JDAY_LEN];
	int r = load_key(J.day);

	if (r < 0 || (r == 0 && !J.closed && close_day() < 0))
		return -1;
	if (r > 0 && !J.closed) {
		jday_name(J.day, day);
		log_warn("journal: %s cannot be closed: the key is a later "
		    "day's already (smapd stopped during a roll-over)", day);
	}
	if (J.key.day > target)
		target = J.key.day;
	prev.day = J.day;
	prev.records = J.seq;
	memcpy(prev.mac, J.mac, JMAC_LEN);
	if (jkey_advance(&J.key, target) < 0 ||
	    journal_persist_key(J.dfd, &J.key, geteuid(), getegid()) < 0) {
		J.have_key = 0;
		return fail("cannot evolve the key");
	}
	return create_day(target, &prev);
}

/* genesis - no day yet: the first key (made now if need be), the
 * chain's first day */
static int
genesis(long today)
{
	char why[300];

	if (journal_make_key(J.dfd, geteuid(), getegid(), why,
	    sizeof(why)) < 0) {
		snprintf(J.why, sizeof(J.why), "%s", why);
		return -1;
	}
	if (load_key(today) < 0)
		return -1;
	if (create_day(J.key.day, NULL) < 0)
		return -1;
	log_head("started");
	return 0;
}

/* discover - the latest day's file opened (rolled over to today when it
 * is older), or the chain begun */
static int
discover(long today)
{
	long *days = NULL, latest;
	size_t n;

	if (J.fd >= 0)
		(void)close(J.fd);
	J.fd = -1;
	J.have_key = 0;	/* another process may have evolved it */
	if (journal_days(J.dfd, &days, &n) < 0)
		return fail(JOURNAL_DIR);
	latest = n > 0 ? days[n - 1] : -1;
	free(days);
	if (latest < 0)
		return genesis(today);
	if (open_day(latest) < 0 || load_key(latest) < 0)
		return -1;
	if (latest < today || J.key.day > latest)
		return rollover(today);
	return 0;
}

/* current - the file to append to, its end known, for the time now */
static int
current(time_t now)
{
	char name[JDAY_LEN];
	long today = jday_of(now);
	struct stat st;

	if (J.fd < 0 || J.day < today)
		return discover(today);
	jday_name(J.day, name);
	if (fstatat(J.dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_ino != J.ino)
		return discover(today);
	if (fstat(J.fd, &st) < 0)
		return fail(name);
	if (st.st_size != J.size && read_tail(J.fd, &st) < 0)
		return -1;
	if (J.closed)	/* another process closed it: the next day exists */
		return discover(today);
	return load_key(J.day) == 0 ? 0 : (errno = EKEYEXPIRED,
	    fail("the key is a later day's"));
}

/* lock - journal/ locked within JOURNAL_LOCK_MS: 0, or -1 (J.why). A
 * holder that never lets go (a stopped process) costs each record that
 * long and sends it to the log: a delivery never waits on the journal
 * long enough to be killed between its transport's answer and its
 * state file (which would send it again). */
static int
lock(void)
{
	if (journal_flock(J.dfd, JOURNAL_LOCK_MS) == 0)
		return 0;
	return fail(errno == ETIMEDOUT ? "lock: held by another process" :
	    "lock");
}

/* begin - the journal locked, its file current: 0 or -1 (J.why) */
static int
begin(time_t now)
{
	if (jdir() < 0 || lock() < 0)
		return -1;
	if (current(now) < 0) {
		(void)flock(J.dfd, LOCK_UN);
		return -1;
	}
	return 0;
}

/* lost - a record that could not be written, in the log instead, and
 * counted in journal/lost for the next writer's gap record (in this
 * process's memory when even that fails) */
static void
lost(enum jevent ev, const char *fields)
{
	long long now = (long long)time(NULL);

	log_msg(LOG_ERR, "error: journal: not recorded (%s): %s%s", J.why,
	    jevent_name(ev), fields);
	if (J.tell)
		fprintf(stderr, "smapq: journal: not recorded (%s): %s%s\n",
		    J.why, jevent_name(ev), fields);
	if (J.dfd >= 0 && J.pid == getpid() &&
	    journal_lost_note(J.dfd, now) == 0)
		return;
	if (J.lost++ == 0)
		J.lost_since = now;
}

/* gap - the gap record for what this process and journal/lost count */
static int
gap(void)
{
	char f[128] = "", a[24], b[24];
	long n;
	long long since = J.lost_since;
	int fd = journal_lost_take(J.dfd, &n, &since), rc = 0;

	if (J.lost > 0 && J.lost_since < since)
		since = J.lost_since;
	if (J.lost + n > 0) {
		snprintf(a, sizeof(a), "%ld", J.lost + n);
		snprintf(b, sizeof(b), "%lld", since);
		rc = jput(f, sizeof(f), "lost", a, sizeof(a)) < 0 ||
		    jput(f, sizeof(f), "since", b, sizeof(b)) < 0 ||
		    append(J_GAP, f) < 0 ? -1 : 0;
		if (rc == 0)
			J.lost = 0;
	}
	if (fd >= 0 && journal_lost_done(fd, rc == 0) < 0)
		log_msg(LOG_ERR, "error: journal: %s/%s: %s: its records will be "
		    "counted again", JOURNAL_DIR, JOURNAL_LOST, strerror(errno));
	return rc;
}

/* notes - the gap and torn records owed before the next one */
static int
notes(void)
{
	char f[128] = "", a[24];

	if (gap() < 0)
		return -1;
	if (J.torn > 0) {
		snprintf(a, sizeof(a), "%ld", J.torn);
		if (jput(f, sizeof(f), "bytes", a, sizeof(a)) < 0 ||
		    append(J_TORN, f) < 0)
			return -1;
		J.torn = 0;
	}
	return 0;
}

/* journal_add - one record, or its line in the log */
void
journal_add(enum jevent ev, const char *fields)
{
	time_t now = time(NULL);

	if (begin(now) < 0) {
		lost(ev, fields);
		return;
	}
	if (notes() < 0 || append(ev, fields) < 0)
		lost(ev, fields);
	(void)flock(J.dfd, LOCK_UN);
}

/* journal_sync - what this process appended, durable */
void
journal_sync(void)
{
	if (!J.dirty || J.fd < 0 || J.pid != getpid())
		return;
	J.dirty = 0;
	if (groupsync(GS_JOURNAL, J.fd) < 0)
		log_msg(LOG_ERR, "error: journal: fdatasync: %s: the last records "
		    "may be lost in a crash", strerror(errno));
}

/* first_key_warning - once per process: the first key is still here */
static void
first_key_warning(void)
{
	struct stat st;

	if (fstatat(J.dfd, JOURNAL_FIRST, &st, AT_SYMLINK_NOFOLLOW) == 0)
		log_warn("journal: the first key is still on this host "
		    "(%s/%s): print it with \"smapq journal-key\", keep it "
		    "off the host; until then the journal can be rewritten by "
		    "whoever reads it", JOURNAL_DIR, JOURNAL_FIRST);
}

/* head_now - the chain's head in the log (the day rolled over first
 * when it ended); unless always, only when it moved since this process
 * last logged it */
static void
head_now(int always)
{
	if (begin(time(NULL)) < 0) {
		log_msg(LOG_ERR, "error: journal: cannot log its head: %s", J.why);
		return;
	}
	if (notes() < 0)
		log_msg(LOG_ERR, "error: journal: %s", J.why);
	if (always || J.day != J.logged_day || J.seq != J.logged_seq)
		log_head("head");
	(void)flock(J.dfd, LOCK_UN);
	journal_sync();
}

/* journal_head - the head at smapd's stop, if it moved */
void
journal_head(void)
{
	head_now(0);
}

/* journal_tick - the head every hour, the day's end on time */
long long
journal_tick(time_t now)
{
	int first = J.next_head == 0;

	if (!first && (long long)now < J.next_head)
		return J.next_head - (long long)now;
	J.next_head = ((long long)now / HOUR + 1) * HOUR;
	head_now(1);
	if (first && J.dfd >= 0)
		first_key_warning();
	return J.next_head - (long long)now;
}

/* loginuid - the audit login uid of this process, or -1 */
static long
loginuid(void)
{
	char buf[24];
	ssize_t n;
	int fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC);
	long v = -1;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n > 0) {
		buf[n] = '\0';
		v = strtol(buf, NULL, 10);
	}
	return v == 4294967295L ? -1 : v;	/* (uid_t)-1: none */
}

/* journal_set_actor - smapq: who it runs for, failures said aloud */
void
journal_set_actor(void)
{
	long a = loginuid();

	J.tell = 1;
	J.ident = "smap/smapq";
	if (a >= 0)
		snprintf(J.actor, sizeof(J.actor), "uid:%lu,auid:%ld",
		    (unsigned long)getuid(), a);
	else
		snprintf(J.actor, sizeof(J.actor), "uid:%lu",
		    (unsigned long)getuid());
}

/* journal_actor - what journal_set_actor() found */
const char *
journal_actor(void)
{
	return J.actor;
}
