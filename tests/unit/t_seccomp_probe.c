/*
 * t_seccomp_probe.c - install smap's or smapd's filter, make one call.
 *
 * Usage: t_seccomp_probe smap|smapd|smapd-nonnp CALL
 *
 * Sets no_new_privs (except for smapd-nonnp), installs the filter with
 * sandbox_smap() or sandbox_smapd(), prints "installed RC asan=N", then
 * makes CALL and prints "CALL rc=R errno=E" and exits 0 if it survived.
 * tests/12-seccomp.t runs it and expects, per filter and call, either
 * death by SIGSYS or the printed result (EPERM for smapd's deny-list).
 * CALL: getpid, write, socket_unix, socket_inet, execve, mmap_exec,
 * ptrace, mount, umount2, unshare, setuid, fork, ofd_lock and flock
 * (on a temporary file opened before the filter: smap/anvil.c's lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "sandbox.h"

static int tmpfd = -1;		/* a regular file, opened before the filter */

#ifdef __SANITIZE_ADDRESS__
#define ASAN 1
#else
#define ASAN 0
#endif

/* call - make the named system call; its return value */
static long
call(const char *name)
{
	static char *const argv[] = { "true", NULL };
	static char *const envp[] = { NULL };
	void *p;
	pid_t pid;

	if (strcmp(name, "getpid") == 0)
		return getpid() > 0 ? 0 : -1;
	if (strcmp(name, "write") == 0)
		return write(STDOUT_FILENO, "", 0);
	if (strcmp(name, "socket_unix") == 0)
		return socket(AF_UNIX, SOCK_DGRAM, 0);
	if (strcmp(name, "socket_inet") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(name, "execve") == 0)
		return execve("/bin/true", argv, envp);
	if (strcmp(name, "mmap_exec") == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE |
		    MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? -1 : 0;
	}
	if (strcmp(name, "ptrace") == 0)
		return ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	if (strcmp(name, "mount") == 0)
		return mount("none", "/nonexistent/smap-probe", "tmpfs", 0, NULL);
	if (strcmp(name, "umount2") == 0)
		return umount2("/nonexistent/smap-probe", 0);
	if (strcmp(name, "unshare") == 0)
		return unshare(CLONE_NEWUSER);
	if (strcmp(name, "setuid") == 0)
		return setuid(0);
	if (strcmp(name, "symlink") == 0)
		return symlink("/", "/nonexistent/smap-probe");
	if (strcmp(name, "fchown") == 0)
		return fchown(STDOUT_FILENO, 0, 0);
	if (strcmp(name, "ofd_lock") == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
		    .l_start = 0, .l_len = 1 };
		return fcntl(tmpfd, F_OFD_SETLK, &fl);
	}
	if (strcmp(name, "flock") == 0)
		return flock(tmpfd, LOCK_EX | LOCK_NB);
	if (strcmp(name, "fork") == 0) {
		if ((pid = fork()) == 0)
			_exit(0);
		return pid < 0 ? -1 : waitpid(pid, NULL, 0) == pid ? 0 : -1;
	}
	fprintf(stderr, "t_seccomp_probe: unknown call %s\n", name);
	exit(2);
}

int
main(int argc, char **argv)
{
	char why[512] = "";
	long rc;

	if (argc != 3) {
		fprintf(stderr, "usage: t_seccomp_probe smap|smapd|smapd-nonnp CALL\n");
		return 2;
	}
	if (strcmp(argv[1], "smapd-nonnp") != 0 &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		perror("no_new_privs");
		return 1;
	}
	tmpfd = fileno(tmpfile());
	if (strcmp(argv[1], "smap") == 0)
		rc = sandbox_smap(why, sizeof(why));
	else
		rc = sandbox_smapd(why, sizeof(why));
	printf("installed %ld asan=%d %s\n", rc, ASAN, why);
	fflush(stdout);
	if (rc < 0)
		return 1;
	errno = 0;
	rc = call(argv[2]);
	printf("%s rc=%ld errno=%d\n", argv[2], rc < 0 ? -1 : rc, rc < 0 ? errno : 0);
	return 0;
}
