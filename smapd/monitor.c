/*
 * monitor.c - smapq check: the queue for Nagios/Icinga (one status line
 * with performance data, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
 * and, when metrics_textfile is set, the same numbers and the journal's
 * for node_exporter's textfile collector, written atomically; the queue
 * census the report shares (review.h, smapq(8)).
 *
 * TRUST: everything in the spool is hostile: names must be queue ids,
 * files are opened through layout_queue.c and read with the strict
 * envelope and state readers; a file that does not read is counted as
 * unreadable, never guessed at. The textfile's directory is the
 * admin's: the file is made as FILE.tmp (O_EXCL, never through a link)
 * and renamed over FILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "journal.h"
#include "review.h"
#include "spool.h"
#include "state.h"

/* dsn_subject - RFC 3463's name of a status code's subject */
const char *
dsn_subject(const char *dsn)
{
	static const char *const subject[] = { "(other or undefined status)",
		"(addressing status)", "(mailbox status)",
		"(mail system status)", "(network and routing status)",
		"(mail delivery protocol status)",
		"(message content or media status)",
		"(security or policy status)" };

	if (strlen(dsn) < 3 || dsn[1] != '.' || dsn[2] < '0' || dsn[2] > '7')
		return "";
	return subject[dsn[2] - '0'];
}

/* add_kind - one more pending recipient deferred with dsn */
static void
add_kind(struct census *c, const char *dsn)
{
	size_t i;

	for (i = 0; i < c->nkinds; i++)
		if (strcmp(c->dsn[i], dsn) == 0) {
			c->deferred[i]++;
			return;
		}
	if (c->nkinds < DSN_KINDS && spool_token_ok(dsn, sizeof(c->dsn[0]) - 1)) {
		snprintf(c->dsn[c->nkinds], sizeof(c->dsn[0]), "%s", dsn);
		c->deferred[c->nkinds++] = 1;
	}
}

/* deferred - the pending recipients of a queued message that have
 * failed before, by status code */
static void
deferred(const struct spooldirs *d, const char *id, size_t nrcpt,
    struct census *c)
{
	struct state st = { 0 };
	char why[256];
	size_t i;

	if (state_load(d, id, nrcpt, &st, why, sizeof(why)) == 0)
		for (i = 0; i < st.n; i++)
			if (st.r[i].status == R_PENDING && st.r[i].text[0] != '\0')
				add_kind(c, st.r[i].dsn);
	state_free(&st);
}

/* one - a message of directory w */
static void
one(const struct spooldirs *d, enum ldir w, const char *id, struct census *c)
{
	struct envelope e;
	char why[256];
	int fd = layout_open_file(d, w, id);

	if (fd < 0 || spool_read_envelope(fd, &e, RCPT_LIMIT_MAX, why,
	    sizeof(why)) < 0) {
		if (fd >= 0 || errno != ENOENT)
			c->unreadable++;
		if (fd >= 0)
			(void)close(fd);
		return;
	}
	(void)close(fd);
	if (c->oldest == 0 || e.arrival < c->oldest) {
		c->oldest = e.arrival;
		snprintf(c->oldest_id, sizeof(c->oldest_id), "%s", id);
	}
	if (w == L_QUEUE)
		deferred(d, id, e.nrcpt, c);
	spool_free_envelope(&e);
}

/* census_take - new/, queue/, hold/ */
void
census_take(const struct spooldirs *d, struct census *c)
{
	static const enum ldir dirs[] = { L_NEW, L_QUEUE, L_HOLD };
	size_t i, k, n;
	char **ids;

	memset(c, 0, sizeof(*c));
	for (k = 0; k < 3; k++) {
		if (layout_list(d, dirs[k], SCAN_MAX, &ids, &n) < 0) {
			c->err |= errno != ENOENT;
			continue;
		}
		c->msgs[dirs[k]] = (long)n;
		for (i = 0; i < n; i++)
			one(d, dirs[k], ids[i], c);
		layout_free_list(ids, n);
	}
}

/* Where the journal stands, for the metrics. */
struct jstat {
	long long last_delivery, head_time;
	long head_records;
};

/* on_record - the last delivery and the last record */
static void
on_record(void *ctx, const struct jrec *r)
{
	struct jstat *js = ctx;

	if (r->ev == J_DELIVERED && r->sec > js->last_delivery)
		js->last_delivery = r->sec;
	if (r->sec >= js->head_time) {
		js->head_time = r->sec;
		js->head_records = r->seq;
	}
}

