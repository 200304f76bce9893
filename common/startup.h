/*
 * startup.h - what smap, smapd and smapq do before their work: read the
 * configuration, open the log, check what they will use, and, when
 * something is wrong, say so where it is seen: on standard error, in
 * the log (syslog when the log file is what failed), and, for smap, to
 * the waiting client as 421 4.3.0, so that it retries instead of
 * seeing a connection drop.
 */
#ifndef SMAP_STARTUP_H
#define SMAP_STARTUP_H

#include "conf.h"
#include "layout_check.h"

#define EX_USAGE 64
#define EX_OSERR 71
#define EX_CONFIG 78

struct startup {
	const char *prog;	/* "smap", "smapd", "smapq": for stderr */
	const char *ident;	/* "smap/smtpd", "smap/qmgr": for the log */
	const char *conf;	/* the configuration file */
	int client;		/* a client waits on fd 1: it gets a 421 */
	int logging;		/* the log is open */
	int problems;		/* counted by startup_say() */
	int warn;		/* startup_say() says "warning:"; startup_as()
				 * then adds none to problems */
};

/* Say why the program cannot go on (stderr, log, 421), then exit. */
void startup_fail(struct startup *st, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* Read the configuration into cf, or fail with every error (78). */
void startup_load(struct startup *st, struct conf *cf);

/* Open the log, or fail (78) saying why on stderr and in syslog. */
void startup_log(struct startup *st, const struct conf *cf);

/* A report callback (for layout_check() and friends; ctx is the struct
 * startup): one problem on stderr, and in the log once it is open. */
void startup_say(void *ctx, const char *line);

/* -t's common part: the configuration's warnings, the users and the
 * spool's owners and modes; returns the number of problems. */
int startup_check(struct startup *st, const struct conf *cf,
    enum layout_side side);

/* Run fn(cf, st) in a child that is user (uid, gid, that group only),
 * as the program will run, so that "can it read this file" is asked of
 * the right user; when not root, in this process. The child's problems
 * reach stderr (and count) as the parent's would. Returns the count. */
int startup_as(struct startup *st, const struct conf *cf, const char *user,
    void (*fn)(struct startup *, const struct conf *));

/* Is path (for key) a file this process may open for reading? 0, or 1
 * after saying why in plain words. */
int startup_readable(struct startup *st, const char *key, const char *path);

#endif
