/*
 * maildir.c - the maildir transport: one copy of the message into the
 * Maildir named by default_transport = maildir:/path/ (the protocol of
 * https://cr.yp.to/proto/maildir.html).
 *
 * tmp/NAME is created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, and
 * holds "Return-Path: <sender>", "Delivered-To: rcpt" (the first
 * pending recipient) and the message with LF line ends; it is fsync'd,
 * moved to new/NAME without replacing anything, and new/ is fsync'd
 * before any recipient counts as delivered. Every failure removes the
 * temporary file and defers (4.3.0) with the reason. NAME is
 * <sec>.M<usec>P<pid>Q<counter>.<myhostname>, '/' and ':' in the host
 * name written as \057 and \072.
 *
 * TRUST: the path is root's configuration: its parent must exist and
 * is opened as given. The Maildir itself and its cur/, new/ and tmp/
 * are opened with O_NOFOLLOW|O_DIRECTORY, so a symlink there is
 * refused; they are created (0700) when missing, parents never. The
 * addresses passed spool_read_envelope(); they are checked once more
 * to be printable ASCII without space before going into a header.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "transport.h"

#define NAME_LEN	256	/* NAME_MAX + 1 */
#define PATH_LEN	4096	/* PATH_MAX */
#define CREATE_TRIES	3

/* An open Maildir and the reason of the last failure. */
struct mdir {
	int parent, md, tmp, new;
	char name[NAME_LEN];	/* of the message file */
	char why[400];
};

/* fail - record why, return -1 */
static int __attribute__((format(printf, 2, 3)))
fail(struct mdir *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* errtext - strerror, with a plain word for a refused symlink */
static const char *
errtext(int e)
{
	if (e == ELOOP || e == ENOTDIR)
		return "not a directory, or a symbolic link (refused)";
	return strerror(e);
}

/* safe_addr - "<...>" of printable ASCII without space; "<>" if null_ok */
static int
safe_addr(const char *a, int null_ok)
{
	size_t n = strlen(a), i;

	if (n < 2 || a[0] != '<' || a[n - 1] != '>' || (n == 2 && !null_ok))
		return 0;
	for (i = 1; i < n - 1; i++)
		if ((unsigned char)a[i] <= ' ' || (unsigned char)a[i] >= 0x7f ||
		    a[i] == '<' || a[i] == '>')
			return 0;
	return 1;
}

/* split_path - "/a/b/Maildir/" into "/a/b" and "Maildir" */
static int
split_path(const char *path, char *parent, size_t plen, char *name,
    size_t nlen)
{
	size_t n = strlen(path), s, p;

	while (n > 1 && path[n - 1] == '/')
		n--;
	for (s = n; s > 0 && path[s - 1] != '/'; s--)
		;
	if (path[0] != '/' || s == 0 || s == n || n - s >= nlen)
		return -1;
	memcpy(name, path + s, n - s);
	name[n - s] = '\0';
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -1;
	for (p = s; p > 1 && path[p - 1] == '/'; p--)
		;
	if (p >= plen)
		return -1;
	memcpy(parent, path, p);
	parent[p] = '\0';
	return 0;
}

/* subdir - open a directory below dfd, no symlink; make it 0700 if missing */
static int
subdir(int dfd, const char *name, int *created)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd;

	if ((fd = openat(dfd, name, flags)) >= 0 || errno != ENOENT)
		return fd;
	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	*created = 1;
	return openat(dfd, name, flags);
}