/* metric - "# HELP", "# TYPE gauge" */
static void
metric(FILE *fp, const char *name, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* put_metrics - the textfile's lines */
static void
put_metrics(FILE *fp, const struct census *c, const struct jstat *js,
    long long now)
{
	static const char *const dir[] = { "new", "queue", "hold" };
	static const enum ldir w[] = { L_NEW, L_QUEUE, L_HOLD };
	size_t i;

	metric(fp, "smap_queue_messages", "Messages waiting, by directory.");
	for (i = 0; i < 3; i++)
		fprintf(fp, "smap_queue_messages{dir=\"%s\"} %ld\n", dir[i],
		    c->msgs[w[i]]);
	metric(fp, "smap_queue_oldest_seconds", "Age of the oldest message.");
	fprintf(fp, "smap_queue_oldest_seconds %lld\n", c->oldest > 0 ?
	    now - c->oldest : 0);
	metric(fp, "smap_queue_deferred_recipients", "Recipients waiting after "
	    "a failed attempt, by its status code.");
	for (i = 0; i < c->nkinds; i++)
		fprintf(fp, "smap_queue_deferred_recipients{dsn=\"%s\"} %ld\n",
		    c->dsn[i], c->deferred[i]);
	metric(fp, "smap_last_delivery_timestamp_seconds", "When smapd last "
	    "handed a message off (the journal's last delivered record).");
	fprintf(fp, "smap_last_delivery_timestamp_seconds %lld\n",
	    js->last_delivery);
	metric(fp, "smap_journal_head_timestamp_seconds", "Time of the "
	    "journal's last record.");
	fprintf(fp, "smap_journal_head_timestamp_seconds %lld\n", js->head_time);
	metric(fp, "smap_journal_head_records", "Records of the journal's "
	    "current day.");
	fprintf(fp, "smap_journal_head_records %ld\n", js->head_records);
}

/* write_metrics - FILE.tmp written, fsync'd, renamed over FILE: 0 or -1 */
static int
write_metrics(const char *path, const struct census *c,
    const struct jstat *js, long long now)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;
	int fd, bad;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return (errno = ENAMETOOLONG), -1;
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644)) < 0)
		return -1;
	if (fchmod(fd, 0644) < 0 || (fp = fdopen(fd, "w")) == NULL) {
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	put_metrics(fp, c, js, now);
	bad = fflush(fp) != 0 || fsync(fd) < 0;
	bad |= fclose(fp) != 0;
	if (bad || rename(tmp, path) < 0) {
		bad = errno;
		(void)unlink(tmp);
		errno = bad ? bad : EIO;
		return -1;
	}
	return 0;
}

/* age - seconds as "1h2m3s" */
static const char *
age(char *buf, size_t len, long long s)
{
	if (s >= 3600)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
	return buf;
}

/* verdict - 0 OK, 1 WARNING, 2 CRITICAL for n messages, oldest this old */
static int
verdict(const struct review *rv, long n, long long old)
{
	if (n > rv->crit_n || old > rv->crit_age)
		return 2;
	return n > rv->warn_n || old > rv->warn_age;
}

/* review_check - smapq check */
int
review_check(struct review *rv, FILE *out)
{
	static const char *const word[] = { "OK", "WARNING", "CRITICAL" };
	static struct census c;
	struct jstat js = { 0, 0, 0 };
	char a[32];
	long n, defer = 0;
	long long old;
	size_t i;
	int rc;

	census_take(&rv->dirs, &c);
	if (c.err) {
		fprintf(out, "SMAP UNKNOWN - the queue cannot be read\n");
		return 3;
	}
	n = c.msgs[L_NEW] + c.msgs[L_QUEUE] + c.msgs[L_HOLD];
	old = c.oldest > 0 ? rv->now - c.oldest : 0;
	for (i = 0; i < c.nkinds; i++)
		defer += c.deferred[i];
	rc = verdict(rv, n, old);
	fprintf(out, "SMAP QUEUE %s - %ld messages (queue %ld, hold %ld, new %ld), "
	    "oldest %s | messages=%ld;%ld;%ld;0 oldest=%llds;%lld;%lld;0 "
	    "deferred=%ld;;;0 hold=%ld;;;0\n", word[rc], n, c.msgs[L_QUEUE],
	    c.msgs[L_HOLD], c.msgs[L_NEW], age(a, sizeof(a), old), n, rv->warn_n,
	    rv->crit_n, old, rv->warn_age, rv->crit_age, defer, c.msgs[L_HOLD]);
	if (rv->cf->metrics_textfile[0] == '\0')
		return rc;
	if (rv->jfd >= 0)
		(void)journal_scan(rv->jfd, jday_of((time_t)rv->now) - 1, LONG_MAX,
		    on_record, &js);
	if (write_metrics(rv->cf->metrics_textfile, &c, &js, rv->now) < 0)
		fprintf(stderr, "smapq: metrics_textfile %s: %s\n",
		    rv->cf->metrics_textfile, strerror(errno));
	return rc;
}
