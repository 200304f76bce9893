/*
 * layout_fsync.c - may spool_fsync be "file" here? (see layout.h, enum
 * layout_sync)
 *
 * With spool_fsync = file, smap renames a whole file into new/ and then
 * fsyncs the file once, relying on the file system to make the rename
 * durable with it, as Postfix relies on it for its queue files ("A file
 * is not lost after fsync() for that file (not its parent directory)
 * returns successfully ... even when that file is later renamed to a
 * near-by directory": www.postfix.org/features.html). fsync(2) itself
 * promises no such thing. Where it holds:
 *   ext3, ext4 with a journal, data=ordered or data=journal: the rename
 *     and the file's inode change (its ctime) are one journal
 *     transaction, and fsync commits the inode's last transaction
 *     (i_sync_tid); jbd2 commits transactions in order.
 *   XFS: fsync forces the log up to the inode's last change, which holds
 *     the rename (xfs_rename logs the inode it moves).
 *   btrfs: fsync logs a renamed inode with its new name (xfstests
 *     generic/322, "fsync rename test", run on ext4, XFS and btrfs).
 * Where it does not, or is not known to: ext2 and ext4 without a
 * journal (fsync writes the file, not the directory), ext4 mounted
 * data=writeback (the name holds, but a crash before the fsync may leave
 * stale blocks inside the renamed file), tmpfs, NFS, vfat, ZFS and
 * anything else. smap -t and each session check the file system of
 * new/ (statfs, then for ext* /proc/fs/ext4/DEV/options) and refuse
 * "file" on any other.
 *
 * TRUST: the configuration names the spool; /proc and /sys are the
 * kernel's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "layout.h"
#include "layout_check.h"

/* ext_options - /proc/fs/ext4/DEV/options of the ext* file system on
 * device dev, one option a line; 0 or -1 */
static int
ext_options(dev_t dev, char *opts, size_t len)
{
	char link[1024], path[1100];
	const char *name;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(dev),
	    minor(dev));
	if ((n = readlink(path, link, sizeof(link) - 1)) <= 0)
		return -1;
	link[n] = '\0';
	name = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	snprintf(path, sizeof(path), "/proc/fs/ext4/%s/options", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	n = read(fd, opts + 1, len - 2);
	(void)close(fd);
	if (n <= 0)
		return -1;
	opts[0] = '\n';		/* every option between newlines */
	opts[n + 1] = '\0';
	return 0;
}

/* ext_why - NULL when the ext* file system is journaled with data=ordered
 * or data=journal, else why not */
static const char *
ext_why(const char *dir, dev_t dev, char *why, size_t len)
{
	char opts[4096];

	if (ext_options(dev, opts, sizeof(opts)) < 0)
		snprintf(why, len, "%s: ext2/3/4, but its mount options cannot "
		    "be read (/proc/fs/ext4): is it journaled?", dir);
	else if (strstr(opts, "\ndata=ordered\n") != NULL ||
	    strstr(opts, "\ndata=journal\n") != NULL)
		return NULL;
	else if (strstr(opts, "\ndata=writeback\n") != NULL)
		snprintf(why, len, "%s: ext4 mounted data=writeback: a crash "
		    "before the fsync can leave stale blocks in a renamed file",
		    dir);
	else
		snprintf(why, len, "%s: ext2, or ext4 without a journal: the "
		    "file's fsync does not make its new name durable", dir);
	return why;
}

/* layout_sync_fs - see layout.h */
const char *
layout_sync_fs(const char *dir, char *why, size_t len)
{
	struct statfs fs;
	struct stat st;

	if (statfs(dir, &fs) < 0 || stat(dir, &st) < 0) {
		snprintf(why, len, "%s: %s", dir, strerror(errno));
		return why;
	}
	if (fs.f_type == XFS_SUPER_MAGIC || fs.f_type == BTRFS_SUPER_MAGIC)
		return NULL;
	if (fs.f_type == EXT4_SUPER_MAGIC)
		return ext_why(dir, st.st_dev, why, len);
	snprintf(why, len, "%s: a file system (statfs type 0x%llx) not known "
	    "to make a renamed file's name durable with the file's fsync "
	    "(ext3 or ext4 with data=ordered or data=journal, XFS and btrfs "
	    "do)", dir, (unsigned long long)fs.f_type);
	return why;
}

/* check_fs - "file": is new/ on a file system where it holds? 0 or 1 */
static int
check_fs(const struct conf *cf, void (*say)(void *, const char *), void *ctx)
{
	char dir[4200], why[4600], line[4800];

	snprintf(dir, sizeof(dir), "%s/%s/%s", cf->spool_directory,
	    LAYOUT_INCOMING, LAYOUT_NEW);
	if (layout_sync_fs(dir, why, sizeof(why)) == NULL)
		return 0;
	snprintf(line, sizeof(line), "spool_fsync = file: %s; keep "
	    "file+directory there", why);
	say(ctx, line);
	return 1;
}

/* layout_check_fsync - spool_fsync's value, and the file system when it
 * is "file": the number of problems, each passed to say() (the default
 * costs a session nothing: no stack for check_fs) */
int
layout_check_fsync(const struct conf *cf, void (*say)(void *, const char *),
    void *ctx)
{
	char line[200];
	int how = layout_sync_parse(cf->spool_fsync);

	if (how == LAYOUT_SYNC_FILE)
		return check_fs(cf, say, ctx);
	if (how == LAYOUT_SYNC_DIR)
		return 0;
	snprintf(line, sizeof(line), "spool_fsync: \"%.40s\": expected "
	    "file+directory (the default) or file", cf->spool_fsync);
	say(ctx, line);
	return 1;
}
