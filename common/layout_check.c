/*
 * layout_check.c - the table of the spool's directories, owners and
 * modes, and its check (smap -t, smapd -t, smapd at start); smapd -P
 * makes it true (layout_setup.c). See layout_setup.h.
 *
 * TRUST: the configuration names the spool and the users. Nothing found
 * below the spool is trusted: every path is looked at with lstat, and a
 * symbolic link where a directory belongs is a problem, never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "bounds.h"
#include "jail.h"
#include "layout.h"
#include "layout_check.h"


static const struct layout_row rows[] = {
	{ ".", O_ROOT, O_ROOT, 0755, 0001, 0022, SIDE_SMAP },
	{ LAYOUT_INCOMING, O_ROOT, O_ROOT, 0755, 0001, 0022, SIDE_SMAP },
	{ LAYOUT_INCOMING "/" LAYOUT_TMP, O_SMAPD, O_SMAP, 01770, 01770, 0007,
	    SIDE_SMAP },
	{ LAYOUT_INCOMING "/" LAYOUT_NEW, O_SMAPD, O_SMAP, 01770, 01770, 0007,
	    SIDE_SMAP },
	{ LAYOUT_INCOMING "/" LAYOUT_ANVIL, O_SMAP, O_SMAP, 0700, 0700, 0077,
	    SIDE_SMAP },
	{ "queue", O_SMAPD, O_SMAPD, 0700, 0700, 0077, SIDE_ALL },
	{ "state", O_SMAPD, O_SMAPD, 0700, 0700, 0077, SIDE_ALL },
	{ "hold", O_SMAPD, O_SMAPD, 0700, 0700, 0077, SIDE_ALL },
	{ "quarantine", O_SMAPD, O_SMAPD, 0700, 0700, 0077, SIDE_ALL },
	{ "journal", O_SMAPD, O_SMAPD, 0700, 0700, 0077, SIDE_ALL },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* layout_rows - the table */
const struct layout_row *
layout_rows(size_t *n)
{
	*n = NROWS;
	return rows;
}

/* layout_chroot - smap's root directory */
int
layout_chroot(const char *spool, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", spool, LAYOUT_INCOMING);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* user - a user's ids by name, not root; 0 or -1 with why */
static int
user(const char *key, const char *name, uid_t *uid, gid_t *gid, char *why,
    size_t len)
{
	if (jail_user(name, uid, gid) < 0) {
		snprintf(why, len, "%s: unknown user %s%s%s", key, name, errno ?
		    ": " : " (create it: see sysusers.d/smap.conf)",
		    errno ? strerror(errno) : "");
		return -1;
	}
	if (*uid == 0 || *gid == 0) {
		snprintf(why, len, "%s: %s has uid or gid 0; it must be an "
		    "unprivileged user", key, name);
		return -1;
	}
	return 0;
}

/* layout_users - resolve and check mail_owner and smapd_user */
int
layout_users(const char *mail_owner, const char *smapd_user,
    struct layout_ids *ids, char *why, size_t len)
{
	if (user("mail_owner", mail_owner, &ids->smap_uid, &ids->smap_gid, why,
	    len) < 0 || user("smapd_user", smapd_user, &ids->smapd_uid,
	    &ids->smapd_gid, why, len) < 0)
		return -1;
	endpwent();
	if (ids->smap_uid == ids->smapd_uid) {
		snprintf(why, len, "mail_owner (%s) and smapd_user (%s) are the "
		    "same user (uid %lu): smap must not be able to write smapd's "
		    "queue; give smapd a user of its own", mail_owner, smapd_user,
		    (unsigned long)ids->smap_uid);
		return -1;
	}
	if (ids->smap_gid == ids->smapd_gid) {
		snprintf(why, len, "mail_owner (%s) and smapd_user (%s) share "
		    "their primary group: each needs a group of its own",
		    mail_owner, smapd_user);
		return -1;
	}
	return 0;
}

/* layout_uid, layout_gid - the ids a role stands for */
uid_t
layout_uid(const struct layout_ids *ids, enum layout_role r)
{
	return r == O_SMAP ? ids->smap_uid : r == O_SMAPD ? ids->smapd_uid : 0;
}

gid_t
layout_gid(const struct layout_ids *ids, enum layout_role r)
{
	return r == O_SMAP ? ids->smap_gid : r == O_SMAPD ? ids->smapd_gid : 0;
}

/* layout_say - format one line and pass it on */
void
layout_say(void (*say)(void *, const char *), void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	say(ctx, line);
}

/* layout_row_path - the row's directory: the spool itself, or below it */
void
layout_row_path(char *buf, size_t len, const char *spool,
    const struct layout_row *r)
{
	if (strcmp(r->path, ".") == 0)
		snprintf(buf, len, "%s", spool);
	else
		snprintf(buf, len, "%s/%s", spool, r->path);
}

/* uname - a user's (group's) name for a message, else the number */
static const char *
uname(unsigned long id, int group)
{
	static char buf[4][64];
	static int k;
	struct passwd *pw = group ? NULL : getpwuid((uid_t)id);
	struct group *gr = group ? getgrgid((gid_t)id) : NULL;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s", pw ? pw->pw_name : gr ?
	    gr->gr_name : "");
	if (buf[k][0] == '\0')
		snprintf(buf[k], sizeof(buf[k]), "%lu", id);
	return buf[k];
}

