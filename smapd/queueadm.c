/*
 * queueadm.c - smapq's view of the spool (see queueadm.h, smapq(8)):
 * list, show, the quarantine; queueadm_change.c makes the changes.
 *
 * Runs as smapd_user in spool_directory. TRUSTS NOTHING IN THE SPOOL:
 * only names that are queue ids are looked at; files are opened through
 * layout_queue.c (relative to the directories, O_NOFOLLOW, O_NONBLOCK,
 * regular files only); envelopes go
 * through spool_read_envelope() and must carry their file's name, state
 * through state_load(); every byte printed from them is escaped (\xHH,
 * or JSON \u00HH). A message is moved or removed only under the flock
 * smapd takes to deliver it (LOCK_EX|LOCK_NB), checked to still name the
 * file (queueadm_change.c), so smapq never changes a message smapd is
 * delivering. Messages still in new/ belong to smapd's pickup and are
 * only listed and shown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "addr.h"
#include "bounds.h"
#include "jail.h"
#include "layout_queue.h"
#include "queueadm.h"
#include "spool.h"
#include "state.h"

#define EX_OSERR 71

#define HEADERS_MAX 65536	/* bytes of a message that show reads */
#define EMPTY_ADDR "MAILER-DAEMON"	/* Postfix's name for <> */
/* a time in local time as asctime() and mailq show it */
#define WHEN(buf, t) qadm_time(buf, sizeof(buf), t, 0, "%a %b %e %H:%M:%S")

struct msg {
	enum ldir w;
	int locked;		/* smapd holds its delivery lock */
	int has_state;		/* state/ID exists */
	struct envelope e;
	struct state st;
};

