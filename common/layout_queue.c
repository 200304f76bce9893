/*
 * layout_queue.c - smapd's side of the spool layout (see layout.h): its
 * directories opened once, listing, opening under the delivery lock,
 * moves, quarantine, and files of its own committed atomically.
 *
 * TRUST: nothing in the spool. Every name is opened relative to a
 * directory descriptor, with O_NOFOLLOW; files must be regular; new
 * files are made with O_EXCL; a move never replaces (renameat2
 * RENAME_NOREPLACE), so a planted symbolic or hard link is refused,
 * never followed or written through. Only queue ids are listed.
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
#include <sys/stat.h>

#include "layout.h"
#include "layout_queue.h"

static const char *const names[L_NDIRS] = {
	[L_TMP] = LAYOUT_INCOMING "/" LAYOUT_TMP,
	[L_NEW] = LAYOUT_INCOMING "/" LAYOUT_NEW,
	[L_QUEUE] = "queue", [L_STATE] = "state", [L_HOLD] = "hold",
	[L_QUAR] = "quarantine",
};

/* layout_name - the directory's path below spool_directory */
const char *
layout_name(enum ldir w)
{
	return names[w];
}

/* layout_open - every directory, relative to the current one */
int
layout_open(struct spooldirs *d, char *why, size_t len)
{
	int i, rc = 0;

	for (i = 0; i < L_NDIRS; i++) {
		d->fd[i] = open(names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		d->err[i] = errno;
		if (d->fd[i] < 0 && rc == 0) {
			snprintf(why, len, "%s: %s", names[i], errno == ELOOP ||
			    errno == ENOTDIR ? "not a directory (a symbolic "
			    "link?)" : strerror(errno));
			rc = -1;
		}
	}
	return rc;
}

/* layout_close - release the descriptors */
void
layout_close(struct spooldirs *d)
{
	int i;

	for (i = 0; i < L_NDIRS; i++) {
		if (d->fd[i] >= 0)
			(void)close(d->fd[i]);
		d->fd[i] = -1;
	}
}

/* by_name - qsort order of queue ids: oldest first */
static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* push - append a copy of name; -1 when out of memory */
static int
push(char ***v, size_t *n, size_t *cap, const char *name)
{
	char **nv;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		if ((nv = realloc(*v, *cap * sizeof(**v))) == NULL)
			return -1;
		*v = nv;
	}
	if (((*v)[*n] = strdup(name)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* layout_scan - names in w that pass keep(), at most max looked at */
int
layout_scan(const struct spooldirs *d, enum ldir w, size_t max,
    int (*keep)(const char *), char ***v, size_t *n)
{
	struct dirent *de;
	size_t cap = 0, seen = 0;
	DIR *dir;
	int fd;

	*v = NULL;
	*n = 0;
	if (d->fd[w] < 0)
		return (errno = d->err[w]), -1;
	fd = openat(d->fd[w], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL && seen++ < max)
		if (keep(de->d_name) && push(v, n, &cap, de->d_name) < 0)
			break;
	closedir(dir);
	if (*n > 0)
		qsort(*v, *n, sizeof(**v), by_name);
	return 0;
}

/* layout_any_name - every entry but . and .. */
int
layout_any_name(const char *name)
{
	return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* layout_list - the queue ids in w, sorted */
int
layout_list(const struct spooldirs *d, enum ldir w, size_t max, char ***v,
    size_t *n)
{
	return layout_scan(d, w, max, qid_ok, v, n);
}

/* layout_free_list - what layout_scan returned */
void
layout_free_list(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* layout_open_file - w/name, read-only, a regular file, never a link */
int
layout_open_file(const struct spooldirs *d, enum ldir w, const char *name)
{
	struct stat st;
	int fd;

	if (d->fd[w] < 0)
		return (errno = d->err[w]), -1;
	fd = openat(d->fd[w], name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

/* layout_still_named - is fd still w/name, a file with one link? */
int
layout_still_named(const struct spooldirs *d, enum ldir w, int fd,
    const char *name)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && fstatat(d->fd[w], name, &b,
	    AT_SYMLINK_NOFOLLOW) == 0 && a.st_nlink == 1 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* layout_lock - w/id under the delivery lock, still named */
int
layout_lock(const struct spooldirs *d, enum ldir w, const char *id)
{
	int fd = layout_open_file(d, w, id);

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		(void)close(fd);
		errno = EWOULDBLOCK;
		return -1;
	}
	if (!layout_still_named(d, w, fd, id)) {
		struct stat st;

		errno = fstat(fd, &st) == 0 && st.st_nlink > 1 ? EMLINK : ENOENT;
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* layout_rename - w1/name to w2/name, never replacing; both fsync'd */
int
layout_rename(const struct spooldirs *d, enum ldir w1, enum ldir w2,
    const char *name)
{
	if (layout_move(d->fd[w1], name, d->fd[w2], name) < 0)
		return -1;
	if (layout_sync(d->fd[w2]) < 0 || layout_sync(d->fd[w1]) < 0)
		return -1;
	return 0;
}

/* free_name - is neither name nor name.why taken in quarantine/? */
static int
free_name(const struct spooldirs *d, const char *name)
{
	char why[80];
	struct stat st;

	snprintf(why, sizeof(why), "%s.why", name);
	return fstatat(d->fd[L_QUAR], name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT && fstatat(d->fd[L_QUAR], why, &st,
	    AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

/* quarantine_name - a name for the file in quarantine/ that nothing
 * there has: its id, else X<time><pid>, with ".N" until it is free */
static int
quarantine_name(const struct spooldirs *d, const char *name, char *out,
    size_t len)
{
	static unsigned counter;
	char base[64];
	int i;

	if (qid_ok(name))
		snprintf(base, sizeof(base), "%s", name);
	else
		snprintf(base, sizeof(base), "X%llX%lX%X", (long long)time(NULL),
		    (unsigned long)getpid(), counter++);
	for (i = 0; i < 1000; i++) {
		if (i == 0)
			snprintf(out, len, "%s", base);
		else
			snprintf(out, len, "%s.%d", base, i);
		if (free_name(d, out))
			return 0;
	}
	errno = EEXIST;
	return -1;
}

/* layout_write_why - w/NAME.why, new, with the reason */
int
layout_write_why(const struct spooldirs *d, enum ldir w, const char *name,
    const char *why)
{
	char path[80];
	size_t n = strlen(why);
	int fd, rc;

	snprintf(path, sizeof(path), "%s.why", name);
	fd = openat(d->fd[w], path, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	rc = write(fd, why, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
	    fsync(fd) == 0 ? 0 : -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* layout_quarantine - w/name into quarantine/ under a free name, never
 * replacing anything, with the reason beside it */
int
layout_quarantine(const struct spooldirs *d, enum ldir w, const char *name,
    const char *why, char *out, size_t len)
{
	int tries;

	for (tries = 0; tries < 5; tries++) {
		if (quarantine_name(d, name, out, len) < 0)
			return -1;
		if (layout_move(d->fd[w], name, d->fd[L_QUAR], out) == 0)
			break;
		if (errno != EEXIST)
			return -1;
	}
	if (tries == 5)
		return -1;
	if (layout_write_why(d, L_QUAR, out, why) < 0 ||
	    layout_sync(d->fd[L_QUAR]) < 0)
		return 1;	/* moved, but the reason is only in the log */
	(void)layout_sync(d->fd[w]);
	return 0;
}

/* tmp_name - "ID.tmp": never a queue id, so never listed */
static void
tmp_name(char *buf, size_t len, const char *id)
{
	snprintf(buf, len, "%.*s.tmp", SPOOL_ID_MAX, id);
}

/* layout_create_own - w/ID.tmp, new, for a file of smapd's own; a
 * leftover of a crash is removed first (unlinkat never follows) */
int
layout_create_own(const struct spooldirs *d, enum ldir w, const char *id)
{
	char path[64];

	tmp_name(path, sizeof(path), id);
	(void)unlinkat(d->fd[w], path, 0);
	return openat(d->fd[w], path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
}

/* layout_publish - fsync w/ID.tmp and give it its name, then fsync w
 * (neither with PUB_NOSYNC): replacing an older version (PUB_REPLACE,
 * state/) or never */
int
layout_publish(const struct spooldirs *d, enum ldir w, int fd, const char *id,
    int flags)
{
	char path[64];
	int rc;

	tmp_name(path, sizeof(path), id);
	rc = flags & PUB_NOSYNC ? 0 : fsync(fd);
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0)
		rc = flags & PUB_REPLACE ? renameat(d->fd[w], path, d->fd[w], id) :
		    layout_move(d->fd[w], path, d->fd[w], id);
	if (rc == 0 && !(flags & PUB_NOSYNC))
		rc = layout_sync(d->fd[w]);
	if (rc < 0) {
		int saved = errno;

		(void)unlinkat(d->fd[w], path, 0);
		errno = saved;
	}
	return rc;
}

/* layout_rename_own - w/FROM.tmp renamed w/TO.tmp, replacing a stale
 * one: 0, or -1 with errno */
int
layout_rename_own(const struct spooldirs *d, enum ldir w, const char *from,
    const char *to)
{
	char a[64], b[64];

	tmp_name(a, sizeof(a), from);
	tmp_name(b, sizeof(b), to);
	return renameat(d->fd[w], a, d->fd[w], b);
}

/* layout_discard - close and remove w/ID.tmp */
void
layout_discard(const struct spooldirs *d, enum ldir w, int fd, const char *id)
{
	char path[64];

	if (fd >= 0)
		(void)close(fd);
	tmp_name(path, sizeof(path), id);
	(void)unlinkat(d->fd[w], path, 0);
}

/* layout_sync_files - see layout_queue.h. The writeback of all of them
 * is started before any is waited for, so that they go to the disk
 * together. The wait on each file reports its own write error on any
 * kernel; syncfs reports writeback errors of the whole file system
 * (from Linux 5.8; a failed journal commit or cache flush from 5.17),
 * so when it fails, each file is fsync'd for its own answer. */
int
layout_sync_files(int dfd, const int *fd, int *err, size_t n)
{
	size_t i;
	int saved;

	for (i = 0; i < n; i++)
		(void)sync_file_range(fd[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++)
		err[i] = sync_file_range(fd[i], 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
		    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0 ?
		    errno : 0;
	if (syncfs(dfd) == 0)
		return 0;
	saved = errno;
	for (i = 0; i < n; i++)
		if (err[i] == 0 && fsync(fd[i]) < 0)
			err[i] = errno;
	errno = saved;
	return -1;
}
