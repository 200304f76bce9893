/*
 * trusted.c - open a file only root may change (see trusted.h);
 * loading a module from it is trusted_load.c's.
 *
 * TRUST: nothing about the path but that it is absolute. The file is
 * judged by its descriptor (fstat), so what is checked is what was
 * opened; the directories are judged by stat, so a link in the path is
 * judged by what it points to, and a directory another user may write
 * (one where the file could be swapped) is refused, unless it is root's
 * and sticky.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "trusted.h"

/* safe - owned by root or us, writable by no one else; a directory
 * also when it is root's and sticky (/tmp): then others may not rename
 * or remove what is in it, and what is in it is checked in turn */
static int
safe(const struct stat *st)
{
	if (S_ISDIR(st->st_mode) && st->st_uid == 0 && (st->st_mode & S_ISVTX))
		return 1;
	return (st->st_uid == 0 || st->st_uid == geteuid()) &&
	    (st->st_mode & 022) == 0;
}

/* dirs_safe - every directory above path; 0, or -1 with why */
static int
dirs_safe(const char *path, char *why, size_t len)
{
	char dir[4096];
	struct stat st;
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return snprintf(why, len, "%s: path too long", path), -1;
	while ((slash = strrchr(dir, '/')) != NULL) {
		slash[slash == dir] = '\0';	/* "/x" -> "/", "/a/b" -> "/a" */
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || !safe(&st)) {
			snprintf(why, len, "%s: directory %s may be changed by "
			    "someone other than root", path, dir);
			return -1;
		}
		if (slash == dir)
			break;
	}
	return 0;
}

/* trusted_open - the file, if only root (or we) can change it */
int
trusted_open(const char *path, char *why, size_t len)
{
	struct stat st;
	int fd;

	if (path[0] != '/')
		return snprintf(why, len, "%s: not an absolute path", path), -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !safe(&st)) {
		snprintf(why, len, "%s: not a file only root may change", path);
		(void)close(fd);
		return -1;
	}
	if (dirs_safe(path, why, len) < 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}
