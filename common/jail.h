/*
 * jail.h - confine a process: chroot, unprivileged user, no capabilities.
 *
 * jail_enter() runs before the first byte from the network is read.
 * It trusts the configuration for the directory and the user name and
 * nothing else; every step is checked after it is taken.
 */
#ifndef SMAP_JAIL_H
#define SMAP_JAIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * chroot(root) and chdir("/") when root is not NULL; then become user
 * (all three uids and gids, supplementary groups = the user's primary
 * group only), clear every capability set and, when the process may,
 * the bounding set; set no_new_privs. Works when started as root, and
 * when started as the user itself holding CAP_SYS_CHROOT (systemd
 * AmbientCapabilities=). Refuses uid 0 as the target. Returns 0, or
 * -1 with the step that failed in why.
 */
int jail_enter(const char *root, const char *user, int flags, char *why,
    size_t whylen);

/*
 * A user's uid and gid, the entry getpwnam(3) would return, read without
 * NSS's machinery when that gives the same answer: when the (last)
 * passwd line of /etc/nsswitch.conf names files first with no [action]
 * after it, the first valid entry of that name in /etc/passwd is it
 * (glibc's files module: same parser, same order). Otherwise, or when
 * /etc/passwd has no such entry (the next source may), getpwnam().
 * Both files are read on every call, nothing is kept: a changed entry
 * counts at once. Returns 0, or -1 with errno (0: no such user).
 */
int jail_user(const char *user, uid_t *uid, gid_t *gid);

/* flags: keep no_new_privs off, so that a setgid program (Postfix's
 * sendmail, setgid postdrop) still works when smapd runs it. */
#define JAIL_ALLOW_SETGID 1

#endif
