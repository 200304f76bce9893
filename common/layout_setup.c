/*
 * layout_setup.c - smapd -P: the table of layout_check.c made true, and a
 * spool of the old layout moved into incoming/; see layout_setup.h.
 *
 * TRUST: the configuration names the spool and the users. Nothing found
 * below the spool is trusted: a symbolic link where a directory belongs
 * is refused, files moved from an old layout are renamed, never copied,
 * and changed with fchownat(AT_SYMLINK_NOFOLLOW).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "bounds.h"
#include "layout.h"
#include "layout_setup.h"


/* make_row - mkdir, chown, chmod one directory; 0 or -1 after saying why */
static int
make_row(const char *spool, const struct layout_row *r,
    const struct layout_ids *ids,
    void (*say)(void *, const char *), void *ctx)
{
	char path[4200];
	struct stat st;

	layout_row_path(path, sizeof(path), spool, r);
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT || mkdir(path, 0700) < 0 ||
		    lstat(path, &st) < 0) {
			layout_say(say, ctx, "%s: %s", path, strerror(errno));
			return -1;
		}
		layout_say(say, ctx, "created %s", path);
	}
	if (!S_ISDIR(st.st_mode)) {
		layout_say(say, ctx, "%s: not a directory; move it away first", path);
		return -1;
	}
	if (lchown(path, layout_uid(ids, r->owner), layout_gid(ids, r->group)) < 0 ||
	    chmod(path, r->mode) < 0) {
		layout_say(say, ctx, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* own_file - one regular file (opened without following a link, judged
 * by its descriptor) given to uid:gid with the mode given */
static void
own_file(int dfd, const char *name, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1)
		(void)!(fchown(fd, uid, gid) || fchmod(fd, mode));
	(void)close(fd);
}

/* own_files - every file in dir: an old layout had one user for both
 * programs; incoming/new's are smap's, 0644 (smapd reads them as
 * "other": the directory is its own), the rest smapd's, 0600 */
static void
own_files(const char *dir, uid_t uid, gid_t gid, mode_t mode)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	long seen = 0;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL && seen++ < SCAN_MAX)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			own_file(dirfd(d), de->d_name, uid, gid, mode);
	closedir(d);
}

/* migrate - move what spool/OLD holds into incoming/OLD, remove spool/OLD */
static int
migrate(const char *spool, const char *old, const struct layout_ids *ids,
    void (*say)(void *, const char *), void *ctx)
{
	char from[4200], to[4200];
	struct dirent *de;
	long moved = 0, seen = 0;
	int bad = 0, dfd;
	DIR *d;

	snprintf(from, sizeof(from), "%s/%s", spool, old);
	snprintf(to, sizeof(to), "%s/%s/%s", spool, LAYOUT_INCOMING, old);
	if ((d = opendir(from)) == NULL)
		return errno == ENOENT ? 0 : (layout_say(say, ctx, "%s: %s", from,
		    strerror(errno)), 1);
	if ((dfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		closedir(d);
		layout_say(say, ctx, "%s: %s", to, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)) != NULL && seen++ < SCAN_MAX) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (layout_move(dirfd(d), de->d_name, dfd, de->d_name) == 0) {
			moved++;
			continue;
		}
		layout_say(say, ctx, "cannot move %s/%s to %s: %s", from, de->d_name,
		    to, strerror(errno));
		bad++;
	}
	(void)fsync(dfd);
	close(dfd);
	closedir(d);
	own_files(to, ids->smap_uid, ids->smap_gid, 0644);
	if (moved > 0)
		layout_say(say, ctx, "moved %ld entries from %s to %s", moved, from, to);
	if (bad == 0 && rmdir(from) == 0)
		layout_say(say, ctx, "removed %s (the old layout)", from);
	return bad;
}

/* layout_prepare - the table made true, the old layout moved */
int
layout_prepare(const char *spool, const struct layout_ids *ids,
    void (*say)(void *, const char *), void *ctx)
{
	char dir[4200];
	int bad = 0;
	size_t i, n;
	const struct layout_row *rows = layout_rows(&n);

	for (i = 0; i < n; i++)
		bad += make_row(spool, &rows[i], ids, say, ctx) < 0;
	if (bad)
		return bad;
	bad += migrate(spool, LAYOUT_NEW, ids, say, ctx);
	bad += migrate(spool, LAYOUT_TMP, ids, say, ctx);
	for (i = 0; i < n; i++) {	/* smapd's directories: its files */
		if (rows[i].side != SIDE_ALL)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", spool, rows[i].path);
		own_files(dir, ids->smapd_uid, ids->smapd_gid, 0600);
	}
	return bad;
}
