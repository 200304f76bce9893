/*
 * state.c - reading and writing state/ID (see state.h).
 *
 * FORMAT: LF-terminated lines. "SMAPSTATE 1", "attempts N", "next T",
 * "warned 0|1", then one line per decided or deferred recipient:
 * "rcpt INDEX sent|deferred|bounced|returned DSN TEXT", TEXT printable
 * ASCII; returned is bounced with the DSN already sent; each may be
 * followed by "relay INDEX RELAY", the next hop that said it.
 * Only smapd writes these files (state/ is smapd's, mode 0700), but they
 * are read with the same bounds as anything else, and opened through
 * layout_queue.c: never through a link, and a file with more than one
 * link is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "layout_queue.h"
#include "spool.h"
#include "state.h"

/* number - "NAME digits" at the start of line; the rest after one space */
static const char *
number(const char *line, const char *name, long long *v)
{
	size_t n = strlen(name);
	char *end;

	if (strncmp(line, name, n) != 0 || line[n] < '0' || line[n] > '9')
		return NULL;
	errno = 0;
	*v = strtoll(line + n, &end, 10);
	if (errno != 0 || (*end != '\0' && *end != ' '))
		return NULL;
	return *end == ' ' ? end + 1 : end;
}

/* parse_rcpt - "rcpt INDEX STATUS DSN TEXT" into st */
static int
parse_rcpt(const char *line, struct state *st)
{
	const char *p, *sp;
	long long idx;
	size_t n;
	int k;

	if ((p = number(line, "rcpt ", &idx)) == NULL || idx < 0 ||
	    (size_t)idx >= st->n)
		return -1;
	for (k = 1; k <= R_RETURNED; k++) {
		n = strlen(status_names[k]);
		if (strncmp(p, status_names[k], n) == 0 && p[n] == ' ')
			break;
	}
	if (k > R_RETURNED || (sp = strchr(p + n + 1, ' ')) == NULL ||
	    (size_t)(sp - (p + n + 1)) >= sizeof(st->r[0].dsn))
		return -1;
	st->r[idx].status = k == R_DEFER ? R_PENDING : k == R_RETURNED ?
	    R_BOUNCE : (enum rstatus)k;
	st->r[idx].notified = k == R_RETURNED;
	snprintf(st->r[idx].dsn, sizeof(st->r[idx].dsn), "%.*s",
	    (int)(sp - (p + n + 1)), p + n + 1);
	snprintf(st->r[idx].text, sizeof(st->r[idx].text), "%s", sp + 1);
	return 0;
}

/* parse_relay - "relay INDEX TEXT": the next hop that said it */
static int
parse_relay(const char *line, struct state *st)
{
	const char *p;
	long long idx;

	if ((p = number(line, "relay ", &idx)) == NULL || idx < 0 ||
	    (size_t)idx >= st->n || *p == '\0')
		return -1;
	snprintf(st->r[idx].relay, sizeof(st->r[idx].relay), "%s", p);
	return 0;
}

/* parse_line - one line of a state file */
static int
parse_line(const char *line, struct state *st)
{
	if (strncmp(line, "rcpt ", 5) == 0)
		return parse_rcpt(line, st);
	if (strncmp(line, "relay ", 6) == 0)
		return parse_relay(line, st);
	if (number(line, "attempts ", &st->attempts) != NULL ||
	    number(line, "next ", &st->next) != NULL ||
	    number(line, "warned ", &st->warned) != NULL ||
	    strcmp(line, "SMAPSTATE 1") == 0)
		return 0;
	return -1;
}

/* state_load - read state/ID, or start fresh */
int
state_load(const struct spooldirs *d, const char *id, size_t n,
    struct state *st, char *why, size_t len)
{
	char line[1024];
	FILE *fp;
	int fd, rc = 0, lines = 0;