/* open_maildir - the Maildir at path with tmp/ and new/ open */
static int
open_maildir(const char *path, struct mdir *m)
{
	char parent[PATH_LEN], name[NAME_LEN];
	int created = 0, fd;

	if (split_path(path, parent, sizeof(parent), name, sizeof(name)) < 0)
		return fail(m, "maildir %s: not an absolute path below a "
		    "directory", path);
	if ((m->parent = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return fail(m, "maildir parent %s: %s", parent,
		    strerror(errno));
	if ((m->md = subdir(m->parent, name, &created)) < 0)
		return fail(m, "maildir %s: %s", path, errtext(errno));
	if (created && fsync(m->parent) < 0)
		return fail(m, "fsync %s: %s", parent, strerror(errno));
	created = 0;
	if ((fd = subdir(m->md, "cur", &created)) < 0)
		return fail(m, "maildir %s cur/: %s", path, errtext(errno));
	(void)close(fd);
	if ((m->tmp = subdir(m->md, "tmp", &created)) < 0)
		return fail(m, "maildir %s tmp/: %s", path, errtext(errno));
	if ((m->new = subdir(m->md, "new", &created)) < 0)
		return fail(m, "maildir %s new/: %s", path, errtext(errno));
	if (created && fsync(m->md) < 0)
		return fail(m, "fsync %s: %s", path, strerror(errno));
	return 0;
}

/* close_maildir - close what open_maildir opened */
static void
close_maildir(struct mdir *m)
{
	if (m->new >= 0)
		(void)close(m->new);
	if (m->tmp >= 0)
		(void)close(m->tmp);
	if (m->md >= 0)
		(void)close(m->md);
	if (m->parent >= 0)
		(void)close(m->parent);
}

/* make_name - <sec>.M<usec>P<pid>Q<counter>.<host>, at most len - 1 bytes */
static void
make_name(const char *host, char *buf, size_t len)
{
	static unsigned long counter;
	struct timespec ts;
	size_t n, i;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	r = snprintf(buf, len, "%lld.M%ldP%ldQ%lu.", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, (long)getpid(), ++counter);
	n = r < 0 || (size_t)r >= len ? 0 : (size_t)r;
	/* Room for one escape and the NUL; a long host name is cut. */
	for (i = 0; host[i] != '\0' && n + 5 <= len; i++) {
		if (host[i] == '/' || host[i] == ':') {
			memcpy(buf + n, host[i] == '/' ? "\\057" : "\\072", 4);
			n += 4;
		} else
			buf[n++] = host[i];
	}
	buf[n] = '\0';
}

/* write_msg - the two header lines and the message into fd */
static int
write_msg(int fd, const struct delivery *d, const char *rcpt, struct mdir *m)
{
	char head[2 * (ADDR_PATH_MAX + 3) + 64];
	static struct spool_out o;
	int n;

	n = snprintf(head, sizeof(head), "Return-Path: %s\n"
	    "Delivered-To: %.*s\n", d->env->sender, (int)strlen(rcpt) - 2,
	    rcpt + 1);
	if (n < 0 || (size_t)n >= sizeof(head))
		return fail(m, "header too long");
	spool_out_init(&o, fd);
	spool_put(&o, head, (size_t)n);
	if (msg_copy(d, MSG_LF, spool_out_put, &o) < 0 && o.err == 0)
		return fail(m, "cannot read the queue file: %s",
		    strerror(errno));
	if (spool_flush(&o) < 0)
		return fail(m, "write tmp/%s: %s", m->name, strerror(o.err));
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0)
		return fail(m, "fsync tmp/%s: %s", m->name, strerror(errno));
	return 0;
}

/* create_tmp - a new file tmp/<unique>; a fresh name on a clash */
static int
create_tmp(struct mdir *m, const char *host)
{
	int fd, tries;

	for (tries = 0; tries < CREATE_TRIES; tries++) {
		make_name(host, m->name, sizeof(m->name));
		fd = openat(m->tmp, m->name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return fail(m, "create tmp/%s: %s", m->name, strerror(errno));
	return fd;
}

/* deliver_file - write, sync, move into new/, sync new/ */
static int
deliver_file(struct mdir *m, const struct delivery *d, const char *rcpt,
    const char *host)
{
	int fd;

	if ((fd = create_tmp(m, host)) < 0)
		return -1;
	if (write_msg(fd, d, rcpt, m) < 0) {
		(void)close(fd);
		(void)unlinkat(m->tmp, m->name, 0);
		return -1;
	}
	if (close(fd) < 0) {
		(void)unlinkat(m->tmp, m->name, 0);
		return fail(m, "close tmp/%s: %s", m->name, strerror(errno));
	}
	if (layout_move(m->tmp, m->name, m->new, m->name) < 0) {
		fail(m, "move tmp/%s to new/: %s", m->name, strerror(errno));
		(void)unlinkat(m->tmp, m->name, 0);
		return -1;
	}
	/* Not durable: take it back, so that the retry is the only copy. */
	if (fsync(m->new) < 0) {
		fail(m, "fsync new/: %s", strerror(errno));
		(void)unlinkat(m->new, m->name, 0);
		return -1;
	}
	return 0;
}

/* deliver_maildir - one copy into the Maildir; see transport.h */
void
deliver_maildir(const struct transport *t, const struct conf *cf,
    struct delivery *d)
{
	struct mdir m = { .parent = -1, .md = -1, .tmp = -1, .new = -1 };
	const char *rcpt = NULL, *a;
	size_t i;

	snprintf(d->relay, sizeof(d->relay), "local");
	if (!safe_addr(d->env->sender, 1)) {
		deliver_all(d, R_BOUNCE, "5.1.3", "unsafe sender address");
		return;
	}
	for (i = 0; i < d->n; i++) {
		a = d->env->rcpt[d->idx[i]];
		d->res[i].status = R_PENDING;
		if (!safe_addr(a, 0))
			result_set(&d->res[i], R_BOUNCE, "5.1.3",
			    "unsafe address");
		else if (rcpt == NULL)
			rcpt = a;
	}
	if (rcpt == NULL)
		return;		/* every recipient was unsafe and bounced */
	if (open_maildir(t->path, &m) < 0 ||
	    deliver_file(&m, d, rcpt, cf->myhostname ? cf->myhostname :
	    "localhost") < 0)
		deliver_set(d, SET_UNDECIDED, R_DEFER, "4.3.0", "%s", m.why);
	else
		deliver_set(d, SET_UNDECIDED, R_SENT, "2.0.0", "delivered to "
		    "maildir");
	close_maildir(&m);
}
