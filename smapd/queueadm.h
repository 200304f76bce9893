/*
 * queueadm.h - what smapq(8) does to smapd's queue: list, show, hold,
 * release, delete, flush.
 *
 * Every function works in the spool directories opened into a->dirs
 * (layout_queue.h), as smapd_user. Queue ids must have passed qid_ok()
 * before they reach a function here. Each function returns 0, or 1
 * when a message was not found, was busy or could not be handled (the
 * reason is one line on a->err).
 */
#ifndef SMAPD_QUEUEADM_H
#define SMAPD_QUEUEADM_H

#include <stdio.h>
#include "layout_queue.h"
#include "route.h"
#include "conf.h"

struct qadm {
	FILE *out;		/* listings */
	FILE *err;		/* one line per complaint */
	int json;		/* list: one JSON object per message */
	struct spooldirs dirs;
	const struct routes *routes;	/* each recipient's next hop; NULL:
					 * not known (list and -j show it
					 * when transport_maps is set) */
};

/* mailq-style listing (or JSON lines) of new/, queue/ and hold/. */
int qadm_list(const struct qadm *a);

/* Envelope, delivery state (each recipient's next hop, and the relay
 * that last answered for it) and message headers of one message. */
int qadm_show(const struct qadm *a, const char *id);

/* queue/ID to hold/ID, under smapd's delivery lock. */
int qadm_hold(const struct qadm *a, const char *id);

/* hold/ID back to queue/ID, due at once. */
int qadm_release(const struct qadm *a, const char *id);

/* Remove queue/ID (or hold/ID) and state/ID, under the lock. */
int qadm_delete(const struct qadm *a, const char *id);

/* Every message due now; then queue/.flush wakes a running smapd. */
int qadm_flush(const struct qadm *a);

/* What quarantine/ holds: name, size, when, reason (or JSON lines). */
int qadm_quarantine(const struct qadm *a);

/* As root, become smapd_user; then into spool_directory. 0, or
 * EX_OSERR said on stderr. */
int qadm_enter(const struct conf *cf);

/* s as a JSON string, quotes included, ASCII only. */
void qadm_json_string(FILE *fp, const char *s);

/* t formatted by strftime's fmt, in UTC (utc) or local time; the
 * number itself when it cannot be. Returns buf. */
const char *qadm_time(char *buf, size_t len, long long t, int utc,
    const char *fmt);

/* For queueadm_change.c: is there anything at w/id? Is state/id a
 * regular file? */
int qadm_exists(const struct qadm *a, enum ldir w, const char *id);
int qadm_state_exists(const struct qadm *a, const char *id);

/* For queueadm_change.c: say on a->err why id was not handled (err:
 * an errno value); returns 1. */
int qadm_fail(const struct qadm *a, const char *id, int err);

/* For queueadm_change.c: complain about a directory layout_list()
 * could not read (errno); 1, or 0 when it is missing (then empty). */
int qadm_unreadable(const struct qadm *a, const char *dir);

#endif
