/*
 * journal.h - smapd's tamper-evident journal: the chain (journal_chain.c),
 * its writer (journal.c) and the records smapd and smapq make
 * (journal_event.c). The format is in smap-spool(5), JOURNAL.
 *
 * journal/ (smapd's, 0700) holds one file per UTC day, named
 * YYYY-MM-DD, one record per line:
 *
 *   SEQ TIME EVENT NAME=VALUE... mac=HEX
 *
 * SEQ is the line's number in its file; TIME is UTC, microseconds;
 * values are printable ASCII without spaces (other bytes as \xHH, an
 * empty value as "-"). mac is HMAC-SHA-256 under the day's key over
 * the MAC of the record before (32 bytes; zeros before the first record
 * of the chain) followed by the line up to " mac=". Each day opens with
 * an "open" record naming the day before and its last record, and ends
 * with a "close" record; the key of day n + 1 is HMAC-SHA-256(key of
 * day n, "next"), and only the current day's key is on disk (journal/key),
 * so whoever takes the host cannot rewrite an earlier day without the
 * first key, which the admin keeps off the host (smapq journal-key).
 */
#ifndef SMAPD_JOURNAL_H
#define SMAPD_JOURNAL_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <sys/types.h>

#define JOURNAL_DIR "journal"
#define JOURNAL_KEY "key"		/* the current day's key */
#define JOURNAL_FIRST "key.first"	/* the first key, until printed */
#define JOURNAL_LOST "lost"		/* records not written, until a gap */
#define JOURNAL_LOCK_MS 2000		/* the longest wait for a lock */
#define JOURNAL_LINE_MAX 4096		/* one record with its LF */
#define JOURNAL_VALUE_MAX 1024		/* one value, escaped */
#define JFIELDS_MAX 24
#define JMAC_LEN 32
#define JMAC_HEX (2 * JMAC_LEN)
#define JDAY_LEN 11			/* "YYYY-MM-DD" and its NUL */
#define JKEY_LINE_MAX 128		/* "smap-journal-key 1 DAY HEX\n" */

enum jevent {
	J_OPEN, J_ACCEPTED, J_DELIVERED, J_DEFERRED, J_BOUNCED, J_EXPIRED,
	J_QUARANTINED, J_HELD, J_RELEASED, J_DELETED, J_GAP, J_TORN, J_CLOSE,
	J_NEVENTS
};

/* The key of one day; day counts UTC days since 1970-01-01. */
struct jkey {
	long day;
	unsigned char k[JMAC_LEN];
};

struct jfield {
	const char *name, *value;	/* into jrec.buf */
};

/* One record as jrec_parse() read it. */
struct jrec {
	long seq;
	long long sec;
	long usec;
	enum jevent ev;
	size_t nf;
	struct jfield f[JFIELDS_MAX];
	unsigned char mac[JMAC_LEN];
	size_t body_len;	/* bytes of the line the MAC covers */
	char buf[JOURNAL_LINE_MAX + 1];
};

/* The end of the chain: the last record of the latest day. */
struct jhead {
	long day;
	long records;
	unsigned char mac[JMAC_LEN];
	long long sec;		/* the last record's time */
};

/* ---- the chain (journal_chain.c): no I/O ---- */

const char *jevent_name(enum jevent ev);
/* The event named by s[0..n): 0, or -1 when there is none. */
int jevent_parse(const char *s, size_t n, enum jevent *ev);

/* The UTC day of t; "YYYY-MM-DD" of a day into buf[JDAY_LEN]; a strict
 * parse of such a name: 0, or -1. */
long jday_of(time_t t);
void jday_name(long day, char *buf);
int jday_parse(const char *s, long *day);

/* The key of k->day + 1 in place; the key of day (>= k->day) in place.
 * 0, or -1 (OpenSSL failed, or day is before k->day). */
int jkey_next(struct jkey *k);
int jkey_advance(struct jkey *k, long day);

/* HMAC-SHA-256(k, prev || body[0..n)) into out: 0, or -1. */
int jmac(const struct jkey *k, const unsigned char prev[JMAC_LEN],
    const char *body, size_t n, unsigned char out[JMAC_LEN]);

/* n bytes as lower-case hex (2n digits and a NUL); 2n hex digits back
 * into n bytes: 0, or -1. */
void jhex(const unsigned char *b, size_t n, char *out);
int junhex(const char *s, size_t n, unsigned char *out);

/* A key as its one-line text "smap-journal-key 1 YYYY-MM-DD HEX\n"
 * (buf of JKEY_LINE_MAX); that text back (surrounding white space
 * allowed): 0, or -1. */
void jkey_format(const struct jkey *k, char *buf);
int jkey_parse(const char *s, size_t n, struct jkey *k);

/* Append " name=value" to dst (NUL-terminated, of cap bytes), the value
 * escaped: bytes outside 0x21..0x7e and "\" as \xHH, cut at
 * JOURNAL_VALUE_MAX (ending in "..."), "-" when empty. 0, or -1 when
 * dst is full (dst is then unchanged). */
int jput(char *dst, size_t cap, const char *name, const char *value,
    size_t n);