/* row_problem - what is wrong with one directory, or NULL */
static const char *
row_problem(const struct layout_row *r, const struct stat *st,
    const struct layout_ids *ids, char *buf, size_t len)
{
	mode_t m = st->st_mode & 07777;

	if (S_ISLNK(st->st_mode))
		return "a symbolic link where a directory belongs";
	if (!S_ISDIR(st->st_mode))
		return "not a directory";
	if (st->st_uid != layout_uid(ids, r->owner) || (r->group != O_ROOT &&
	    st->st_gid != layout_gid(ids, r->group)) || (m & r->need) != r->need ||
	    (m & r->deny) != 0) {
		snprintf(buf, len, "owner %s:%s mode %04o, must be %s:%s mode %04o",
		    uname(st->st_uid, 0), uname(st->st_gid, 1), (unsigned)m,
		    uname(layout_uid(ids, r->owner), 0),
		    uname(layout_gid(ids, r->group), 1), (unsigned)r->mode);
		return buf;
	}
	return NULL;
}

/* count_entries - names in dir other than . and .. (capped) */
static long
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	long n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && n < SCAN_MAX)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* old_layout - report spool/tmp and spool/new of the old layout */
static int
old_layout(const char *spool, void (*say)(void *, const char *), void *ctx)
{
	static const char *const old[] = { LAYOUT_TMP, LAYOUT_NEW };
	char path[4200];
	struct stat st;
	int bad = 0;
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", spool, old[i]);
		if (lstat(path, &st) < 0)
			continue;
		layout_say(say, ctx, "%s: the spool is in the old layout, before %s/; "
		    "%ld entries there; run `smapd -c CONFIG -P` as root to move "
		    "them into %s/%s/%s", path, LAYOUT_INCOMING, count_entries(path),
		    spool, LAYOUT_INCOMING, old[i]);
		bad++;
	}
	return bad;
}

/* layout_check - every row, and the old layout */
int
layout_check(const char *spool, const struct layout_ids *ids,
    enum layout_side side, void (*say)(void *, const char *), void *ctx)
{
	char path[4200], buf[160];
	const char *why;
	struct stat st;
	size_t i;
	int bad = old_layout(spool, say, ctx);

	for (i = 0; i < NROWS; i++) {
		if (side == SIDE_SMAP && rows[i].side != SIDE_SMAP)
			continue;
		layout_row_path(path, sizeof(path), spool, &rows[i]);
		if (lstat(path, &st) < 0)
			why = errno == ENOENT ? "missing" : strerror(errno);
		else
			why = row_problem(&rows[i], &st, ids, buf, sizeof(buf));
		if (why != NULL) {
			layout_say(say, ctx, "%s: %s (smapd -P sets it up)", path, why);
			bad++;
		}
	}
	return bad;
}

/* layout_check_config - the users and the directories of a configuration */
int
layout_check_config(const struct conf *cf, enum layout_side side,
    void (*say)(void *, const char *), void *ctx)
{
	struct layout_ids ids;
	char why[512];

	if (layout_users(cf->mail_owner, cf->smapd_user, &ids, why,
	    sizeof(why)) < 0) {
		say(ctx, why);
		return 1;
	}
	return layout_check(cf->spool_directory, &ids, side, say, ctx) +
	    (side == SIDE_SMAP ? layout_check_fsync(cf, say, ctx) : 0);
}
