/*
 * sweep.c - the expiry of every directory smapd fills (see sweep.h).
 *
 * Nothing here is delivered or read: a name is removed by its age, its
 * form and, for state/, by whether its message still exists. A state
 * file goes only when its message is in neither queue/ nor hold/ and
 * the file is a day old (the message was removed, which is the record,
 * and smapd was killed before the state went); a temporary state file
 * (a reservation, or a save cut short) goes as soon as its message is
 * gone, since only a delivery that holds the message's lock writes one;
 * a delivery process's spare reservation (state.c), named for a message
 * it has delivered, may go too: the process then makes a new one.
 *
 * TRUST: the names are smapd's own directories' (tmp/ is smap's, whose
 * files are only removed); every path is relative to an open directory
 * and never followed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "layout.h"
#include "log.h"
#include "sweep.h"

#define STALE (24 * 3600)	/* a temporary file this old was abandoned */

/* tmp_name - a temporary file of smapd's own: "ID.tmp" */
static int
tmp_name(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".tmp") == 0;
}

/* why_name - quarantine/NAME.why (removed without a line of its own) */
static int
why_name(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".why") == 0;
}

/* The verdict on one entry of a directory: why it goes ("" to remove it
 * without a line of its own), or NULL to keep it. */
typedef const char *judge_fn(const struct qctx *, const char *,
    const struct stat *);

/* stale - tmp/: a file smap left a day ago */
static const char *
stale(const struct qctx *q, const char *name, const struct stat *st)
{
	(void)q;
	(void)name;
	return S_ISREG(st->st_mode) && st->st_mtime < time(NULL) - STALE ?
	    "removed stale temporary file" : NULL;
}

/* stale_own - queue/: a temporary file of smapd's own, a day old */
static const char *
stale_own(const struct qctx *q, const char *name, const struct stat *st)
{
	return tmp_name(name) ? stale(q, name, st) : NULL;
}

/* queued - is the message a state/ name belongs to in queue/ or hold/?
 * (queue/ asked again last: smapq moves messages between the two) */
static int
queued(const struct qctx *q, const char *name)
{
	char id[SPOOL_ID_MAX + 1];
	struct stat st;
	size_t n = strcspn(name, ".");

	if (n == 0 || n > SPOOL_ID_MAX)
		return 1;	/* not a name smapd makes: left alone */
	memcpy(id, name, n);
	id[n] = '\0';
	return fstatat(q->dirs.fd[L_QUEUE], id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(q->dirs.fd[L_HOLD], id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(q->dirs.fd[L_QUEUE], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* orphan - state/: the state of a message that is gone */
static const char *
orphan(const struct qctx *q, const char *name, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || queued(q, name))
		return NULL;
	return tmp_name(name) || st->st_mtime < time(NULL) - STALE ?
	    "removed, its message is gone" : NULL;
}

/* expired - quarantine/: older than quarantine_lifetime (by the time it
 * was moved there), with its .why */
static const char *
expired(const struct qctx *q, const char *name, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) ||
	    st->st_ctime >= time(NULL) - (time_t)q->cf->quarantine_lifetime)
		return NULL;
	return why_name(name) ? "" : "removed after quarantine_lifetime";
}

/* clean - remove what judge() condemns in w, and say so */
static void
clean(struct qctx *q, enum ldir w, judge_fn *judge)
{
	const char *why;
	char **v, esc[80];
	struct stat st;
	size_t i, n;

	if (layout_scan(&q->dirs, w, SCAN_MAX, layout_any_name, &v, &n) < 0)
		return;
	for (i = 0; i < n && !*q->stop; i++) {
		if (fstatat(q->dirs.fd[w], v[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (why = judge(q, v[i], &st)) == NULL ||
		    unlinkat(q->dirs.fd[w], v[i], 0) < 0 || why[0] == '\0')
			continue;
		log_info("%s/%s: %s", layout_name(w), log_esc(esc, sizeof(esc),
		    v[i], strlen(v[i])), why);
	}
	layout_free_list(v, n);
}

/* sweep - each directory's expiry */
void
sweep(struct qctx *q)
{
	clean(q, L_TMP, stale);
	clean(q, L_QUEUE, stale_own);
	clean(q, L_STATE, orphan);
	clean(q, L_QUAR, expired);
}
