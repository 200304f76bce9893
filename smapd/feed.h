/*
 * feed.h - the guard that stands between smapd and the sendmail
 * command, so that the command reads end of file only after the whole
 * message (feed.c says why and how).
 */
#ifndef SMAPD_FEED_H
#define SMAPD_FEED_H

/*
 * Run in a freshly forked child of smapd whose descriptor 0 is the
 * message pipe (smapd writes the message there) and 1 and 2 the output
 * pipe, nothing else open. Becomes a session and process group leader,
 * starts execve(path, argv, minimal environment) as its own child with
 * only 0 (a pipe from the guard), 1 and 2, and passes it exactly len
 * bytes. It ends as the command ended (same exit status, or the same
 * signal), with one exception: a command that exits 0 without reading
 * the whole message makes it print "4.3.0 Command exited before reading
 * the whole message" and exit 75. When the message is short, long, late
 * (deadline: CLOCK_MONOTONIC milliseconds) or the guard gets a signal
 * that would end it, it kills its process group, the command first,
 * with SIGKILL: the command never reads end of file then.
 */
void feed_guard(const char *path, char **argv, long long len,
    long long deadline) __attribute__((noreturn));

#endif
