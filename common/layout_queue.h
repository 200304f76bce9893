/*
 * layout_queue.h - smapd's and smapq's side of the spool layout: the
 * directories opened once, and every operation on them relative to
 * those descriptors, never following a link (see layout.h for the
 * layout, layout_queue.c for the rules). smap never links this.
 */
#ifndef SMAP_LAYOUT_QUEUE_H
#define SMAP_LAYOUT_QUEUE_H

#include <stddef.h>
#include "layout.h"

struct spooldirs {
	int fd[L_NDIRS];	/* -1: could not be opened, for err[] */
	int err[L_NDIRS];
};

/* Open every directory below the current one (spool_directory), with
 * O_DIRECTORY|O_NOFOLLOW. 0, or -1 with the first directory that could
 * not be opened and the cause in why; the others are open all the
 * same, and any use of a missing one fails with its errno. */
int layout_open(struct spooldirs *d, char *why, size_t len);
void layout_close(struct spooldirs *d);

/* The path of a directory below spool_directory, for messages. */
const char *layout_name(enum ldir w);

/* The names in w that keep() accepts (layout_list: the queue ids),
 * sorted, looking at no more than max entries; *v is malloc'd (free
 * with layout_free_list). 0, or -1 with errno when w cannot be read. */
int layout_scan(const struct spooldirs *d, enum ldir w, size_t max,
    int (*keep)(const char *), char ***v, size_t *n);
int layout_list(const struct spooldirs *d, enum ldir w, size_t max,
    char ***v, size_t *n);
void layout_free_list(char **v, size_t n);
/* A keep() for layout_scan(): every name but . and .. */
int layout_any_name(const char *name);

/* w/name read-only, O_NOFOLLOW|O_NONBLOCK, a regular file: fd, or -1
 * with errno (ELOOP: a symbolic link; EINVAL: not a regular file). */
int layout_open_file(const struct spooldirs *d, enum ldir w, const char *name);

/* Is the open fd still w/name, with one link? */
int layout_still_named(const struct spooldirs *d, enum ldir w, int fd,
    const char *name);

/* w/id opened as above under an exclusive, non-waiting flock (the
 * delivery lock) and checked to still name it: fd, or -1 with errno
 * ENOENT (gone), EWOULDBLOCK (being delivered), EMLINK (more than one
 * link), ELOOP or EINVAL. */
int layout_lock(const struct spooldirs *d, enum ldir w, const char *id);

/* Move w1/name to w2/name, never replacing; fsync both. 0 or -1. */
int layout_rename(const struct spooldirs *d, enum ldir w1, enum ldir w2,
    const char *name);

/* Move w/name into quarantine/ under a name nothing there has (its id,
 * else an X name; ".N" added until free), written into out, with why
 * in out.why (created with O_EXCL). 0; 1 when moved but the reason
 * could not be written; -1 with errno when not moved. */
int layout_quarantine(const struct spooldirs *d, enum ldir w,
    const char *name, const char *why, char *out, size_t len);

/* Write w/NAME.why (created with O_EXCL, never through a link) holding
 * why and a LF: 0, or -1 with errno. */
int layout_write_why(const struct spooldirs *d, enum ldir w,
    const char *name, const char *why);

/* A file of smapd's own in w, written as w/ID.tmp (never listed: not
 * a queue id) and then published as w/ID: replacing an older one
 * (PUB_REPLACE, state/) or never (queue/). create: fd or -1; publish:
 * fsync, close, rename, fsync w: 0 or -1 (then removed). With
 * PUB_NOSYNC neither is fsync'd: the caller has made the file durable
 * (layout_sync_files) and fsyncs w once for many. */
#define PUB_REPLACE 1
#define PUB_NOSYNC 2
int layout_create_own(const struct spooldirs *d, enum ldir w, const char *id);
int layout_publish(const struct spooldirs *d, enum ldir w, int fd,
    const char *id, int flags);
void layout_discard(const struct spooldirs *d, enum ldir w, int fd,
    const char *id);

/* w/FROM.tmp, one of ours, renamed w/TO.tmp: 0, or -1 with errno. */
int layout_rename_own(const struct spooldirs *d, enum ldir w,
    const char *from, const char *to);

/* Many new files made durable at once, with one flush of the disk
 * rather than one each: every fd's data written out and waited for
 * (sync_file_range: each file's error is its own, err[i], 0 when it is
 * durable), then syncfs(2) of dfd's file system for their inodes and
 * the disk's cache. 0; or -1 with syncfs's errno, when each file was
 * fsync'd instead, for an answer of its own in err[i] (the file
 * system's error may be anyone's). */
int layout_sync_files(int dfd, const int *fd, int *err, size_t n);

#endif
