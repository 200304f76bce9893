/*
 * anvil.c - per-client limits across smap processes, Postfix's names
 * and meanings (its anvil(8): one window of anvil_rate_time_unit per
 * client from its first event, concurrency = its live sessions), in
 * one table all sessions share: ANVIL_TABLE in smap's own directory.
 *
 * TRUST: every smap writes the table, a compromised one too. It is read
 * whole into a copy with pread (a mapping would die of SIGBUS when the
 * file is cut short under it), under an fcntl lock tried ANVIL_WAIT_MS
 * times; a short table or a wrong magic is rebuilt empty; an entry is
 * only a count compared with a limit, every index is ours. A liar can
 * raise or reset counts (refuse a client early, let one in more often):
 * smap's own limits, nothing else. A session holds a lock on its slot
 * while it lives, so a killed one frees its count. Without a usable
 * table the session goes on without limits, warned.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "anvil.h"
#include "layout.h"
#include "log.h"

#define NRATE	512		/* clients with a window */
#define NSLOT	256		/* sessions counted at once */
#define MAGIC	"smap anvil 1\n"
#define SLOT_AT(i) ((off_t)(offsetof(struct table, slot) + (i) * sizeof(struct ent)))

struct ent {
	unsigned char addr[16];
	int32_t family;		/* 0: free */
	uint32_t n[3];		/* events (enum anvil_event) in the window */
	int64_t start;		/* of the window, ms since the epoch */
};

struct table {
	char magic[16];
	struct ent rate[NRATE];
	struct ent slot[NSLOT];	/* live while its first byte is locked */
};

static struct table t;		/* our copy */
static int tfd = -1;		/* -2: unusable, do not try again */

/* lock - an open file's lock on one byte, tried tries times; 0 or -1 */
static int
lock(short type, off_t at, int tries)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
	    .l_start = at, .l_len = 1 };
	const struct timespec ms = { 0, 1000000 };

	while (fcntl(tfd, F_OFD_SETLK, &fl) < 0)
		if ((errno != EAGAIN && errno != EACCES) || --tries <= 0 ||
		    nanosleep(&ms, NULL) < 0)
			return -1;
	return 0;
}

