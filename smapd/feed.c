/*
 * feed.c - the guard between smapd and the sendmail command.
 *
 * WHY: sendmail -i takes end of file on its standard input as the end
 * of the message; there is no size or terminator it could check. When
 * the process that writes that input dies (kill -9, the OOM killer, a
 * crash), the kernel closes the pipe and the command reads EOF after,
 * say, 524,288 of 3,000,029 bytes, exits 0 and delivers the cut-short
 * copy, while the whole message is still queued and goes again later.
 * So the writer of the command's input is never smapd itself but this
 * guard, which knows the size:
 *
 *	smapd --message pipe--> guard --pipe--> command (execve)
 *	   ^------------- output pipe (stdout+stderr of both) ---'
 *
 * The guard is a forked smapd in a session and process group of its
 * own (smapd kills that group at its deadline), and the only process
 * holding the write end of the command's stdin. It closes that end, the
 * command's end of message, only after it has passed on exactly the len
 * bytes smapd counted beforehand and then read end of file from smapd.
 * On anything else (end of file or a read error before len bytes, a
 * byte more, its own deadline, any signal that would end it) it sends
 * SIGKILL to its process group: the command dies while its input is
 * still open and never reads end of file. A kill -9 of smapd is such a
 * case: the guard reads end of file early. That SIGKILL goes to every
 * process of the group before the guard itself can close anything, so
 * the order is certain.
 *
 * The guard's own SIGKILL, which it cannot catch, is met by a holder:
 * a second child of the guard, in its group, that holds a second write
 * end of the command's stdin and a life line from the guard. The guard
 * writes "d" on the life line after the last byte and only then closes
 * its end; the holder closes its end on that word, and on end of file
 * without it (the guard died: the kernel closed its files) it kills
 * the group first, so the command never reads end of file after a
 * cut-short message, whichever of the two dies. (The kernel closes a
 * dying process's files a moment before it signals its children, so
 * the command's parent-death signal, PR_SET_PDEATHSIG(SIGKILL) with
 * getppid() checked after it, left a window alone; it is kept as a
 * third line. It does not hold for a set-ID sendmail_path, which the
 * holder does not need.)

 * A command that stops reading (EPIPE) cannot read end of file either:
 * the guard stops reading from smapd (smapd then sees EPIPE too), waits
 * for it and ends as it ended; exit 0 becomes a temporary failure,
 * because the message was not read.
 *
 * TRUST: smapd (the message, the size, argv) is trusted; the command is
 * not: nothing is read from it, and it runs with descriptors 0, 1 and 2
 * only, a minimal environment and default signal dispositions.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "spool.h"

#define RELAY_BUF	65536

/* abort_all - SIGKILL to the process group: the command, its children,
 * the guard; used as the handler of every signal that would end it */
static void
abort_all(int sig)
{
	(void)sig;
	(void)kill(0, SIGKILL);
	_exit(EX_TEMPFAIL);	/* not reached */
}

/* give_up - one line of output for smapd's verdict, then exit 75 */
static void __attribute__((noreturn))
give_up(const char *line)
{
	if (write(1, line, strlen(line)) < 0)
		_exit(EX_TEMPFAIL);
	_exit(EX_TEMPFAIL);
}

/* harmless - does signal s leave the guard running (ignored or a stop)? */
static int
harmless(int s)
{
	return s == SIGCHLD || s == SIGCONT || s == SIGURG || s == SIGWINCH ||
	    s == SIGSTOP || s == SIGTSTP || s == SIGTTIN || s == SIGTTOU ||
	    s == SIGKILL;
}

/* guard_signals - whatever would end the guard ends its group first */
static void
guard_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int s;

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	for (s = 1; s < NSIG; s++) {
		sa.sa_handler = harmless(s) ? SIG_DFL : abort_all;
		if (s == SIGPIPE)
			sa.sa_handler = SIG_IGN;	/* EPIPE is handled */
		(void)sigaction(s, &sa, NULL);	/* EINVAL: reserved ones */
	}
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* arm - SIGALRM (so abort_all) a second or two after smapd's deadline */
static void
arm(long long deadline)
{
	struct timespec ts;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	left = deadline - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	left = left < 0 ? 1 : left / 1000 + 2;
	(void)alarm(left > 86400 ? 86400 : (unsigned)left);
}

