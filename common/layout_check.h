/*
 * layout_check.h - the table of the spool's directories with their
 * owners and modes (layout.h shows it), and its check by smap -t,
 * smapd -t and smapd at start (layout_check.c). smapd -P
 * (layout_setup.h) makes the table true with the same rows.
 */
#ifndef SMAP_LAYOUT_CHECK_H
#define SMAP_LAYOUT_CHECK_H

#include <stddef.h>
#include <sys/types.h>
#include "conf.h"

/* The two users, resolved. */
struct layout_ids {
	uid_t smap_uid, smapd_uid;
	gid_t smap_gid, smapd_gid;
};

/* mail_owner and smapd_user by name: both must exist, neither may be
 * root, and they must be different users (uids). 0, or -1 with the
 * reason (naming the key) in why. */
int layout_users(const char *mail_owner, const char *smapd_user,
    struct layout_ids *ids, char *why, size_t len);

/* Which rows to check: smap's (the path to and into its chroot) or all. */
enum layout_side { SIDE_SMAP, SIDE_ALL };

/* Check the directories below spool (an absolute path) against the
 * table, and look for a spool of the old layout. Each problem is one
 * line "PATH: what is wrong (what to do)" passed to say(). Returns the
 * number of problems. */
int layout_check(const char *spool, const struct layout_ids *ids,
    enum layout_side side, void (*say)(void *, const char *), void *ctx);

/* layout_users() and layout_check() for a configuration: the count of
 * problems, each passed to say(). */
int layout_check_config(const struct conf *cf, enum layout_side side,
    void (*say)(void *, const char *), void *ctx);

/* spool "/" incoming into buf: smap's chroot. 0, or -1 if too long. */
int layout_chroot(const char *spool, char *buf, size_t len);

/* The rows of the table, and what the check and smapd -P share about
 * them. */
enum layout_role { O_ROOT, O_SMAP, O_SMAPD };

struct layout_row {
	const char *path;	/* below spool_directory; "." the spool */
	enum layout_role owner, group;	/* group O_ROOT: any, if not writable */
	mode_t mode;		/* what -P sets */
	mode_t need, deny;	/* what a check requires and refuses */
	enum layout_side side;	/* SIDE_SMAP: smap needs it too */
};

const struct layout_row *layout_rows(size_t *n);
uid_t layout_uid(const struct layout_ids *ids, enum layout_role r);
gid_t layout_gid(const struct layout_ids *ids, enum layout_role r);
void layout_row_path(char *buf, size_t len, const char *spool,
    const struct layout_row *r);
void layout_say(void (*say)(void *, const char *), void *ctx,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