/* qadm_exists - is there anything at w/id? */
int
qadm_exists(const struct qadm *a, enum ldir w, const char *id)
{
	struct stat st;

	return fstatat(a->dirs.fd[w], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* qadm_state_exists - is state/id a regular file? */
int
qadm_state_exists(const struct qadm *a, const char *id)
{
	struct stat st;

	return fstatat(a->dirs.fd[L_STATE], id, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

/* qadm_fail - say why id was not handled; returns 1 */
int
qadm_fail(const struct qadm *a, const char *id, int err)
{
	if (err == EWOULDBLOCK)
		fprintf(a->err, "smapq: %s is being delivered, try again\n", id);
	else if (err == ENOENT && qadm_exists(a, L_NEW, id))
		fprintf(a->err, "smapq: %s is waiting in %s/ for smapd, try "
		    "again\n", id, layout_name(L_NEW));
	else if (err == ENOENT)
		fprintf(a->err, "smapq: %s: not found\n", id);
	else
		fprintf(a->err, "smapq: %s: %s\n", id, strerror(err));
	return 1;
}

/* qadm_unreadable - complain about a directory that list_ids could not read
 * (a missing one is empty); 1, or 0 when it is missing */
int
qadm_unreadable(const struct qadm *a, const char *dir)
{
	if (errno == ENOENT)
		return 0;
	fprintf(a->err, "smapq: %s: %s\n", dir, strerror(errno));
	return 1;
}

/* read_msg - envelope (naming id) and state of an open message */
static int
read_msg(const struct qadm *a, int fd, const char *id, struct msg *m,
    char *why, size_t len)
{
	if (spool_read_envelope(fd, &m->e, RCPT_LIMIT_MAX, why, len) < 0)
		return -1;
	if (strcmp(m->e.id, id) != 0) {
		snprintf(why, len, "id record does not match the file name");
		spool_free_envelope(&m->e);
		return -1;
	}
	m->has_state = qadm_state_exists(a, id);
	if (state_load(&a->dirs, id, m->e.nrcpt, &m->st, why, len) < 0) {
		state_free(&m->st);
		spool_free_envelope(&m->e);
		return -1;
	}
	return 0;
}

/* free_msg - what read_msg filled in */
static void
free_msg(struct msg *m)
{
	state_free(&m->st);
	spool_free_envelope(&m->e);
}

/* is_locked - does smapd hold the delivery lock of an open file? */
static int
is_locked(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		(void)flock(fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK;
}

/* open_read - open dir/id and read it into m: fd, or -1 (said why,
 * unless the file simply went away) */
static int
open_read(const struct qadm *a, enum ldir w, const char *id, struct msg *m)
{
	char why[256];
	int fd;

	memset(m, 0, sizeof(*m));
	m->w = w;
	if ((fd = layout_open_file(&a->dirs, w, id)) < 0) {
		if (errno != ENOENT)
			fprintf(a->err, "smapq: %s/%s: %s\n", layout_name(w), id,
			    strerror(errno));
		return -1;
	}
	m->locked = w == L_QUEUE && is_locked(fd);
	if (read_msg(a, fd, id, m, why, sizeof(why)) < 0) {
		fprintf(a->err, "smapq: %s/%s: %s\n", layout_name(w), id, why);
		close(fd);
		return -1;
	}
	return fd;
}

/* queue_name - Postfix-like name of where the message is */
static const char *
queue_name(const struct msg *m)
{
	if (m->w == L_NEW)
		return "new";
	if (m->w == L_HOLD)
		return "hold";
	return !m->locked && m->st.attempts > 0 ? "deferred" : "active";
}

/* printable - may this byte be printed as it is? */
static int
printable(unsigned char c, int tab)
{
	return (c >= 0x20 && c < 0x7f) || (tab && c == '\t');
}

/* put_esc - n bytes of s, others than printable ASCII as \xHH */
static void
put_esc(FILE *fp, const char *s, size_t n, int tab)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (printable((unsigned char)s[i], tab))
			putc(s[i], fp);
		else
			fprintf(fp, "\\x%02X", (unsigned char)s[i]);
	}
}

/* esc_len - how long put_esc makes s */
static size_t
esc_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += printable((unsigned char)*s, 0) ? 1 : 4;
	return n;
}

/* bare - an address without its angle brackets; <> is MAILER-DAEMON */
static const char *
bare(char *buf, size_t len, const char *addr)
{
	return strcmp(addr, "<>") == 0 ? EMPTY_ADDR : addr_bare(buf, len, addr);
}

/* put_addr - bare address, escaped */
static void
put_addr(FILE *fp, const char *addr)
{
	char buf[ADDR_PATH_MAX + 3];
	const char *b = bare(buf, sizeof(buf), addr);

	put_esc(fp, b, strlen(b), 0);
}

/* qadm_time - t as fmt has it (strftime), in UTC or local time */
const char *
qadm_time(char *buf, size_t len, long long t, int utc, const char *fmt)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((utc ? gmtime_r(&tt, &tm) : localtime_r(&tt, &tm)) == NULL ||
	    strftime(buf, len, fmt, &tm) == 0)
		snprintf(buf, len, "%lld", t);
	return buf;
}

/* print_reason - Postfix's "(reason)" line, right-aligned to column 78 */
static void
print_reason(FILE *fp, const char *text)
{
	const char *show = *text ? text : "reason unavailable";
	int pad = 76 - (int)esc_len(show);

	fprintf(fp, "%*s(", pad > 0 ? pad : 0, "");
	put_esc(fp, show, strlen(show), 0);
	fputs(")\n", fp);
}

/* next_hop - where rcpt goes now, in transport(5)'s words */
static const char *
next_hop(const struct routes *r, const char *rcpt, char *buf, size_t len)
{
	static struct transport t;
	char why[512];

	if (r == NULL)
		return "unknown";
	if (route_of(r, rcpt, &t, why, sizeof(why)) == 0)
		return route_name(&t, buf, len);
	snprintf(buf, len, "none (%s)", why);
	return buf;
}

/* routed - the routes to show in a listing: only when transport_maps
 * sends recipients elsewhere than default_transport */
static const struct routes *
routed(const struct qadm *a)
{
	return a->routes != NULL && a->routes->map.type != MAP_CLOSED ?
	    a->routes : NULL;
}

/* print_text - one message, as Postfix's mailq shows it; with
 * transport_maps, each recipient's next hop after it */
static void
print_text(FILE *fp, const struct msg *m, const struct routes *rt)
{
	char hop[ROUTE_NAME_MAX + 600];
	char id[SPOOL_ID_MAX + 2], t[32];
	const char *last = "", *h;
	size_t i;

	snprintf(id, sizeof(id), "%s%s", m->e.id, m->w == L_HOLD ? "!" :
	    m->locked ? "*" : "");
	fprintf(fp, "%-11s %7lld %-20.20s ", id, m->e.size,
	    WHEN(t, m->e.arrival));
	put_addr(fp, m->e.sender);
	putc('\n', fp);
	for (i = 0; i < m->e.nrcpt; i++) {
		const struct rcpt_result *r = &m->st.r[i];

		if (r->status != R_PENDING)
			continue;
		if (strcmp(last, r->text) != 0)
			print_reason(fp, r->text);
		last = r->text;
		fprintf(fp, "%41s", "");
		put_addr(fp, m->e.rcpt[i]);
		if (rt != NULL) {
			fputs(" via ", fp);
			h = next_hop(rt, m->e.rcpt[i], hop, sizeof(hop));
			put_esc(fp, h, strlen(h), 0);
		}
		putc('\n', fp);
	}
}

/* qadm_json_string - a JSON string of printable ASCII */
void
qadm_json_string(FILE *fp, const char *s)
{
	putc('"', fp);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (!printable(c, 0))
			fprintf(fp, "\\u%04x", c);
		else
			putc(c, fp);
	}
	putc('"', fp);
}

