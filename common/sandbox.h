/*
 * sandbox.h - seccomp system call filters for smap and smapd.
 *
 * Installed after jail_enter(), before the first byte from the network
 * (smap) or the first spool file (smapd) is read. A filter can only be
 * narrowed later, never lifted; it is inherited across fork and execve.
 */
#ifndef SMAP_SANDBOX_H
#define SMAP_SANDBOX_H

#include <stddef.h>

/*
 * smap's filter: an allow-list of what a jailed SMTP session needs
 * (I/O on open descriptors, the spool calls, memory, time, syslog on
 * the connected socket); any other call kills the process (SIGSYS).
 * Executable mappings and socket families other than AF_UNIX are
 * refused. Returns 0, or -1 with the reason in why.
 */
int sandbox_smap(char *why, size_t whylen);

/* The rules of smap's filter as a libseccomp context (a scmp_filter_ctx
 * in *ctx): 0, or -1 with the reason in why. Used only by sandbox_gen,
 * which exports it as the BPF program sandbox_smap() loads. */
int sandbox_smap_rules(void **ctx, char *why, size_t whylen);

/*
 * smapd's filter: everything its transports and their children need is
 * allowed (sockets, DNS, inotify, fork and execve of sendmail); the
 * calls nothing there needs (ptrace, mount, module loading, kexec, bpf,
 * namespaces, the setuid family, ...) fail with EPERM. Returns 0 when
 * installed, 1 with the reason in why when it is not installed because
 * no_new_privs is off (a setgid sendmail must keep working), -1 with
 * the reason in why when it could not be installed.
 */
int sandbox_smapd(char *why, size_t whylen);

#endif
