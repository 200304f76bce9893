/*
 * fuzz_session - libFuzzer harness for a whole smap session.
 *
 * Fork-free: the input is written to one end of a socketpair, which is
 * then shut down for writing, and session_run() serves the other end
 * in a private temp spool directory (tmp/, new/; no jail), as a client
 * in mynetworks or an outsider. The replies
 * are read back afterwards; the socket buffers are large enough that a
 * session never blocks. Invariants: one file in new/ per
 * "250 2.0.0 Ok: queued as" reply, nothing left in tmp/.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "conf.h"
#include "log.h"
#include "smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * The whole input is in the socket before the session starts, so the
 * pregreet check (greet(): io_wait for smtpd_greet_pause) would refuse
 * every session. Linked with -Wl,--wrap=io_wait: the first io_wait of
 * each session (greet's) answers "nothing there"; later calls are real.
 */
int __real_io_wait(struct io *io, int ms);
int __wrap_io_wait(struct io *io, int ms);
static int skip_pregreet;

int
__wrap_io_wait(struct io *io, int ms)
{
	if (skip_pregreet) {
		skip_pregreet = 0;
		return 0;
	}
	return __real_io_wait(io, ms);
}

#define INPUT_MAX	(64 * 1024)
#define BUF_SIZE	(1024 * 1024)
#define REPLIES_MAX	(2 * 1024 * 1024)

static struct conf cf;
static const struct opened none;	/* no STARTTLS, no recipient map */
static struct session s;
static char spooldir[256];
static char *replies;
static int homefd = -1, spoolfd = -1;	/* cwd of the fuzzer; the spool */

static void
bigbuf(int fd)
{
	int n = BUF_SIZE;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &n, sizeof(n)) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof(n)) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

/* Count the entries of dir; remove them when unlink_them. */
static size_t
count_files(const char *dir, int unlink_them)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];
	size_t n = 0;

	assert(d != NULL);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (unlink_them) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			(void)unlink(path);
		}
	}
	closedir(d);
	return n;
}

static void
cleanup(void)
{
	char path[300];

	if (chdir("/") != 0)
		return;
	snprintf(path, sizeof(path), "%s/new", spooldir);
	(void)count_files(path, 1);
	(void)rmdir(path);
	snprintf(path, sizeof(path), "%s/tmp", spooldir);
	(void)count_files(path, 1);
	(void)rmdir(path);
	(void)rmdir(spooldir);
}

/* load_conf - the defaults, and example.com as a relay domain */
static int
load_conf(void)
{
	char path[] = "/tmp/fuzz_session.conf.XXXXXX", err[2048];
	static const char text[] = "relay_domains = example.com\n";
	int fd = mkstemp(path), rc;

	if (fd < 0 || write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1))
		return -1;
	close(fd);
	rc = conf_load(&cf, path, err, sizeof(err));
	unlink(path);
	if (rc != 0)
		fputs(err, stderr);
	return rc;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_open("smap/smtpd", "mail", "/dev/null");
	/* The client's address comes from TCPREMOTEIP (a socketpair has
	 * none); see LLVMFuzzerTestOneInput for which one. */
	setenv("TCPREMOTEPORT", "25", 1);
	if (load_conf() != 0) {
		fprintf(stderr, "fuzz_session: configuration failed\n");
		abort();
	}
	cf.message_size_limit = 4096;
	cf.smtpd_timeout = 1;
	cf.smtpd_session_deadline = 10;
	cf.queue_minfree = 0;
	cf.smtpd_hard_error_limit = 20;
	cf.smtpd_greet_pause = 0;
	snprintf(spooldir, sizeof(spooldir), "%s/smap-fuzz-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	homefd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (homefd < 0 || mkdtemp(spooldir) == NULL || chdir(spooldir) != 0 ||
	    mkdir("tmp", 0700) != 0 || mkdir("new", 0700) != 0 ||
	    (spoolfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fchdir(homefd) != 0) {
		perror("fuzz_session: spool");
		abort();
	}
	atexit(cleanup);
	replies = malloc(REPLIES_MAX + 1);
	assert(replies != NULL);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char queued[] = "250 2.0.0 Ok: queued as ";
	int sv[2], fl;
	size_t off = 0, rlen = 0, nqueued = 0, nnew;
	ssize_t n;
	char *p, *line;

	if (size > INPUT_MAX)
		return 0;
	/* The session works in the spool, relative to the current
	 * directory; libFuzzer's paths are relative to the caller's. */
	assert(fchdir(spoolfd) == 0);
	assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	bigbuf(sv[0]);
	bigbuf(sv[1]);
	fl = fcntl(sv[0], F_GETFL);
	assert(fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) == 0);
	while (off < size) {
		n = write(sv[0], data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* buffer full: the rest is lost */
		off += (size_t)n;
	}
	assert(shutdown(sv[0], SHUT_WR) == 0);

	/* Odd sizes come from an outsider (relay_domains only), even ones
	 * from 127.0.0.1 (mynetworks: relaying allowed); one size in 16 is
	 * judged by the pregreet check as the bytes sent before the
	 * greeting that it is. */
	setenv("TCPREMOTEIP", size % 2 ? "192.0.2.7" : "127.0.0.1", 1);
	skip_pregreet = size % 16 != 15;
	session_run(&s, &cf, &none, sv[1], sv[1]);
	skip_pregreet = 0;
	(void)shutdown(sv[1], SHUT_WR);

	for (;;) {
		n = read(sv[0], replies + rlen, REPLIES_MAX - rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		rlen += (size_t)n;
		if (rlen == REPLIES_MAX)
			break;
	}
	replies[rlen] = '\0';
	if (getenv("FUZZ_SESSION_DEBUG") != NULL)
		fprintf(stderr, "%s", replies);
	close(sv[0]);
	close(sv[1]);

	for (line = replies; line < replies + rlen; line = p + 1) {
		if (strncmp(line, queued, sizeof(queued) - 1) == 0)
			nqueued++;
		if ((p = memchr(line, '\n', (size_t)(replies + rlen - line))) == NULL)
			break;
	}
	nnew = count_files("new", 1);
	if (nnew != nqueued) {
		fprintf(stderr, "fuzz_session: %zu file(s) in new/, %zu "
		    "queued reply(ies)\n", nnew, nqueued);
		abort();
	}
	if (count_files("tmp", 1) != 0) {
		fprintf(stderr, "fuzz_session: files left in tmp/\n");
		abort();
	}
	assert(fchdir(homefd) == 0);
	return 0;
}
