/*
 * layout_setup.h - the table of the spool's directories with their
 * owners and modes (layout.h shows it), checked by smap -t, smapd -t
 * and smapd at start (layout_check.c), and made true by smapd -P (as
 * `postfix set-permissions` does; layout_setup.c), which also moves a
 * spool of the old layout (tmp/ and new/ directly below
 * spool_directory) into incoming/.
 */
#ifndef SMAP_LAYOUT_SETUP_H
#define SMAP_LAYOUT_SETUP_H

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

/* As root: create what is missing, set owners and modes, move an old
 * layout's files into incoming/; idempotent. Each change and each
 * problem is passed to say(). Returns the number of problems. */
int layout_prepare(const char *spool, const struct layout_ids *ids,
    void (*say)(void *, const char *), void *ctx);

/* spool "/" incoming into buf: smap's chroot. 0, or -1 if too long. */
int layout_chroot(const char *spool, char *buf, size_t len);

#endif