/* start_command - in the command's process: stdin, then execve */
static void __attribute__((noreturn))
start_command(const char *path, char **argv, const int p[2], pid_t guard)
{
	static char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct sigaction sa;
	sigset_t none;
	int s;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != guard ||
	    dup2(p[0], 0) < 0 || close(p[0]) < 0 || close(p[1]) < 0)
		_exit(EX_TEMPFAIL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execve(path, argv, envp);
	give_up("4.3.0 cannot execute sendmail_path\n");
}

/* start_holder - in the holder's process: the second write end of the
 * command's stdin, closed only on the guard's word "d" on the life
 * line; its end of file without that word (the guard died, even by
 * SIGKILL) kills the group first */
static void __attribute__((noreturn))
start_holder(const int p[2], const int life[2])
{
	char c = 0;
	ssize_t r;

	(void)close(0);
	(void)close(1);
	(void)close(2);
	(void)close(p[0]);
	(void)close(life[1]);
	while ((r = read(life[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 1 || c != 'd')
		abort_all(0);
	_exit(close(p[1]) == 0 ? 0 : EX_TEMPFAIL);
}

/* relay - len bytes from 0 to w, then end of file: 0; the command
 * stopped reading: 1; short, long or an error: -1 */
static int
relay(int w, long long len)
{
	static char buf[RELAY_BUF];
	ssize_t r;

	for (;;) {
		while ((r = read(0, buf, sizeof(buf))) < 0 && errno == EINTR)
			;
		if (r < 0 || (long long)r > len)
			return -1;
		if (r == 0)
			return len == 0 ? 0 : -1;
		len -= (long long)r;
		if (spool_write(w, buf, (size_t)r) < 0)
			return errno == EPIPE ? 1 : -1;
	}
}

/* end_as - end the guard as the command ended (see feed.h) */
static void __attribute__((noreturn))
end_as(int status, int unread)
{
	struct rlimit none = { 0, 0 };
	sigset_t set;
	int sig;

	if (WIFEXITED(status) && (WEXITSTATUS(status) != 0 || !unread))
		_exit(WEXITSTATUS(status));
	if (WIFEXITED(status))
		give_up("4.3.0 Command exited before reading the whole "
		    "message\n");
	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		(void)setrlimit(RLIMIT_CORE, &none);	/* no core of ours */
		(void)signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
		(void)raise(sig);
	}
	_exit(EX_TEMPFAIL);
}

/* feed_guard - start the command, give it exactly len bytes; feed.h */
void
feed_guard(const char *path, char **argv, long long len, long long deadline)
{
	pid_t guard = getpid(), pid = -1, holder = -1;
	int p[2], life[2], rc, status;

	/* Its own group, so that kill(0) never reaches smapd; its signals
	 * set before the command exists, which never has a guard that a
	 * signal could end without it. */
	if (setsid() < 0)
		give_up("4.3.0 cannot start sendmail_path\n");
	guard_signals();
	arm(deadline);
	if (pipe2(p, O_CLOEXEC) < 0 || pipe2(life, O_CLOEXEC) < 0 ||
	    (holder = fork()) < 0)
		give_up("4.3.0 cannot start sendmail_path\n");
	if (holder == 0)
		start_holder(p, life);
	if (close(life[0]) < 0 || (pid = fork()) < 0)
		abort_all(0);
	if (pid == 0)
		start_command(path, argv, p, guard);
	if (close(p[0]) < 0)
		abort_all(0);
	if ((rc = relay(p[1], len)) < 0)
		abort_all(0);
	if (rc > 0)
		(void)close(0);		/* smapd sees EPIPE too */
	if (write(life[1], "d", 1) != 1)	/* the holder is gone */
		abort_all(0);
	(void)close(p[1]);	/* with the holder's: the end of the message */
	(void)close(life[1]);
	while (waitpid(holder, &status, 0) < 0 && errno == EINTR)
		;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			abort_all(0);
	end_as(status, rc > 0);
}