	memset(st, 0, sizeof(*st));
	st->n = n;
	if ((st->r = calloc(n ? n : 1, sizeof(*st->r))) == NULL) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	if ((fd = layout_open_file(d, L_STATE, id)) < 0 && errno == ENOENT)
		return 0;
	if (fd >= 0 && !layout_still_named(d, L_STATE, fd, id)) {
		close(fd);
		fd = -1;
		errno = EMLINK;
	}
	if (fd < 0 || (fp = fdopen(fd, "r")) == NULL) {
		snprintf(why, len, "state/%s: %s", id, errno == ELOOP ?
		    "a symbolic link" : errno == EINVAL ? "not a regular file" :
		    errno == EMLINK ? "more than one link" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		size_t l = strlen(line);

		if (l == 0 || line[l - 1] != '\n' || ++lines > 2 * (int)n + 8)
			rc = -1;
		else
			line[l - 1] = '\0';
		if (rc == 0)
			rc = parse_line(line, st);
	}
	fclose(fp);
	if (rc < 0)
		snprintf(why, len, "state/%s: damaged state file", id);
	return rc;
}

/* printable - replace what could break a line with '?' */
static void
printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* write_state - the file's text into fp */
static void
write_state(FILE *fp, const struct state *st)
{
	char text[sizeof(st->r[0].text)], dsn[sizeof(st->r[0].dsn)];
	size_t i;

	fprintf(fp, "SMAPSTATE 1\nattempts %lld\nnext %lld\nwarned %lld\n",
	    st->attempts, st->next, st->warned);
	for (i = 0; i < st->n; i++) {
		if (st->r[i].status == R_PENDING && st->r[i].text[0] == '\0')
			continue;
		snprintf(text, sizeof(text), "%s", st->r[i].text);
		snprintf(dsn, sizeof(dsn), "%s", st->r[i].dsn[0] ?
		    st->r[i].dsn : "4.0.0");
		printable(text);
		printable(dsn);
		if (strchr(dsn, ' ') != NULL)
			snprintf(dsn, sizeof(dsn), "4.0.0");
		fprintf(fp, "rcpt %zu %s %s %s\n", i, status_names[
		    st->r[i].status == R_PENDING ? R_DEFER :
		    st->r[i].notified ? R_RETURNED : st->r[i].status], dsn, text);
		snprintf(text, sizeof(text), "%s", st->r[i].relay);
		printable(text);
		if (text[0] != '\0')
			fprintf(fp, "relay %zu %s\n", i, text);
	}
}

/* A delivery process's unused reservation, kept for its next message
 * (renamed to that one's name) rather than removed and made again: a
 * delivered message then costs no file created, allocated and removed in
 * state/. Dropped at the process's end (state_spare). */
static struct {
	int on, fd;
	pid_t pid;
	off_t size;
	char id[SPOOL_ID_MAX + 1];
} spare = { 0, -1, 0, 0, "" };

/* reuse - the spare renamed state/ID.tmp with room for need bytes: its
 * fd, or -1 (it is gone: the caller makes a new one) */
static int
reuse(const struct spooldirs *d, const char *id, off_t need)
{
	int fd = spare.fd;

	spare.fd = -1;
	if (fd < 0)
		return -1;
	if (spare.pid != getpid()) {	/* another process's: not ours to remove */
		(void)close(fd);
		return -1;
	}
	if (layout_rename_own(d, L_STATE, spare.id, id) < 0) {
		layout_discard(d, L_STATE, fd, spare.id);
		return -1;
	}
	if (spare.size < need && posix_fallocate(fd, 0, need) != 0) {
		layout_discard(d, L_STATE, fd, id);
		return -1;
	}
	return fd;
}

/* state_reserve - state/ID.tmp, made now (or the spare, renamed) with
 * room for every line the state of n recipients can take: the outcome
 * of an attempt must never be lost for want of an inode or a block */
int
state_reserve(const struct spooldirs *d, const char *id, size_t n)
{
	off_t need = STATE_HEAD_MAX + (off_t)n * STATE_LINE_MAX;
	int fd, err;

	if ((fd = reuse(d, id, need)) >= 0)
		return fd;
	if ((fd = layout_create_own(d, L_STATE, id)) < 0)
		return -1;
	if ((err = posix_fallocate(fd, 0, need)) != 0) {
		layout_discard(d, L_STATE, fd, id);
		errno = err;
		return -1;
	}
	return fd;
}

/* state_unreserve - an unused reservation: kept as the spare when asked
 * to (and there is none), else removed */
void
state_unreserve(const struct spooldirs *d, const char *id, int *rfd)
{
	struct stat st;

	if (rfd == NULL)
		return;
	if (*rfd >= 0 && spare.on && spare.fd < 0 && strlen(id) <=
	    SPOOL_ID_MAX && fstat(*rfd, &st) == 0 && S_ISREG(st.st_mode)) {
		spare.fd = *rfd;
		spare.pid = getpid();
		spare.size = st.st_size;
		memcpy(spare.id, id, strlen(id) + 1);
	} else if (*rfd >= 0)
		layout_discard(d, L_STATE, *rfd, id);
	*rfd = -1;
}

/* state_spare - see state.h */
void
state_spare(const struct spooldirs *d, int on)
{
	if (spare.fd >= 0)
		layout_discard(d, L_STATE, spare.fd, spare.id);
	spare.fd = -1;
	spare.on = on;
}

/* state_save - replace state/ID durably, into the reserved file if any */
int
state_save(const struct spooldirs *d, const char *id, const struct state *st,
    int *rfd)
{
	FILE *fp;
	long len;
	int fd = rfd != NULL && *rfd >= 0 ? *rfd : layout_create_own(d, L_STATE,
	    id), rc;

	if (rfd != NULL)
		*rfd = -1;
	if (fd < 0)
		return -1;
	if ((fp = fdopen(dup(fd), "w")) == NULL) {
		layout_discard(d, L_STATE, fd, id);
		return -1;
	}
	write_state(fp, st);
	rc = fflush(fp) == 0 && (len = ftell(fp)) >= 0 &&
	    ftruncate(fd, (off_t)len) == 0 ? 0 : -1;
	if (fclose(fp) != 0)
		rc = -1;
	if (rc < 0) {
		layout_discard(d, L_STATE, fd, id);
		return -1;
	}
	return layout_publish(d, L_STATE, fd, id, PUB_REPLACE);
}

/* state_remove - forget a finished message */
void
state_remove(const struct spooldirs *d, const char *id)
{
	(void)unlinkat(d->fd[L_STATE], id, 0);
}

/* state_free - release the results */
void
state_free(struct state *st)
{
	free(st->r);
	st->r = NULL;
}