/* print_json - one message, close to one line of postqueue -j */
static void
print_json(FILE *fp, const struct msg *m, const struct routes *rt)
{
	char buf[ADDR_PATH_MAX + 3], hop[ROUTE_NAME_MAX + 600];
	size_t i, k = 0;

	fprintf(fp, "{\"queue_name\": \"%s\", \"queue_id\": ", queue_name(m));
	qadm_json_string(fp, m->e.id);
	fprintf(fp, ", \"arrival_time\": %lld, \"message_size\": %lld, "
	    "\"forced_expire\": false, \"sender\": ", m->e.arrival, m->e.size);
	qadm_json_string(fp, bare(buf, sizeof(buf), m->e.sender));
	fputs(", \"recipients\": [", fp);
	for (i = 0; i < m->e.nrcpt; i++) {
		if (m->st.r[i].status != R_PENDING)
			continue;
		fputs(k++ ? ", {\"address\": " : "{\"address\": ", fp);
		qadm_json_string(fp, bare(buf, sizeof(buf), m->e.rcpt[i]));
		if (m->st.r[i].text[0] != '\0') {
			fputs(", \"delay_reason\": ", fp);
			qadm_json_string(fp, m->st.r[i].text);
		}
		if (rt != NULL) {
			fputs(", \"next_hop\": ", fp);
			qadm_json_string(fp, next_hop(rt, m->e.rcpt[i], hop,
			    sizeof(hop)));
		}
		putc('}', fp);
	}
	fputs("]}\n", fp);
}

/* list_dir - every readable message of one directory; adds to the
 * totals; 1 when the directory cannot be read */
static int
list_dir(const struct qadm *a, enum ldir w, unsigned long *count,
    unsigned long long *bytes)
{
	struct msg m;
	size_t i, n;
	char **ids;
	int fd;

	if (layout_list(&a->dirs, w, SCAN_MAX, &ids, &n) < 0)
		return qadm_unreadable(a, layout_name(w));
	for (i = 0; i < n; i++) {
		if ((fd = open_read(a, w, ids[i], &m)) < 0)
			continue;
		close(fd);
		if (a->json) {
			print_json(a->out, &m, routed(a));
		} else {
			if (*count == 0)
				fprintf(a->out, "%-11s %7s %-20s %s\n", "-Queue ID-",
				    "--Size--", "----Arrival Time----",
				    "-Sender/Recipient-------");
			else
				putc('\n', a->out);
			print_text(a->out, &m, routed(a));
		}
		(*count)++;
		*bytes += (unsigned long long)m.e.size;
		free_msg(&m);
	}
	layout_free_list(ids, n);
	return 0;
}

