/*
 * groupsync.h - group commit among the processes of one queue run: a
 * flush that began after a process's change covers it (groupsync.c).
 */
#ifndef SMAPD_GROUPSYNC_H
#define SMAPD_GROUPSYNC_H

enum gs_kind { GS_JOURNAL, GS_QUEUE, GS_KINDS };

/* The run's parent, before it forks: the shared page. Without it (mmap
 * failed) every flush is a process's own. */
void groupsync_begin(void);

/* The run's parent, after its workers are gone: back to flushing alone. */
void groupsync_end(void);

/* fdatasync (GS_JOURNAL) or fsync (GS_QUEUE) of fd, made after this
 * process's change to it, or nothing when a flush of the same file
 * that began after the change has succeeded: 0, or -1 with errno. Outside
 * a run (no groupsync_begin) simply the flush. */
int groupsync(enum gs_kind k, int fd);

/* As groupsync(), in a process that groupsync_deferring(1) made patient:
 * the flush made now only when no other process is flushing that lane,
 * else left to a later flush of the lane; groupsync_settle(), and
 * the process's next groupsync() of any lane, wait until it is covered.
 * For a change that nothing this process does next depends on: a
 * delivered message's removal. 0, or -1 with errno (a flush made now
 * failed). Otherwise, and outside a run, simply groupsync(). */
int groupsync_later(enum gs_kind k, int fd);

/* Until a flush covers every change groupsync_later() left: 0, or -1
 * with errno. groupsync_end() settles too. */
int groupsync_settle(void);

/* Whether groupsync_later() may leave a flush to others (a worker of
 * the run, which settles before it waits for work and before its end). */
void groupsync_deferring(int on);

#endif
