/*
 * review.h - what smapq does for a daily review (smapq(8)): read the
 * log (logscan.c), verify the journal (journal_verify.c), report a
 * period (report.c), and check the queue for a monitoring system
 * (monitor.c); the commands themselves are in smapq_review.c.
 */
#ifndef SMAPD_REVIEW_H
#define SMAPD_REVIEW_H

#include <stdio.h>
#include <sys/types.h>
#include "conf.h"
#include "journal.h"
#include "layout_queue.h"

/* ---- the log (logscan.c) ---- */

#define LOGS_MAX 8
#define LOG_LINE_MAX 8192

/* Where the log lines come from, opened before smapq drops its
 * privileges: the files named (--log; "-" is standard input), else
 * maillog_file, else /var/log/mail.log, else what journalctl prints
 * (started here, as the user smapq runs as). */
struct logs {
	int fd[LOGS_MAX];
	size_t n;
	pid_t child;		/* journalctl, or 0 */
	char what[512];		/* for the report: which sources */
};

/* since: the earliest time wanted (0: all; journalctl only is told). */
void logs_open(struct logs *lg, char **paths, size_t npaths,
    const struct conf *cf, long long since);
void logs_close(struct logs *lg);

/* One log line as logs_scan() splits it: its time (epoch seconds; 0
 * when it could not be read), the program ("smap/smtpd", without
 * [pid]) and the message after ": ". */
struct logline {
	long long t;
	const char *ident;
	size_t ident_len;
	const char *msg;
	size_t msg_len;
};

/* Every line of every source, in order, to fn; now is for the year of
 * traditional syslog time stamps. Lines longer than LOG_LINE_MAX are
 * skipped. Sources are read once. */
void logs_scan(struct logs *lg, long long now,
    void (*fn)(void *ctx, const struct logline *l), void *ctx);

/* A logged head ("journal head|closed|started: day= records= mac=",
 * from a smap/ program) in l: 1 and h filled, else 0. */
int log_head(const struct logline *l, struct jhead *h);

/* "day=D records=N mac=HEX" (as the log has it, or --head): 0, or -1. */
int head_parse(const char *s, size_t n, struct jhead *h);

/* The heads a review found, kept in order (at most HEADS_MAX). */
#define HEADS_MAX 100000
struct heads {
	struct jhead *v;
	size_t n, cap;
};
void heads_add(struct heads *hs, const struct jhead *h);

/* ---- the journal's verification (journal_verify.c) ---- */

struct verify {
	/* what to check */
	const struct jkey *key;		/* NULL: structure only */
	const struct jhead *heads;	/* logged heads (sorted here) */
	size_t nheads;
	const long *only;		/* DAY arguments, or NULL: every day */
	size_t nonly;
	/* the outcome */
	int bad;			/* 0: intact */
	char bad_day[JDAY_LEN];
	long bad_line;			/* 0: the day as a whole */
	char why[512];
	long days, records, gaps, lost, torn, heads_checked;
	long first_day, last_day;	/* -1: none */
	struct jhead head;		/* where the chain ends */
};

/* Verify journal/ (dfd) as v asks; fills in the outcome. 0 when
 * intact, 1 at the first bad record (v->bad_day, v->bad_line, v->why). */
int journal_verify(int dfd, struct verify *v);

/* The outcome as the lines smapq verify prints. */
void verify_print(FILE *fp, const struct verify *v);

/* Each record of the days from..to (parsed; records that do not parse
 * are skipped: verification judges them) to fn. 0, or -1 with errno. */
int journal_scan(int dfd, long from, long to,
    void (*fn)(void *ctx, const struct jrec *r), void *ctx);

/* ---- the queue (monitor.c) ---- */

#define DSN_KINDS 32

struct census {
	long msgs[L_NDIRS];		/* L_NEW, L_QUEUE, L_HOLD */
	long long oldest;		/* arrival of the oldest, 0: none */
	char oldest_id[SPOOL_ID_MAX + 1];
	long unreadable;		/* entries that could not be read */
	size_t nkinds;
	char dsn[DSN_KINDS][16];	/* pending recipients by their */
	long deferred[DSN_KINDS];	/* last deferral's status code */
	int err;			/* a directory could not be read */
};

/* Count new/, queue/ and hold/ (every file read as hostile). */
void census_take(const struct spooldirs *d, struct census *c);

/* The words RFC 3463 gives a status code's subject ("4.4.1": "network
 * and routing"). */
const char *dsn_subject(const char *dsn);

/* ---- the commands (smapq_review.c, report.c, monitor.c) ---- */

struct review {
	const struct conf *cf;
	struct spooldirs dirs;
	int jfd;			/* journal/, or -1 */
	struct logs logs;
	struct jkey key;
	int have_key;
	int json, mail;
	long long since, now;
	long warn_n, crit_n;		/* check: messages */
	long long warn_age, crit_age;	/* check: seconds */
};

int review_report(struct review *rv, FILE *out);
int review_check(struct review *rv, FILE *out);

/* smapq verify|report|check|journal-key ...: the exit status, or -1
 * when argv names none of them (smapq's own commands then). */
int smapq_review(int argc, char **argv);

#endif
