/*
 * state.h - per-message delivery progress, kept beside the queue file.
 *
 * state/ID records, for every recipient that is no longer simply
 * pending, what happened to it, plus the attempt count and the next
 * retry time. It is replaced atomically (write, fsync, rename, fsync
 * the directory) after every delivery attempt, so a retry never goes
 * to a recipient that already accepted the message.
 */
#ifndef SMAPD_STATE_H
#define SMAPD_STATE_H

#include <stddef.h>
#include "layout_queue.h"
#include "transport.h"

struct state {
	long long attempts;
	long long next;		/* earliest next attempt, epoch seconds */
	long long warned;	/* a delay warning was sent */
	size_t n;		/* recipients */
	struct rcpt_result *r;	/* n results; R_PENDING: not tried or deferred */
};

/* Read state/ID for a message of n recipients; a missing file means a
 * fresh message. Returns 0, or -1 with a reason (a damaged file). */
int state_load(const struct spooldirs *d, const char *id, size_t n,
    struct state *st, char *why, size_t whylen);

/* The longest head and recipient line write_state() makes. */
#define STATE_HEAD_MAX 128
#define STATE_LINE_MAX 900	/* rcpt line and relay line */

/* Make state/ID.tmp, with room for the state of n recipients, before an
 * attempt: fd, or -1 with errno (then the attempt must not be made). */
int state_reserve(const struct spooldirs *d, const char *id, size_t n);

/* Remove an unused reservation (*rfd >= 0), or keep it as the spare
 * that the next state_reserve() renames (state_spare); sets *rfd to -1. */
void state_unreserve(const struct spooldirs *d, const char *id, int *rfd);

/* Whether an unused reservation is kept for the next message (a
 * delivery process of a run, for its run): the spare kept so far removed
 * either way. */
void state_spare(const struct spooldirs *d, int on);

/* Write state/ID durably: into the reserved file when rfd points to
 * one (it is used up: *rfd becomes -1), else a new one. Returns 0 or -1
 * with errno. */
int state_save(const struct spooldirs *d, const char *id,
    const struct state *st, int *rfd);

/* Remove state/ID (the message is gone). */
void state_remove(const struct spooldirs *d, const char *id);

void state_free(struct state *st);

#endif
