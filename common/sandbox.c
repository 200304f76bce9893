/*
 * sandbox.c - seccomp system call filters (libseccomp) for smap, smapd.
 *
 * smap's filter is compiled to BPF here once, when smap is built
 * (sandbox_gen.c), and loaded by sandbox_smap.c without libseccomp;
 * smapd's is built and loaded at start-up.
 *
 * smap: an allow-list; default action SCMP_ACT_KILL_PROCESS. The jail
 * (chroot, unprivileged user, no capabilities, no_new_privs) is already
 * in place, so the list holds only what a session does afterwards: I/O
 * on the connection and on spool files, the spool calls (open, fsync,
 * rename, link, unlink, fchmod, statvfs), memory, time, signals, and
 * syslog on its connected socket. mmap and mprotect may not make
 * executable memory; socket() may only make AF_UNIX sockets (glibc's
 * syslog reconnects after a syslogd restart; the chroot has no
 * /dev/log, so the reconnect fails harmlessly).
 *
 * smapd: a deny-list; default action SCMP_ACT_ALLOW, listed calls fail
 * with EPERM. smapd execve()s the configured sendmail program, which
 * inherits the filter; an allow-list would have to cover every program
 * a site configures there. What is denied no transport or child of one
 * needs: debugging other processes, mounts and namespaces, changing
 * uids or capabilities, kernel modules, kexec, bpf, perf, keyrings,
 * personality, clocks, swap, reboot, io_uring, and, since smapd's
 * directories are its own, symbolic links and changes of owner. clone() with namespace
 * flags fails with EPERM, clone3() with ENOSYS (its flags are in memory
 * a filter cannot read; glibc falls back to clone()). A filter needs
 * no_new_privs; it is off in smapd only for a setgid sendmail, and then
 * no filter is installed (sandbox_smapd() returns 1).
 *
 * Both filters kill on a system call of a foreign ABI (libseccomp's
 * default bad-architecture action), e.g. int 0x80 on x86_64.
 *
 * Under AddressSanitizer (__SANITIZE_ADDRESS__) the runtime makes calls
 * of its own (sigaltstack, prctl, readlink, sched_yield, ...) and
 * LeakSanitizer ptrace()s the process's threads at exit: those are
 * added to the allow-list, and ptrace is left out of the deny-list.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <seccomp.h>

#include "sandbox.h"

static const char *const smap_allow[] = {
	/* I/O on open descriptors: the connection, spool files, the log */
	"read", "readv", "write", "writev", "pread64", "pwrite64", "lseek",
	"close", "poll", "ppoll", "select", "pselect6", "fcntl", "ftruncate",
	/* the spool (spool.c) and statvfs (session.c) */
	"openat", "open", "fsync", "fdatasync", "rename", "renameat",
	"renameat2", "link", "linkat", "unlink", "unlinkat", "fchmod",
	"fstat", "newfstatat", "statx", "stat", "lstat", "statfs", "fstatfs",
	/* syslog(3) over the connected socket; the connection */
	"sendto", "sendmsg", "recvfrom", "recvmsg", "connect", "shutdown",
	"getpeername", "getsockname", "getsockopt",
	/* identity, time, signals */
	"getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep",
	"clock_nanosleep", "alarm", "setitimer", "getitimer",
	"rt_sigreturn", "rt_sigprocmask", "rt_sigaction",
	/* memory (mmap and mprotect: see below), OpenSSL's randomness */
	"brk", "munmap", "mremap", "madvise", "getrandom", "futex",
	"exit", "exit_group", "restart_syscall",
#ifdef __SANITIZE_ADDRESS__
	"sigaltstack", "prctl", "sched_yield", "readlink", "readlinkat",
	"getdents64", "uname", "getrlimit", "prlimit64", "setrlimit",
	"sched_getaffinity", "tgkill", "kill", "dup", "dup2", "dup3", "pipe",
	"pipe2", "getppid", "mincore",
	"rt_sigtimedwait", "ioctl", "access", "faccessat", "faccessat2",