/* The body of a record, "SEQ TIME EVENT" and fields (" a=b..."), into
 * buf: its length, or -1 when it does not fit a line. The whole line
 * (body, " mac=HEX", LF): its length, or -1. */
int jrec_body(char *buf, size_t len, long seq, const struct timespec *ts,
    enum jevent ev, const char *fields);
int jrec_line(char *buf, size_t len, const struct jkey *k,
    const unsigned char prev[JMAC_LEN], long seq,
    const struct timespec *ts, enum jevent ev, const char *fields,
    unsigned char mac[JMAC_LEN]);

/* Parse one line (without its LF, n bytes) into r: 0, or -1 with a
 * reason. The line itself is not changed. */
int jrec_parse(const char *line, size_t n, struct jrec *r, const char **why);

/* The value of a field of r, or NULL. */
const char *jrec_get(const struct jrec *r, const char *name);

/* ---- the writer (journal.c) ---- */

/* Append a record of smapd's or smapq's own (fields as jput() makes
 * them), to the current day's file, under the journal's lock; rolls the
 * day over first when it ended. Never fails the caller: a record that
 * cannot be written is logged in full (LOG_ERR) and counted, and the
 * next record written is preceded by a "gap" record. Not yet durable:
 * journal_sync() makes it so. */
void journal_add(enum jevent ev, const char *fields);
void journal_sync(void);

/* The hourly head (and the day's end) for smapd's run loop: logs
 * "journal head: day=D records=N mac=HEX" when an hour has begun since
 * it last did (and at the first call), rolling the day over when it
 * ended. Returns the seconds until the next call is due. */
long long journal_tick(time_t now);
/* The head in the log now, if it moved since this process last logged
 * it (smapd at its stop). */
void journal_head(void);

/* smapq: record who acts ("uid=N auid=N"), and say on standard error,
 * as well as in the log, when a record cannot be written. */
void journal_set_actor(void);
/* "uid:N,auid:N" as journal_set_actor() found them ("" before). */
const char *journal_actor(void);

/* ---- records not written, the lock (journal_lost.c) ---- */

/* An exclusive flock(2) on fd, waiting at most wait_ms: 0, or -1 with
 * errno (ETIMEDOUT: another process holds it). */
int journal_flock(int fd, long wait_ms);

/* One more record lost at when (seconds), in journal/lost (dfd is
 * journal/), for the next writer's gap record: 0, or -1 with errno. */
int journal_lost_note(int dfd, long long when);

/* Under journal/'s lock: the records journal/lost counts in *n, the
 * first lost at *since; returns its fd, locked, for journal_lost_done(),
 * or -1 with *n = 0 when there are none. */
int journal_lost_take(int dfd, long *n, long long *since);

/* journal/lost let go; emptied when written (its gap record is in): 0,
 * or -1 with errno when it could not be emptied. */
int journal_lost_done(int fd, int written);

/* ---- keys and day files on disk (journal_key.c) ---- */

/* dfd/name written as name.tmp with n bytes of data (fsync'd, given to
 * uid:gid when root), renamed into place (over an old one only when
 * replace), the directory fsync'd: 0, or -1 with errno. */
int journal_write_file(int dfd, const char *name, const char *data,
    size_t n, uid_t uid, gid_t gid, int replace);

/* journal/key (dfd) holds k from now on, durably; the old one is gone:
 * 0, or -1 with errno. */
int journal_persist_key(int dfd, const struct jkey *k, uid_t uid, gid_t gid);

/* The first key, made when journal/ holds neither a key nor a day
 * (smapd -P as root: the files are given to uid:gid; smapd at its first
 * record: its own): journal/key and journal/key.first, mode 0600. dfd
 * is journal/. 0 made, 1 there already, -1 with why (a journal with
 * days but no key cannot go on). */
int journal_make_key(int dfd, uid_t uid, gid_t gid, char *why, size_t len);

/* Read a key file (at most JKEY_LINE_MAX bytes, a regular file, never
 * through a link): 0, or -1 with why. */
int journal_read_key(int dfd, const char *name, struct jkey *k, char *why,
    size_t len);

/* ---- set-up and the first key (journal_setup.c) ---- */

struct conf;
struct startup;

/* smapd -P (root): the first key in spool/journal/ for uid:gid, unless
 * there is one; each problem or step said through say(). Returns the
 * number of problems. */
int journal_prepare(const char *spool, uid_t uid, gid_t gid,
    void (*say)(void *, const char *), void *ctx);

/* smapd -t, as smapd_user: journal/ usable, its key readable (or none
 * and no day yet); problems through startup_say(), silent otherwise. */
void journal_check(struct startup *st, const struct conf *cf);

/* smapq journal-key: the first key on out, once; then it is removed
 * from the host. 0, or 1 (a reason on err). In spool_directory. */
int journal_print_first(FILE *out, FILE *err);

/* The day files of journal/ (dfd), sorted: their days in *days
 * (malloc'd), their number in *n. 0, or -1 with errno. */
int journal_days(int dfd, long **days, size_t *n);

#endif
