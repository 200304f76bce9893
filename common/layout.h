/*
 * layout.h - the spool's directories, queue ids and the moves between
 * them. This module alone knows names and paths below spool_directory,
 * as Postfix's mail_queue.c does; everybody else asks it.
 *
 *   spool_directory/          root           0755
 *     incoming/               root           0755  smap's chroot: only
 *       tmp/                  smapd:smap     1770    what smap writes
 *       new/                  smapd:smap     1770
 *       anvil/                smap           0700    and its limits table
 *     queue/ state/ hold/     smapd          0700  smapd's, out of
 *     quarantine/                                  smap's sight
 * (smap = mail_owner, smapd = smapd_user, never the same user; the
 * table, its checks and smapd -P are in layout_setup.c.)
 *
 * smap creates a file in tmp/ (mode 0600), writes and fsyncs it, makes it
 * 0644 and renames it into new/ without replacing anything, then fsyncs
 * new/ (or, with spool_fsync = file, renames first and fsyncs the file
 * once: see enum layout_sync): only then does it answer 250. tmp/ and new/ are sticky and
 * smapd's, so smap (by their group) may add files and move its own, but
 * may not change the directories. smapd, their owner, reads what is in
 * new/, copies it into queue/ as a file of its own (smap may have kept a
 * descriptor), and works in its own directories relative to descriptors
 * opened once, never following a symbolic link (layout_queue.c).
 *
 * The writer side below (ids, create, commit) is all smap links; it
 * works relative to the current directory, which for smap is the
 * chroot. TRUST: callers pass ids that they made or checked.
 */
#ifndef SMAP_LAYOUT_H
#define SMAP_LAYOUT_H

#include <stddef.h>
#include <sys/types.h>
#include "bounds.h"

#define LAYOUT_INCOMING "incoming"	/* smap's chroot */
#define LAYOUT_TMP "tmp"		/* below incoming/ */
#define LAYOUT_NEW "new"
#define LAYOUT_ANVIL "anvil"		/* below incoming/: smap's alone */
#define ANVIL_TABLE LAYOUT_ANVIL "/clients"	/* smap/anvil.c's counts */
#define FLUSH_FILE ".flush"	/* queue/.flush (smapq flush): try everything now */
#define RUN_FILE ".run"		/* queue/.run: a full queue run now */

/* The directories, for the descriptors of layout_queue.c. */
enum ldir { L_TMP, L_NEW, L_QUEUE, L_STATE, L_HOLD, L_QUAR, L_NDIRS };

/* A new queue id from the clock and the process id: hex, unique among
 * the processes of one host as long as the clock does not go back. */
void qid_make(char *id, size_t len);

/* Is s a queue id: 1..SPOOL_ID_MAX upper-case hex digits? */
int qid_ok(const char *s);

/* fsync a directory, by descriptor. 0 or -1 with errno. */
int layout_sync(int dfd);

/* Rename dfd1/from to dfd2/to, never replacing anything (link and
 * unlink where renameat2 RENAME_NOREPLACE is not supported). */
int layout_move(int dfd1, const char *from, int dfd2, const char *to);

/* Create tmp/id (O_EXCL, O_NOFOLLOW, mode 0600) with the id given, or
 * a fresh one when it is empty or taken (a few tries). fd or -1. */
int layout_create(char *id, size_t idlen);

/* How a commit is made durable (spool_fsync):
 *   LAYOUT_SYNC_DIR   "file+directory", the default: fsync the file in
 *                     tmp/, rename it into new/, fsync new/: durable on
 *                     any file system that keeps fsync's promise.
 *   LAYOUT_SYNC_FILE  "file", Postfix's level: rename into new/, then
 *                     one fsync of the file, which on a journaling file
 *                     system that logs the rename with the file (ext3
 *                     and ext4 with data=ordered or data=journal, XFS,
 *                     btrfs: layout_sync_fs()) also makes the new name
 *                     durable. The file is whole when it appears in new/;
 *                     only a crash before the fsync can leave a prefix
 *                     of it there, and no prefix parses (spool.c's size
 *                     record): smapd quarantines it, never delivers it. */
enum layout_sync { LAYOUT_SYNC_DIR, LAYOUT_SYNC_FILE };

/* spool_fsync's value as an enum layout_sync, -1 when it is neither. */
int layout_sync_parse(const char *value);

/* Is dir (absolute) on a file system where LAYOUT_SYNC_FILE holds?
 * NULL when it is, else why not (in why). Reads /proc and /sys. */
const char *layout_sync_fs(const char *dir, char *why, size_t len);

/* Make the file 0644 and durable in new/id, never replacing anything, as
 * how says (anything but LAYOUT_SYNC_FILE: LAYOUT_SYNC_DIR). fd is
 * closed in every case. 0, or -1 with errno; then nothing is in new/
 * and the caller calls layout_abort(-1, id). */
int layout_commit_as(int fd, const char *id, int how);

/* layout_commit_as(fd, id, LAYOUT_SYNC_DIR) */
int layout_commit(int fd, const char *id);

/* Close fd (if >= 0) and remove tmp/id. */
void layout_abort(int fd, const char *id);

#endif