#endif
};

static const char *const smapd_deny[] = {
#ifndef __SANITIZE_ADDRESS__
	"ptrace",
#endif
	"process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns", "setuid", "setgid", "setreuid", "setregid",
	"setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capset",
	"init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "bpf", "perf_event_open", "keyctl", "add_key",
	"request_key", "personality", "reboot", "swapon", "swapoff", "acct",
	"quotactl", "syslog", "iopl", "ioperm", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "sethostname",
	"setdomainname", "userfaultfd", "name_to_handle_at",
	"open_by_handle_at", "vhangup", "uselib", "mknod", "mknodat",
	/* the layout: smapd makes no links to anything and owns what it
	 * makes; a planted name can never be followed into a new one */
	"symlink", "symlinkat", "chown", "fchown", "lchown", "fchownat",
	"fanotify_init", "lookup_dcookie", "io_uring_setup",
	"io_uring_enter", "io_uring_register",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const unsigned long ns_flags[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
	CLONE_NEWNET, CLONE_NEWCGROUP,
};

/* fail - release the context, say which step failed; returns -1 */
static int
fail(scmp_filter_ctx ctx, char *why, size_t len, const char *step, int rc)
{
	if (ctx != NULL)
		seccomp_release(ctx);
	snprintf(why, len, "seccomp %s: %s", step, strerror(rc < 0 ? -rc : rc));
	return -1;
}

/* add_list - one rule with action per name; names this arch lacks skipped */
static int
add_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names,
    size_t n, const char **bad)
{
	size_t i;
	int nr, rc;

	for (i = 0; i < n; i++) {
		if ((nr = seccomp_syscall_resolve_name(names[i])) == __NR_SCMP_ERROR)
			continue;
		if ((rc = seccomp_rule_add(ctx, action, nr, 0)) < 0) {
			*bad = names[i];
			return rc;
		}
	}
	return 0;
}

/* add_smap_args - the calls smap may make with some arguments only */
static int
add_smap_args(scmp_filter_ctx ctx)
{
	int rc;

	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		return rc;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
}

/* sandbox_smap_rules - smap's allow-list as a libseccomp context; see
 * sandbox.h (sandbox_gen.c turns it into the BPF smap loads) */
int
sandbox_smap_rules(void **out, char *why, size_t len)
{
	scmp_filter_ctx ctx;
	const char *bad = "";
	int rc;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return fail(NULL, why, len, "init", ENOMEM);
	if ((rc = add_list(ctx, SCMP_ACT_ALLOW, smap_allow, NELEM(smap_allow),
	    &bad)) < 0)
		return fail(ctx, why, len, bad, rc);
	if ((rc = add_smap_args(ctx)) < 0)
		return fail(ctx, why, len, "mmap/mprotect/socket", rc);
	*out = ctx;
	return 0;
}

/* deny_clone_ns - clone() that makes a namespace fails with EPERM */
static int
deny_clone_ns(scmp_filter_ctx ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < NELEM(ns_flags); i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i],
		    ns_flags[i]))) < 0)
			return rc;
	return 0;
}

/* sandbox_smapd - the deny-list filter; see sandbox.h */
int
sandbox_smapd(char *why, size_t len)
{
	scmp_filter_ctx ctx;
	const char *bad = "";
	int rc;

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		snprintf(why, len, "no system call filter: no_new_privs is off "
		    "(sendmail may be setgid)");
		return 1;
	}
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return fail(NULL, why, len, "init", ENOMEM);
	if ((rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), smapd_deny,
	    NELEM(smapd_deny), &bad)) < 0)
		return fail(ctx, why, len, bad, rc);
	if ((rc = deny_clone_ns(ctx)) < 0)
		return fail(ctx, why, len, "clone", rc);
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0)) < 0)
		return fail(ctx, why, len, "clone3", rc);
	if ((rc = seccomp_load(ctx)) < 0)
		return fail(ctx, why, len, "load", rc);
	seccomp_release(ctx);
	return 0;
}
