/*
 * layout.c - queue ids, and the writer's side of the spool: create in
 * tmp/, commit into new/ (see layout.h). This is the part of the
 * layout smap links.
 *
 * TRUST: ids come from qid_make() or were checked with qid_ok(); paths
 * are relative to the current directory (smap's chroot). Every file is
 * created with O_EXCL and O_NOFOLLOW, and nothing is ever replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "layout.h"

#ifndef RENAME_NOREPLACE	/* musl before 1.2.5 has no renameat2() */
#define renameat2(a, b, c, d, flags) ((int)syscall(SYS_renameat2, a, b, c, d, flags))
#define RENAME_NOREPLACE 1
#endif

/* qid_make - queue id from the clock and the pid */
void
qid_make(char *id, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, len, "%08llX%05lX%lX", (unsigned long long)ts.tv_sec,
	    (unsigned long)(ts.tv_nsec / 1000), (unsigned long)getpid());
}

/* qid_ok - 1..SPOOL_ID_MAX upper-case hex digits */
int
qid_ok(const char *s)
{
	size_t n = strspn(s, "0123456789ABCDEF");

	return n > 0 && n <= SPOOL_ID_MAX && s[n] == '\0';
}

/* layout_sync - fsync a directory */
int
layout_sync(int dfd)
{
	return fsync(dfd);
}

/* layout_move - rename without replacing; link+unlink where unsupported */
int
layout_move(int dfd1, const char *from, int dfd2, const char *to)
{
	if (renameat2(dfd1, from, dfd2, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(dfd1, from, dfd2, to, 0) < 0)
		return -1;
	return unlinkat(dfd1, from, 0);
}

/* path - "dir/id" into buf; -1 when it does not fit */
static int
path(char *buf, size_t len, const char *dir, const char *id)
{
	int n = snprintf(buf, len, "%s/%s", dir, id);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* layout_create - exclusive new file in tmp/ */
int
layout_create(char *id, size_t idlen)
{
	char p[64];
	int fd, tries;

	for (tries = 0; tries < 5; tries++) {
		if (tries > 0 || id[0] == '\0')
			qid_make(id, idlen);
		if (path(p, sizeof(p), LAYOUT_TMP, id) < 0)
			return (errno = ENAMETOOLONG, -1);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* sync_new - fsync new/ by name */
static int
sync_new(void)
{
	int fd = open(LAYOUT_NEW, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = layout_sync(fd);
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* untake - new/id could not be made durable: take it back, the client
 * retries; unless smapd has it already, and made it durable itself. */
static int
untake(const char *to)
{
	int saved = errno;

	if (unlink(to) < 0 && errno == ENOENT)
		return 0;
	errno = saved;
	return -1;
}

/* layout_sync_parse - spool_fsync's word */
int
layout_sync_parse(const char *value)
{
	if (strcmp(value, "file+directory") == 0)
		return LAYOUT_SYNC_DIR;
	return strcmp(value, "file") == 0 ? LAYOUT_SYNC_FILE : -1;
}

/* layout_commit_as - make the file durable in new/ */
int
layout_commit_as(int fd, const char *id, int how)
{
	char from[64], to[64];
	int rc;

	if (path(from, sizeof(from), LAYOUT_TMP, id) < 0 ||
	    path(to, sizeof(to), LAYOUT_NEW, id) < 0) {
		(void)close(fd);
		return (errno = ENAMETOOLONG, -1);
	}
	if (how == LAYOUT_SYNC_FILE) {	/* whole, then named, then durable */
		if (fchmod(fd, 0644) < 0 ||
		    layout_move(AT_FDCWD, from, AT_FDCWD, to) < 0) {
			rc = errno;
			(void)close(fd);
			return (errno = rc, -1);
		}
		rc = fsync(fd);
		if (close(fd) < 0)
			rc = -1;
		return rc < 0 ? untake(to) : 0;
	}
	rc = fchmod(fd, 0644) < 0 || fsync(fd) < 0 ? -1 : 0;
	if (close(fd) < 0)
		rc = -1;
	if (rc < 0 || layout_move(AT_FDCWD, from, AT_FDCWD, to) < 0)
		return -1;
	return sync_new() < 0 ? untake(to) : 0;
}

/* layout_commit - durable in new/, file and directory fsynced */
int
layout_commit(int fd, const char *id)
{
	return layout_commit_as(fd, id, LAYOUT_SYNC_DIR);
}

/* layout_abort - discard a file being written */
void
layout_abort(int fd, const char *id)
{
	char p[64];

	if (fd >= 0)
		(void)close(fd);
	if (id[0] && path(p, sizeof(p), LAYOUT_TMP, id) == 0)
		(void)unlink(p);
}
