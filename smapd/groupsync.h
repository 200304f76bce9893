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

#endif
