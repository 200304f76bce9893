/*
 * sweep.c - the expiry of every directory smapd fills (see sweep.h).
 *
 * Nothing here is delivered or read: a name is removed by its age, its
 * form and, for state/, by whether its message still exists. A state
 * file goes only when its message is in neither queue/ nor hold/ and
 * the file is a day old (the message was removed, which is the record,
 * and smapd was killed before the state went); a temporary state file
 * (a reservation, or a save cut short) goes as soon as its message is
 * gone, since only a delivery that holds the message's lock writes one.
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

/* removed - unlink w/name and say so ("removed ...") */
static void
removed(struct qctx *q, enum ldir w, const char *name, const char *why)
{
	char esc[80];

	if (unlinkat(q->dirs.fd[w], name, 0) == 0 && why != NULL)
		log_info("%s/%s: %s", layout_name(w),
		    log_esc(esc, sizeof(esc), name, strlen(name)), why);
}

/* clean_dir - files in w that keep() names, older than STALE */
static void
clean_dir(struct qctx *q, enum ldir w, int (*keep)(const char *))
{
	struct stat st;
	char **v;
	size_t i, n;
	time_t old = time(NULL) - STALE;

	if (layout_scan(&q->dirs, w, SCAN_MAX, keep, &v, &n) < 0)
		return;
	for (i = 0; i < n && !*q->stop; i++)
		if (fstatat(q->dirs.fd[w], v[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime < old)
			removed(q, w, v[i], "removed stale temporary file");
	layout_free_list(v, n);
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

/* clean_state - state/ of messages that are gone */
static void
clean_state(struct qctx *q)
{
	struct stat st;
	char **v;
	size_t i, n;
	time_t old = time(NULL) - STALE;

	if (layout_scan(&q->dirs, L_STATE, SCAN_MAX, layout_any_name, &v, &n) < 0)
		return;
	for (i = 0; i < n && !*q->stop; i++) {
		if (fstatat(q->dirs.fd[L_STATE], v[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || queued(q, v[i]))
			continue;
		if (tmp_name(v[i]) || st.st_mtime < old)
			removed(q, L_STATE, v[i], "removed, its message is gone");
	}
	layout_free_list(v, n);
}

/* expire_quarantine - entries older than quarantine_lifetime (by the
 * time they were moved there), with their .why */
static void
expire_quarantine(struct qctx *q)
{
	struct stat st;
	char **v;
	size_t i, n;
	time_t old = time(NULL) - (time_t)q->cf->quarantine_lifetime;

	if (layout_scan(&q->dirs, L_QUAR, SCAN_MAX, layout_any_name, &v, &n) < 0)
		return;
	for (i = 0; i < n && !*q->stop; i++)
		if (fstatat(q->dirs.fd[L_QUAR], v[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISDIR(st.st_mode) && st.st_ctime < old)
			removed(q, L_QUAR, v[i], why_name(v[i]) ? NULL :
			    "removed after quarantine_lifetime");
	layout_free_list(v, n);
}

/* sweep - each directory's expiry */
void
sweep(struct qctx *q)
{
	clean_dir(q, L_TMP, layout_any_name);
	clean_dir(q, L_QUEUE, tmp_name);
	clean_state(q);
	expire_quarantine(q);
}