/* qadm_list - new/, queue/, hold/; then Postfix's summary line */
int
qadm_list(const struct qadm *a)
{
	unsigned long count = 0;
	unsigned long long bytes = 0;
	int rc = list_dir(a, L_NEW, &count, &bytes);

	rc |= list_dir(a, L_QUEUE, &count, &bytes);
	rc |= list_dir(a, L_HOLD, &count, &bytes);
	if (a->json || rc != 0)
		return rc;	/* no summary that would pass for the truth */
	if (count == 0)
		fputs("Mail queue is empty\n", a->out);
	else
		fprintf(a->out, "\n-- %llu Kbytes in %lu Request%s.\n",
		    bytes / 1024, count, count == 1 ? "" : "s");
	return rc;
}

/* show_envelope - the envelope records, one "name: value" line each */
static void
show_envelope(FILE *fp, const struct msg *m)
{
	const struct envelope *e = &m->e;
	char t[32];

	fprintf(fp, "queue_id: %s\nqueue_name: %s\n", e->id, queue_name(m));
	fprintf(fp, "arrival_time: %lld (%s)\nmessage_size: %lld\nclient: ",
	    e->arrival, WHEN(t, e->arrival), e->size);
	put_esc(fp, e->client, strlen(e->client), 0);
	fprintf(fp, " port %u\nhelo: ", e->port);
	put_esc(fp, e->helo, strlen(e->helo), 0);
	fprintf(fp, "\nprotocol: %.8s\nbody: %s\nsender: ", e->proto,
	    e->body8 ? "8BIT" : "7BIT");
	put_esc(fp, e->sender, strlen(e->sender), 0);
	putc('\n', fp);
}

/* show_hop - a recipient's next hop, and the relay that last answered */
static void
show_hop(FILE *fp, const struct routes *rt, const char *rcpt,
    const struct rcpt_result *r)
{
	char hop[ROUTE_NAME_MAX + 600];
	const char *h = next_hop(rt, rcpt, hop, sizeof(hop));

	fputs("  next_hop: ", fp);
	put_esc(fp, h, strlen(h), 0);
	putc('\n', fp);
	if (r->relay[0] == '\0')
		return;
	fputs("  relay: ", fp);
	put_esc(fp, r->relay, strnlen(r->relay, sizeof(r->relay)), 0);
	putc('\n', fp);
}

/* show_state - attempts, next attempt, and every recipient's status */
static void
show_state(FILE *fp, const struct msg *m, const struct routes *rt)
{
	char t[32];
	size_t i;

	if (m->has_state)
		fprintf(fp, "attempts: %lld\nnext_attempt: %lld (%s)\n"
		    "delay_warning: %s\n", m->st.attempts, m->st.next,
		    m->st.next > 0 ? WHEN(t, m->st.next) : "now",
		    m->st.warned ? "sent" : "no");
	for (i = 0; i < m->e.nrcpt; i++) {
		const struct rcpt_result *r = &m->st.r[i];
		int k = r->status == R_PENDING && r->text[0] ? R_DEFER :
		    (int)r->status;

		fputs("recipient: ", fp);
		put_esc(fp, m->e.rcpt[i], strlen(m->e.rcpt[i]), 0);
		fprintf(fp, " %s", status_names[k >= 0 && k < R_RETURNED ? k : 0]);
		if (r->text[0] != '\0') {
			putc(' ', fp);
			put_esc(fp, r->dsn, strnlen(r->dsn, sizeof(r->dsn)), 0);
			fputs(" (", fp);
			put_esc(fp, r->text, strnlen(r->text, sizeof(r->text)), 0);
			putc(')', fp);
		}
		putc('\n', fp);
		show_hop(fp, rt, m->e.rcpt[i], r);
	}
}

/* show_headers - the header lines of the message, escaped */
static void
show_headers(FILE *fp, int fd, const struct envelope *e)
{
	size_t cap = e->size < HEADERS_MAX ? (size_t)e->size : HEADERS_MAX;
	size_t n = 0, at = 0, end, len;
	char *buf = malloc(cap + 1), *lf;
	ssize_t r;

	if (buf == NULL)
		return;
	while (n < cap && (r = pread(fd, buf + n, cap - n,
	    e->body_offset + (off_t)n)) > 0)
		n += (size_t)r;
	putc('\n', fp);
	while (at < n) {
		lf = memchr(buf + at, '\n', n - at);
		end = lf != NULL ? (size_t)(lf - buf) : n;
		len = end - at;
		if (len > 0 && buf[end - 1] == '\r')
			len--;
		if (len == 0)
			break;
		put_esc(fp, buf + at, len, 1);
		putc('\n', fp);
		at = end + 1;
	}
	if (at >= n && n == cap && cap < (size_t)e->size)
		fputs("(headers cut short)\n", fp);
	free(buf);
}