/* table - open or make the table once: a plain file of ours; 0 or -1 */
static int
table(void)
{
	struct stat st;

	if (tfd == -1 && (tfd = open(ANVIL_TABLE, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600)) >= 0 &&
	    (fstat(tfd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_uid != geteuid())) {
		(void)close(tfd);
		tfd = -1;
		errno = EPERM;
	}
	if (tfd == -1) {
		log_warn("%s: %s; no client limits in this session", ANVIL_TABLE,
		    errno == EPERM ? "not a plain file of smap's" : strerror(errno));
		tfd = -2;
	}
	return tfd < 0 ? -1 : 0;
}

/* load - the table as it is, or rebuilt empty when it is none */
static void
load(void)
{
	ssize_t n = pread(tfd, &t, sizeof(t), 0);

	if (n == (ssize_t)sizeof(t) && memcmp(t.magic, MAGIC, sizeof(MAGIC)) == 0)
		return;
	if (n != 0)
		log_warn("%s: not a table of client counts: rebuilt", ANVIL_TABLE);
	memset(&t, 0, sizeof(t));
	memcpy(t.magic, MAGIC, sizeof(MAGIC));
	(void)!ftruncate(tfd, (off_t)sizeof(t));
}

/* same - is e the client's? */
static int
same(const struct ent *e, const struct peer *p)
{
	return e->family == p->family && memcmp(e->addr, p->bin, 16) == 0;
}

/* entry - the client's window (new when over), else the oldest's; ms */
static struct ent *
entry(const struct peer *p, int64_t now, int64_t unit)
{
	struct ent *e = t.rate, *old = t.rate;
	size_t i;

	for (i = 0; i < NRATE && !same(e = &t.rate[i], p); i++)
		if (old->family != 0 && (e->family == 0 || e->start < old->start))
			old = e;
	if (i == NRATE || e->start > now || e->start <= now - unit) {
		e = i == NRATE ? old : e;
		memset(e, 0, sizeof(*e));
		memcpy(e->addr, p->bin, 16);
		e->family = p->family;
		e->start = now;
	}
	return e;
}

/* live - the client's sessions: slots with its name that others lock */
static long long
live(const struct peer *p)
{
	struct flock fl;
	long long n = 0;
	size_t i;

	for (i = 0; i < NSLOT; i++) {
		if (!same(&t.slot[i], p))
			continue;
		fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET,
		    .l_start = SLOT_AT(i), .l_len = 1 };
		n += fcntl(tfd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	}
	return n;
}

/* claim - a free slot (unlocked) locked and named for this session */
static void
claim(const struct peer *p)
{
	size_t i;

	for (i = 0; i < NSLOT; i++)
		if (lock(F_WRLCK, SLOT_AT(i), 1) == 0) {
			memcpy(t.slot[i].addr, p->bin, 16);
			t.slot[i].family = p->family;
			return;
		}
}

/* count - one event counted under the lock: the client's in the window,
 * *now its sessions with this one; -1 when the table stays busy */
static long long
count(const struct conf *cf, const struct peer *p, enum anvil_event ev,
    long long rate, long long *now)
{
	long long cc = cf->smtpd_client_connection_count_limit;
	struct timespec ts;
	struct ent *e;

	if (lock(F_WRLCK, 0, ANVIL_WAIT_MS) < 0)
		return -1;
	load();
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	e = entry(p, ts.tv_sec * 1000LL + ts.tv_nsec / 1000000,
	    cf->anvil_rate_time_unit * 1000);
	e->n[ev] += e->n[ev] < UINT32_MAX;
	if (ev == ANVIL_CONN && cc > 0 && (*now = live(p) + 1) <= cc &&
	    (rate == 0 || e->n[ev] <= rate))
		claim(p);
	(void)!pwrite(tfd, &t, sizeof(t), 0);
	(void)lock(F_UNLCK, 0, 1);
	return e->n[ev];
}

/* anvil_event - count one event; NULL, or the reply past a limit */
const char *
anvil_event(const struct conf *cf, const struct peer *p, enum anvil_event ev)
{
	static const char *const what[] = { "Connection rate",
	    "Message delivery request rate", "Recipient address rate" };
	static char reply[400];
	const long long rate = ev == ANVIL_CONN ?
	    cf->smtpd_client_connection_rate_limit : ev == ANVIL_MAIL ?
	    cf->smtpd_client_message_rate_limit :
	    cf->smtpd_client_recipient_rate_limit;
	long long cc = ev == ANVIL_CONN ?
	    cf->smtpd_client_connection_count_limit : 0, n, now = 0;

	if ((rate == 0 && cc == 0) || p->family == 0 || net_match(
	    &cf->smtpd_client_event_limit_exceptions, p->family, p->bin) ||
	    table() < 0)
		return NULL;
	if ((n = count(cf, p, ev, rate, &now)) < 0) {
		log_warn("%s: busy; no client limits this time", ANVIL_TABLE);
		return NULL;
	}
	if (cc > 0 && now > cc)
		log_warn("Connection concurrency limit exceeded: %lld from "
		    "unknown[%s] for service smtp", now, p->addr);
	else if (rate > 0 && n > rate)
		log_warn("%s limit exceeded: %lld from unknown[%s] for service "
		    "smtp", what[ev], n, p->addr);
	else
		return NULL;
	if (ev == ANVIL_CONN)
		snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many "
		    "connections from %s", cf->myhostname, p->addr);
	else
		snprintf(reply, sizeof(reply), "450 4.7.1 Error: too %s from %s",
		    ev == ANVIL_MAIL ? "much mail" : "many recipients", p->addr);
	return reply;
}