/* read_why - w/NAME.why into buf (capped, never through a link) */
static void
read_why(const struct qadm *a, enum ldir w, const char *name, char *buf,
    size_t len)
{
	char path[300];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "%s.why", name);
	if ((fd = layout_open_file(&a->dirs, w, path)) >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* qadm_show - one message in queue/, hold/ or new/ */
int
qadm_show(const struct qadm *a, const char *id)
{
	static const enum ldir order[] = { L_QUEUE, L_HOLD, L_NEW };
	struct msg m;
	char why[512];
	size_t i;
	int fd = -1;

	for (i = 0; i < 3 && fd < 0; i++)
		if ((fd = open_read(a, order[i], id, &m)) < 0 &&
		    qadm_exists(a, order[i], id))
			return 1;	/* there, but bad: open_read said why */
	if (fd < 0)
		return qadm_fail(a, id, ENOENT);
	show_envelope(a->out, &m);
	if (m.w == L_HOLD) {
		read_why(a, L_HOLD, id, why, sizeof(why));
		fputs("held: ", a->out);
		put_esc(a->out, why, strlen(why), 0);
		fputs(why[0] ? "\n" : "by smapq hold\n", a->out);
	}
	show_state(a->out, &m, a->routes);
	show_headers(a->out, fd, &m.e);
	close(fd);
	free_msg(&m);
	return 0;
}

/* not_why - a quarantined entry, not its reason */
static int
not_why(const char *name)
{
	size_t n = strlen(name);

	return strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	    !(n > 4 && strcmp(name + n - 4, ".why") == 0);
}

/* print_quarantined - one entry: name, size, when, reason */
static void
print_quarantined(const struct qadm *a, const char *name, const struct stat *st)
{
	char why[512], t[32];

	read_why(a, L_QUAR, name, why, sizeof(why));
	if (a->json) {
		fputs("{\"queue_name\": \"quarantine\", \"name\": ", a->out);
		qadm_json_string(a->out, name);
		fprintf(a->out, ", \"size\": %lld, \"quarantined\": %lld, "
		    "\"reason\": ", (long long)st->st_size, (long long)st->st_ctime);
		qadm_json_string(a->out, why);
		fputs("}\n", a->out);
		return;
	}
	put_esc(a->out, name, strlen(name), 0);
	fprintf(a->out, " %lld %s (", (long long)st->st_size,
	    WHEN(t, (long long)st->st_ctime));
	put_esc(a->out, why, strlen(why), 0);
	fputs(")\n", a->out);
}

/* qadm_quarantine - what quarantine/ holds, with each reason */
int
qadm_quarantine(const struct qadm *a)
{
	struct stat st;
	size_t i, n;
	char **v;

	if (layout_scan(&a->dirs, L_QUAR, SCAN_MAX, not_why, &v, &n) < 0)
		return qadm_unreadable(a, layout_name(L_QUAR));
	for (i = 0; i < n; i++)
		if (fstatat(a->dirs.fd[L_QUAR], v[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
			print_quarantined(a, v[i], &st);
	if (!a->json)
		fprintf(a->out, "-- %zu in quarantine (kept for quarantine_lifetime)"
		    "\n", n);
	layout_free_list(v, n);
	return 0;
}

/* qadm_enter - smapd_user (when root), in the spool; see queueadm.h */
int
qadm_enter(const struct conf *cf)
{
	char why[512];

	if (geteuid() == 0 && jail_enter(NULL, cf->smapd_user, 0, why,
	    sizeof(why)) < 0) {
		fprintf(stderr, "smapq: cannot become %s: %s\n", cf->smapd_user,
		    why);
		return EX_OSERR;
	}
	if (chdir(cf->spool_directory) < 0) {
		fprintf(stderr, "smapq: %s: %s\n", cf->spool_directory,
		    strerror(errno));
		return EX_OSERR;
	}
	return 0;
}
