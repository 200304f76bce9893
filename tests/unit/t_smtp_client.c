/*
 * t_smtp_client.c - deliver_smtp() against real servers.
 *
 * Usage: t_smtp_client
 *
 * The servers are Postfix's: smtp-sink(1) (/usr/sbin/smtp-sink), which
 * can dump each message to a file (-d), log the commands it got (-v),
 * and reject (-f, -r), drop (-q) or 421 (-Q) chosen commands; and, to
 * reject some recipients but not others and to announce SIZE, a real
 * Postfix smtpd run by a private master(8) in the work directory, with
 * check_recipient_access and smtpd_proxy_filter pointing at a sink.
 * Each server listens on a free 127.0.0.1 port (or a UNIX socket in the
 * work directory), is started by fork/exec and stopped by its PID. As
 * root, smtp-sink runs with -u nobody; the Postfix cases need root and
 * are skipped without it. An alarm ends the whole run after 60 s.
 *
 * Spool files are made with common/spool.h's writer in a mkdtemp(3)
 * directory and read back with spool_read_envelope(), as smapd does.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "layout.h"
#include "log.h"
#include "spool.h"
#include "../../smapd/transport.h"
#include "tap.h"

#define PATH_LEN	4096
#define SINK		"/usr/sbin/smtp-sink"
#define MASTER		"/usr/lib/postfix/sbin/master"
#define LONG_LINE	5000
#define NRCPT_MAX	4

static char work[] = "/tmp/t_smtp.XXXXXX";
static char dumpdir[PATH_LEN], sinklog[PATH_LEN], ourlog[PATH_LEN];
static char message[LONG_LINE + 512];
static size_t message_len;
static struct conf cf;
static pid_t sink_pid = -1, master_pid = -1;
static unsigned sink_port;

/* One delivery attempt and what came of it. */
struct run {
	struct envelope env;
	int fd;
	size_t idx[NRCPT_MAX];
	struct rcpt_result res[NRCPT_MAX];
	struct delivery d;
};

static void	on_alarm(int);
static void	cleanup(void);
static void	setup(void);
static unsigned	free_port(void);
static int	probe(unsigned, const char *);
static pid_t	spawn(char *const [], char *const [], const char *);
static void	stop(pid_t *);
static void	master_stop(void);
static void	sink_spawn(const char *const [], const char *);
static void	sink_start(const char *const [], const char *);
static void	sink_restart(void);
static void	make_message(void);
static void	spool_message(struct run *, const char *const [], size_t,
		    const char *);
static void	deliver(struct run *, const char *);
static void	run_free(struct run *);
static char	*slurp_log(void);
static int	dump_count(void);
static char	*dump_read(void);
static void	dump_clear(void);
static int	body_equal(const char *);
static void	is_res(const struct run *, size_t, enum rstatus, const char *,
		    const char *);
static void	test_pipelined(void);
static void	test_reuse(void);
static void	test_no_pipelining(void);
static int	count(const char *, const char *);
static void	test_xforward_refused(void);
static void	test_reject(const char *, const char *, enum rstatus,
		    const char *, const char *);
static void	test_greeting(void);
static void	test_helo_fallback(void);
static void	test_lost(void);
static void	test_timeouts(void);
static void	test_refused(void);
static void	test_lmtp(void);
static void	test_unsafe(void);
static void	master_conf(const char *, unsigned, unsigned);
static int	master_start(unsigned, unsigned);
static void	test_postfix(void);
static void	set_str(char **, const char *);
static void	test_tls_levels(void);
static void	write_file(const char *, const char *, mode_t);
static void	test_auth_plaintext(void);

static const char *const RCPT2[] = { "<one@example.com>", "<two@example.com>" };

/* on_alarm - the run took too long: stop the servers, fail */
static void
on_alarm(int sig)
{
	(void)sig;
	if (sink_pid > 0)
		kill(sink_pid, SIGKILL);
	if (master_pid > 0)
		kill(master_pid, SIGTERM);
	_exit(1);
}

/* cleanup - stop the servers, remove the work directory */
static void
cleanup(void)
{
	stop(&sink_pid);
	master_stop();
	smtp_close_cached();
	if (chdir("/") == 0 && work[strlen(work) - 1] != 'X')
		(void)tap_rmtree(work);
	conf_free(&cf);
}

/* set_str - replace a string setting of cf */
static void
set_str(char **p, const char *v)
{
	free(*p);
	if ((*p = strdup(v)) == NULL)
		tap_fatal("strdup");
}

/* setup - work dir with spool/{tmp,new} (cwd) and dump/ for the sink */
static void
setup(void)
{
	char path[PATH_LEN];

	if (mkdtemp(work) == NULL || chmod(work, 0755) < 0)
		tap_fatal("mkdtemp");
	snprintf(dumpdir, sizeof(dumpdir), "%s/dump", work);
	snprintf(sinklog, sizeof(sinklog), "%s/sink.log", work);
	snprintf(ourlog, sizeof(ourlog), "%s/smtp.log", work);
	if (log_open("smap/smtp", "mail", ourlog) < 0)
		tap_fatal("log_open");
	snprintf(path, sizeof(path), "%s/spool", work);
	if (mkdir(dumpdir, 0777) < 0 || chmod(dumpdir, 0777) < 0 ||
	    mkdir(path, 0700) < 0 || chdir(path) < 0 ||
	    mkdir(LAYOUT_TMP, 0700) < 0 || mkdir(LAYOUT_NEW, 0700) < 0)
		tap_fatal("work directory");
	if (conf_defaults(&cf) != 0)
		tap_fatal("conf_defaults");
	free(cf.smtp_helo_name);
	if ((cf.smtp_helo_name = strdup("smapd.test")) == NULL)
		tap_fatal("strdup");
	cf.smtp_connect_timeout = 2;
	cf.smtp_helo_timeout = 2;
	cf.smtp_data_done_timeout = 2;
	/* The default level is verify for a host name (smtp:localhost);
	 * smtp-sink has no STARTTLS: plaintext here, test_tls_levels
	 * sets its own. */
	cf.smtp_tls_security_level = TLS_MAY;
	make_message();
}

/* free_port - a 127.0.0.1 port nobody listens on right now */
static unsigned
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		tap_fatal("free port");
	close(fd);
	return ntohs(sin.sin_port);
}

/* probe - does something accept connections on port (or path)? */
static int
probe(unsigned port, const char *path)
{
	struct sockaddr_in sin;
	struct sockaddr_un sun;
	int fd, rc;

	memset(&sin, 0, sizeof(sin));
	memset(&sun, 0, sizeof(sun));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sun.sun_family = AF_UNIX;
	if (path != NULL)
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	rc = path ? connect(fd, (struct sockaddr *)&sun, sizeof(sun)) :
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == 0;
}

/* spawn - fork and exec argv with env, output to log (append) */
static pid_t
spawn(char *const argv[], char *const envp[], const char *log)
{
	pid_t pid;
	int fd;

	fflush(stdout);
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	return pid;
}

/* stop - SIGTERM, a bounded wait, then SIGKILL */
static void
stop(pid_t *pid)
{
	int i, status;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (i = 0; i < 300; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid)
			break;
		usleep(10000);
	}
	if (i == 300) {
		kill(*pid, SIGKILL);
		(void)waitpid(*pid, &status, 0);
	}
	*pid = -1;
}

/* master_stop - stop master and reap its smtpd processes, which were
 * handed to us (a child subreaper) in its process group */
static void
master_stop(void)
{
	pid_t group = master_pid, got = 1;
	int i, status;

	stop(&master_pid);
	for (i = 0; group > 0 && got >= 0 && i < 300; i++)
		if ((got = waitpid(-group, &status, WNOHANG)) == 0)
			usleep(10000);
}

/* sink_spawn - smtp-sink with opts on sink_port (or unix:path) */
static void
sink_spawn(const char *const opts[], const char *unixpath)
{
	static char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	char *argv[32], listen[PATH_LEN + 8], dump[PATH_LEN + 8];
	size_t n = 0, i;

	if (unixpath)
		snprintf(listen, sizeof(listen), "unix:%s", unixpath);
	else
		snprintf(listen, sizeof(listen), "127.0.0.1:%u", sink_port);
	snprintf(dump, sizeof(dump), "%s/m.", dumpdir);
	argv[n++] = SINK;
	argv[n++] = "-v";
	argv[n++] = "-d";
	argv[n++] = dump;
	if (geteuid() == 0) {
		argv[n++] = "-u";
		argv[n++] = "nobody";
	}
	for (i = 0; opts[i] != NULL && n < 28; i++)
		argv[n++] = (char *)opts[i];
	argv[n++] = listen;
	argv[n++] = "10";
	argv[n] = NULL;
	sink_pid = spawn(argv, envp, sinklog);
	for (i = 0; i < 500 && !probe(sink_port, unixpath); i++)
		usleep(10000);
	if (i == 500)
		tap_fatal("smtp-sink did not start");
}

/* sink_start - a fresh sink on a new port; no cached connection */
static void
sink_start(const char *const opts[], const char *unixpath)
{
	stop(&sink_pid);
	smtp_close_cached();
	dump_clear();
	(void)unlink(sinklog);
	sink_port = free_port();
	sink_spawn(opts, unixpath);
}

/* sink_restart - a new default sink on the same port, cache kept */
static void
sink_restart(void)
{
	static const char *const opts[] = { NULL };

	stop(&sink_pid);
	sink_spawn(opts, NULL);
}

/* make_message - what smap would have spooled: CRLF lines, dots, 8-bit */
static void
make_message(void)
{
	static const char head[] = "Received: from client.example "
	    "([192.0.2.1]) by mx.test\r\nSubject: smtp client test\r\n\r\n"
	    ".leading dot\r\n..two dots\r\n.\r\n8-bit: caf\xc3\xa9 \xff\r\n";
	size_t n = sizeof(head) - 1;

	memcpy(message, head, n);
	memset(message + n, 'L', LONG_LINE);
	n += LONG_LINE;
	memcpy(message + n, "\r\nlast line\r\n", 13);
	message_len = n + 13;
}

/* spool_message - write, commit and read back one spool file */
static void
spool_message(struct run *r, const char *const rcpt[], size_t n,
    const char *client)
{
	struct envelope e;
	char id[SPOOL_ID_MAX + 1] = "", path[64], why[256];
	int fd;
	size_t i;

	memset(&e, 0, sizeof(e));
	memset(r, 0, sizeof(*r));
	e.arrival = 1795412345;
	snprintf(e.client, sizeof(e.client), "%s", client);
	e.port = strcmp(client, "unknown") ? 4711 : 0;
	snprintf(e.helo, sizeof(e.helo), "client+x=y.example");
	snprintf(e.proto, sizeof(e.proto), "ESMTP");
	snprintf(e.sender, sizeof(e.sender), "<sender@example.org>");
	e.rcpt = (char **)rcpt;
	e.nrcpt = n;
	e.body8 = 1;
	e.size = (long long)message_len;
	if ((fd = layout_create(id, sizeof(id))) < 0)
		tap_fatal("spool_create");
	snprintf(e.id, sizeof(e.id), "%s", id);
	if (spool_write_envelope(fd, &e) < 0 ||
	    spool_write(fd, message, message_len) < 0 ||
	    spool_write_final(fd, &e) < 0 || layout_commit(fd, id) < 0)
		tap_fatal("spool file");
	snprintf(path, sizeof(path), "%s/%s", LAYOUT_NEW, id);
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    spool_read_envelope(r->fd, &r->env, 100, why, sizeof(why)) < 0) {
		tap_diag("spool_read_envelope: %s", why);
		tap_fatal("spool read");
	}
	(void)unlink(path);
	for (i = 0; i < n; i++)
		r->idx[i] = i;
	r->d.env = &r->env;
	r->d.fd = r->fd;
	r->d.idx = r->idx;
	r->d.n = n;
	r->d.res = r->res;
}

/* deliver - deliver_smtp to a transport spec ("%u" is the sink port) */
static void
deliver(struct run *r, const char *spec)
{
	struct transport t;
	char s[PATH_LEN], why[256];

	snprintf(s, sizeof(s), spec, sink_port);
	if (transport_parse(s, &t, why, sizeof(why)) < 0) {
		tap_diag("%s", why);
		tap_fatal("transport_parse");
	}
	deliver_smtp(&t, &cf, &r->d);
}

/* run_free - close and free what spool_message made */
static void
run_free(struct run *r)
{
	close(r->fd);
	spool_free_envelope(&r->env);
}

/* slurp_log - the sink's -v log so far (the sink flushes per line) */
static char *
slurp_log(void)
{
	char *s;

	usleep(50000);
	s = tap_slurp(sinklog, NULL);
	return s ? s : strdup("");
}

/* dump_count - how many messages the sink dumped */
static int
dump_count(void)
{
	DIR *dir = opendir(dumpdir);
	struct dirent *de;
	int n = 0;

	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* dump_read - the one dumped message, or NULL */
static char *
dump_read(void)
{
	DIR *dir = opendir(dumpdir);
	struct dirent *de;
	char path[PATH_LEN * 2], *s = NULL;

	if (dir == NULL)
		return NULL;
	while ((de = readdir(dir)) != NULL && s == NULL)
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dumpdir,
			    de->d_name);
			s = tap_slurp(path, NULL);
		}
	closedir(dir);
	return s;
}

/* dump_clear - remove every dumped message */
static void
dump_clear(void)
{
	DIR *dir = opendir(dumpdir);
	struct dirent *de;
	char path[PATH_LEN * 2];

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dumpdir,
			    de->d_name);
			(void)unlink(path);
		}
	closedir(dir);
}

/* body_equal - after the sink's headers, the message with LF ends */
static int
body_equal(const char *dump)
{
	char want[sizeof(message) + 2];
	const char *p = dump ? strstr(dump, "\nReceived: from ") : NULL;
	size_t i, n = 0;
	int lines;

	for (lines = 0; p != NULL && lines < 3; lines++)
		if ((p = strchr(p + 1, '\n')) == NULL)
			return 0;
	if (p == NULL)
		return 0;
	for (i = 0; i < message_len; i++)
		if (message[i] != '\r')
			want[n++] = message[i];
	want[n++] = '\n';	/* the sink ends each dump with an empty line */
	want[n] = '\0';
	return strcmp(p + 1, want) == 0;
}

/* is_res - recipient i's status, dsn and the start of its text */
static void
is_res(const struct run *r, size_t i, enum rstatus st, const char *dsn,
    const char *text)
{
	const struct rcpt_result *x = &r->res[i];
	int ok = x->status == st && strcmp(x->dsn, dsn) == 0 &&
	    strncmp(x->text, text, strlen(text)) == 0;

	tap_ok(ok, "rcpt %zu: status %d, %s, \"%.60s\"", i, st, dsn, text);
	if (!ok)
		tap_diag("got status %d, %s, \"%s\"", x->status, x->dsn,
		    x->text);
}

/* test_pipelined - the default sink: PIPELINING, 8BITMIME, XFORWARD */
static void
test_pipelined(void)
{
	static const char *const opts[] = { NULL };
	char relay[64], *dump, *log;
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	is_res(&r, 1, R_SENT, "2.0.0", "250 2.0.0 Ok");
	snprintf(relay, sizeof(relay), "127.0.0.1[127.0.0.1]:%u", sink_port);
	tap_is(r.d.relay, relay, "relay is host[addr]:port");
	smtp_close_cached();
	dump = dump_read();
	log = slurp_log();
	tap_ok(body_equal(dump), "pipelined: the sink got the message intact");
	tap_ok(dump && strstr(dump, "X-Mail-Args: <sender@example.org> "
	    "BODY=8BITMIME\n") != NULL, "MAIL FROM with BODY=8BITMIME");
	tap_ok(dump && strstr(dump, "X-Rcpt-Args: <one@example.com>\n"
	    "X-Rcpt-Args: <two@example.com>\n") != NULL, "both RCPTs, in order");
	tap_ok(strstr(log, "EHLO smapd.test\n") != NULL, "EHLO smtp_helo_name");
	tap_ok(strstr(log, "XFORWARD HELO=client+2Bx+3Dy.example "
	    "ADDR=192.0.2.1 PROTO=ESMTP\n") != NULL,
	    "XFORWARD with the offered attributes, xtext-encoded");
	tap_ok(strstr(log, "QUIT\n") != NULL, "smtp_close_cached sent QUIT");
	tap_ok(strstr(log, "RSET") == NULL, "no RSET after a good transaction");
	free(dump);
	free(log);
	run_free(&r);
}

/* test_reuse - -m 1: a second connection would never be served */
static void
test_reuse(void)
{
	static const char *const opts[] = { "-m", "1", NULL };
	struct run r;
	char *log;
	int i;

	sink_start(opts, NULL);
	for (i = 0; i < 3; i++) {
		spool_message(&r, RCPT2, 1, i == 1 ? "unknown" : "2001:db8::7");
		deliver(&r, "smtp:[127.0.0.1]:%u");
		is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
		run_free(&r);
	}
	tap_ok(dump_count() == 3, "three messages over one cached connection");
	log = slurp_log();
	tap_ok(strstr(log, "ADDR=IPV6:2001:db8::7 PROTO=ESMTP") != NULL,
	    "XFORWARD ADDR=IPV6:...");
	tap_ok(strstr(log, "XFORWARD HELO=client+2Bx+3Dy.example PROTO=ESMTP\n")
	    != NULL, "XFORWARD without ADDR for an unknown client");
	free(log);

	/* A new sink on the same port: the cached connection is dead. */
	sink_restart();
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	tap_ok(dump_count() == 4, "dead cached connection: a new one");
	run_free(&r);

	/* The sink goes away while the connection sits in the cache. */
	stop(&sink_pid);
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.4.1", "connect to 127.0.0.1[127.0.0.1]:");
	tap_ok(strstr(r.res[0].text, "Connection refused") != NULL,
	    "dead cached connection, no server: refused");
	run_free(&r);
}

/* test_no_pipelining - -p: one command at a time; localhost by name */
static void
test_no_pipelining(void)
{
	static const char *const opts[] = { "-p", "-8", NULL };
	char *dump;
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:localhost:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	is_res(&r, 1, R_SENT, "2.0.0", "250 2.0.0 Ok");
	tap_ok(strncmp(r.d.relay, "localhost[", 10) == 0, "relay %s",
	    r.d.relay);
	smtp_close_cached();
	dump = dump_read();
	tap_ok(body_equal(dump), "unpipelined: the sink got the message intact");
	tap_ok(dump && strstr(dump, "X-Mail-Args: <sender@example.org>\n") !=
	    NULL, "no 8BITMIME offered: MAIL FROM without BODY=");
	free(dump);
	run_free(&r);
}

/* test_reject - the sink refuses cmd (-f 5xx, -r 4xx) */
static void
test_reject(const char *opt, const char *cmd, enum rstatus st,
    const char *dsn, const char *after)
{
	const char *const opts[] = { opt, cmd, NULL };
	char want[256], *log;
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	snprintf(want, sizeof(want), "127.0.0.1[127.0.0.1] said: %s %s "
	    "Error: command failed (in reply to %s command)",
	    st == R_BOUNCE ? "500" : "450", dsn, after);
	is_res(&r, 0, st, dsn, want);
	is_res(&r, 1, st, dsn, want);
	smtp_close_cached();
	log = slurp_log();
	if (strcmp(cmd, ".") != 0)	/* the sink dumps before it says 5xx */
		tap_ok(dump_count() == 0, "%s %s: nothing delivered", opt, cmd);
	if (strcmp(cmd, "DATA") != 0 && strcmp(cmd, ".") != 0)
		tap_ok(strstr(log, "RSET\n") != NULL && strstr(log,
		    "\nDATA\n") == NULL, "%s %s: RSET, not DATA", opt, cmd);
	free(log);
	run_free(&r);
}

/* count - occurrences of needle in s */
static int
count(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* test_xforward_refused - a refused XFORWARD is no reason to defer: the
 * message goes without it, and so does the next one on the connection
 * (smtp-sink offers no PIPELINING once -r names a command; t_smtp_pipe
 * covers the pipelined case with a scripted server) */
static void
test_xforward_refused(void)
{
	static const char *const opts[] = { "-r", "XFORWARD", NULL };
	char *log, *ours;
	struct run r;
	int i;

	sink_start(opts, NULL);
	if (truncate(ourlog, 0) < 0)
		tap_fatal("truncate");
	for (i = 0; i < 2; i++) {
		spool_message(&r, RCPT2, 2, "2001:db8::7");
		deliver(&r, "smtp:[127.0.0.1]:%u");
		is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
		is_res(&r, 1, R_SENT, "2.0.0", "250 2.0.0 Ok");
		run_free(&r);
	}
	smtp_close_cached();
	log = slurp_log();
	ours = tap_slurp(ourlog, NULL);
	tap_ok(dump_count() == 2, "XFORWARD refused: both messages delivered");
	tap_ok(count(log, ": XFORWARD HELO=") == 1 && count(log,
	    ": MAIL FROM:") == 2 && count(log, ": EHLO ") == 1,
	    "XFORWARD refused: MAIL after it; one connection, no second "
	    "XFORWARD on it");
	tap_ok(ours && count(ours, "127.0.0.1[127.0.0.1] refused XFORWARD: "
	    "450 4.3.0 Error: command failed; going on without it on this "
	    "connection") == 1 && !strstr(ours, "more replies"),
	    "XFORWARD refused: one warning with the server's reply");
	free(ours);
	free(log);
}

/* test_greeting - a 5xx greeting defers, with a 4.x code */
static void
test_greeting(void)
{
	static const char *const opts[] = { "-f", "CONNECT", NULL };
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.3.0", "127.0.0.1[127.0.0.1] refused to talk "
	    "to me: 500 5.3.0 Error: command failed");
	is_res(&r, 1, R_DEFER, "4.3.0", "127.0.0.1[127.0.0.1] refused");
	run_free(&r);
}

/* test_helo_fallback - EHLO refused with 5xx: HELO, plain SMTP */
static void
test_helo_fallback(void)
{
	static const char *const opts[] = { "-f", "EHLO", NULL };
	char *dump;
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	smtp_close_cached();
	dump = dump_read();
	tap_ok(body_equal(dump), "HELO: the sink got the message intact");
	tap_ok(dump && strstr(dump, "X-Client-Proto: SMTP\n") != NULL &&
	    strstr(dump, "X-Mail-Args: <sender@example.org>\n") != NULL,
	    "HELO session: no ESMTP parameters");
	free(dump);
	run_free(&r);
}

/* test_lost - 421 and hang-ups at RCPT and at end of data */
static void
test_lost(void)
{
	static const char *const q421[] = { "-Q", "RCPT", NULL };
	static const char *const qdot[] = { "-q", ".", NULL };
	struct run r;

	sink_start(q421, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.0.0", "127.0.0.1[127.0.0.1] said: 421 ");
	is_res(&r, 1, R_DEFER, "4.0.0", "127.0.0.1[127.0.0.1] said: 421 ");
	tap_ok(strstr(r.res[0].text, "(in reply to RCPT TO command)") != NULL,
	    "421 in reply to RCPT TO");
	run_free(&r);

	sink_start(qdot, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.4.2", "lost connection with 127.0.0.1"
	    "[127.0.0.1] while sending end of data -- message may be sent "
	    "more than once");
	is_res(&r, 1, R_DEFER, "4.4.2", "lost connection with ");
	run_free(&r);
}

/* test_timeouts - a server that does not answer in time */
static void
test_timeouts(void)
{
	/* Without -p the sink answers a pipelined DATA before the RCPT
	 * it holds back, out of order; one command at a time then. */
	static const char *const slow[] = { "-p", "-W", "RCPT:5", NULL };
	static const char *const slowdata[] = { "-p", "-w", "4", NULL };
	static const char *const busy[] = { "-m", "1", NULL };
	struct run r;
	long long t0;
	int hold;

	sink_start(slow, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	t0 = time(NULL);
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.4.2", "conversation with 127.0.0.1"
	    "[127.0.0.1] timed out while sending RCPT TO");
	is_res(&r, 1, R_DEFER, "4.4.2", "conversation with ");
	tap_ok(time(NULL) - t0 <= 4, "RCPT timeout is smtp_helo_timeout");
	run_free(&r);

	sink_start(slowdata, NULL);
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.4.2", "conversation with 127.0.0.1"
	    "[127.0.0.1] timed out while sending DATA command");
	run_free(&r);

	/* -m 1 and a session held open: connected, but never greeted. */
	sink_start(busy, NULL);
	hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_in sin = { .sin_family = AF_INET,
		    .sin_port = htons((unsigned short)sink_port),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		if (hold < 0 || connect(hold, (struct sockaddr *)&sin,
		    sizeof(sin)) < 0)
			tap_fatal("connect");
	}
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.4.2", "conversation with 127.0.0.1"
	    "[127.0.0.1] timed out while receiving the initial server greeting");
	close(hold);
	run_free(&r);
}

/* test_refused - nobody listens */
static void
test_refused(void)
{
	char want[128];
	struct run r;

	stop(&sink_pid);
	smtp_close_cached();
	sink_port = free_port();
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	snprintf(want, sizeof(want), "connect to 127.0.0.1[127.0.0.1]:%u: "
	    "Connection refused", sink_port);
	is_res(&r, 0, R_DEFER, "4.4.1", want);
	is_res(&r, 1, R_DEFER, "4.4.1", want);
	run_free(&r);
}

/* test_lmtp - LMTP over TCP and over a UNIX socket, one reply each */
static void
test_lmtp(void)
{
	static const char *const lmtp[] = { "-L", NULL };
	static const char *const ldot[] = { "-L", "-r", ".", NULL };
	char path[PATH_LEN], spec[PATH_LEN + 16], *dump;
	struct run r;

	sink_start(lmtp, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "lmtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.2.0", "250 2.2.0 Ok");
	is_res(&r, 1, R_SENT, "2.2.0", "250 2.2.0 Ok");
	smtp_close_cached();
	dump = dump_read();
	tap_ok(body_equal(dump) && strstr(dump, "X-Client-Proto: LMTP\n"),
	    "LMTP: the sink got the message intact");
	free(dump);
	run_free(&r);

	sink_start(ldot, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "lmtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.3.0", "127.0.0.1[127.0.0.1] said: 450 4.3.0 "
	    "Error: command failed (in reply to end of DATA command)");
	is_res(&r, 1, R_DEFER, "4.3.0", "127.0.0.1[127.0.0.1] said: 450 ");
	run_free(&r);

	snprintf(path, sizeof(path), "%s/lmtp.sock", work);
	sink_start(lmtp, path);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	snprintf(spec, sizeof(spec), "lmtp:unix:%s", path);
	deliver(&r, spec);
	is_res(&r, 0, R_SENT, "2.2.0", "250 2.2.0 Ok");
	is_res(&r, 1, R_SENT, "2.2.0", "250 2.2.0 Ok");
	tap_is(r.d.relay, path, "lmtp:unix relay is the path");
	smtp_close_cached();
	tap_ok(dump_count() == 1, "lmtp:unix delivered");
	run_free(&r);
}

/* test_unsafe - a CR or LF in the envelope never reaches the wire */
static void
test_unsafe(void)
{
	static const char *const opts[] = { NULL };
	struct run r;

	sink_start(opts, NULL);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	r.env.rcpt[1][4] = '\n';
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.3.0", "envelope holds bytes unsafe");
	is_res(&r, 1, R_DEFER, "4.3.0", "envelope holds bytes unsafe");
	smtp_close_cached();
	tap_ok(dump_count() == 0, "unsafe envelope: nothing sent");
	run_free(&r);
}

/* master_conf - main.cf and master.cf of the private Postfix in dir */
static void
master_conf(const char *dir, unsigned p1, unsigned p2)
{
	char path[PATH_LEN + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/main.cf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		tap_fatal("main.cf");
	fprintf(fp, "compatibility_level = 3.6\nqueue_directory = %s/q\n"
	    "data_directory = %s/data\nmail_owner = postfix\n"
	    "myhostname = backend.test\nmydestination =\n"
	    "mynetworks = 127.0.0.0/8\ninet_protocols = ipv4\n"
	    "smtpd_client_connection_count_limit = 0\n"
	    "smtpd_client_connection_rate_limit = 0\n"
	    "smtpd_proxy_filter = 127.0.0.1:%u\n"
	    "smtpd_relay_restrictions = permit_mynetworks, reject\n"
	    "smtpd_recipient_restrictions = check_recipient_access inline:{ "
	    "{later@example.com=450 4.2.0 try later} "
	    "{nobody@example.com=550 5.1.1 no such user} }\n"
	    "smtpd_authorized_xforward_hosts = 127.0.0.0/8\n"
	    "message_size_limit = 100000\nlocal_recipient_maps =\n"
	    "alias_maps =\nalias_database =\n", dir, dir, sink_port);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/master.cf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		tap_fatal("master.cf");
	fprintf(fp, "127.0.0.1:%u inet n - n - - smtpd\n127.0.0.1:%u inet n - "
	    "n - - smtpd -o message_size_limit=1000\nrewrite unix - - n - - "
	    "trivial-rewrite\n", p1, p2);
	fclose(fp);
}

/* master_start - a private Postfix: smtpd on p1 (and p2 with a 1000-byte
 * message_size_limit), proxying to the sink; 0, or -1 to skip */
static int
master_start(unsigned p1, unsigned p2)
{
	static char *argv[] = { MASTER, "-d", NULL };
	char dir[PATH_LEN], path[PATH_LEN + 64], env[PATH_LEN + 16];
	char *envp[] = { env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	static const char *const sub[] = { "q", "q/pid", "q/public",
	    "q/private", "data" };
	struct passwd *pw = getpwnam("postfix");
	size_t i;

	if (geteuid() != 0 || pw == NULL || access(MASTER, X_OK) != 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/postfix", work);
	snprintf(env, sizeof(env), "MAIL_CONFIG=%s", dir);
	if (mkdir(dir, 0755) < 0)
		tap_fatal("mkdir postfix");
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
		if (mkdir(path, 0755) < 0 || (i >= 2 && chown(path,
		    pw->pw_uid, (gid_t)-1) < 0))
			tap_fatal("postfix directories");
	}
	master_conf(dir, p1, p2);
	snprintf(path, sizeof(path), "%s/master.log", work);
	master_pid = spawn(argv, envp, path);
	for (i = 0; i < 500 && !probe(p1, NULL); i++)
		usleep(10000);
	if (i == 500)
		tap_fatal("postfix master did not start");
	return 0;
}

/* test_postfix - some recipients taken, some not; SIZE; XFORWARD */
static void
test_postfix(void)
{
	static const char *const opts[] = { NULL };
	static const char *const rcpt[] = { "<ok@example.com>",
	    "<later@example.com>", "<nobody@example.com>", "<ok2@example.com>" };
	unsigned p1, p2;
	char *dump, *log;
	struct run r;
	int i;

	sink_start(opts, NULL);
	for (i = 0, p1 = p2 = sink_port; i < 10 && (p1 == sink_port ||
	    p2 == sink_port || p1 == p2); i++) {
		p1 = free_port();
		p2 = free_port();
	}
	if (master_start(p1, p2) < 0) {
		tap_ok(1, "# SKIP Postfix cases need root and %s", MASTER);
		return;
	}
	spool_message(&r, rcpt, 4, "192.0.2.9");
	sink_port = p1;
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	is_res(&r, 1, R_DEFER, "4.2.0", "127.0.0.1[127.0.0.1] said: 450 4.2.0 "
	    "<later@example.com>: Recipient address rejected: try later "
	    "(in reply to RCPT TO command)");
	is_res(&r, 2, R_BOUNCE, "5.1.1", "127.0.0.1[127.0.0.1] said: 550 5.1.1 "
	    "<nobody@example.com>: Recipient address rejected: no such user "
	    "(in reply to RCPT TO command)");
	is_res(&r, 3, R_SENT, "2.0.0", "250 2.0.0 Ok");
	smtp_close_cached();
	dump = dump_read();
	tap_ok(dump && strstr(dump, "X-Rcpt-Args: <ok@example.com>\n"
	    "X-Rcpt-Args: <ok2@example.com>\n") && !strstr(dump, "later@"),
	    "only the accepted recipients reached the sink");
	log = slurp_log();
	tap_ok(strstr(log, "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.9 "
	    "HELO=client+2B") != NULL, "Postfix took our XFORWARD and passed "
	    "it on to the sink");
	free(log);
	free(dump);
	run_free(&r);

	spool_message(&r, rcpt, 1, "192.0.2.9");
	sink_port = p2;
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_BOUNCE, "5.3.4", "message size ");
	tap_ok(strstr(r.res[0].text, "exceeds size limit 1000 of server "
	    "127.0.0.1[127.0.0.1]") != NULL, "SIZE limit refused before MAIL");
	smtp_close_cached();
	run_free(&r);
	master_stop();
}

/* test_tls_levels - smtp-sink offers no STARTTLS: only may (and none)
 * talk to it; the rest defer 4.7.4 before MAIL */
static void
test_tls_levels(void)
{
	static const char *const opts[] = { NULL };
	static const enum tlslevel lv[] = { TLS_ENCRYPT, TLS_VERIFY,
	    TLS_FPRINT, TLS_NEXTHOP };
	struct run r;
	char *log;
	size_t i;

	sink_start(opts, NULL);
	for (i = 0; i < sizeof(lv) / sizeof(lv[0]); i++) {
		cf.smtp_tls_security_level = lv[i];
		spool_message(&r, RCPT2, 2, "192.0.2.1");
		/* "" on a name is verify */
		deliver(&r, lv[i] != TLS_NEXTHOP ? "smtp:[127.0.0.1]:%u" :
		    "smtp:localhost:%u");
		is_res(&r, 0, R_DEFER, "4.7.4", "TLS is required, but was not "
		    "offered by host ");
		is_res(&r, 1, R_DEFER, "4.7.4", "TLS is required");
		run_free(&r);
	}
	smtp_close_cached();
	log = slurp_log();
	tap_ok(strstr(log, "MAIL") == NULL && strstr(log, "QUIT\n") != NULL,
	    "no STARTTLS: QUIT, never MAIL");
	free(log);
	tap_ok(dump_count() == 0, "no STARTTLS, TLS required: nothing sent");

	cf.smtp_tls_security_level = TLS_NEXTHOP;
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	run_free(&r);
	cf.smtp_tls_security_level = TLS_NONE;
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:localhost:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	run_free(&r);
	smtp_close_cached();
	tap_ok(dump_count() == 2, "\"\" on [address] is may; none: plaintext");
	cf.smtp_tls_security_level = TLS_MAY;
}

/* write_file - a file with text and mode */
static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0 ||
	    chmod(path, mode) < 0)
		tap_fatal(path);
}

/* test_auth_plaintext - smtp-sink offers AUTH but no STARTTLS */
static void
test_auth_plaintext(void)
{
	static const char *const opts[] = { NULL };
	char path[PATH_LEN + 16], text[256], *log;
	struct run r;

	snprintf(path, sizeof(path), "%s/sasl_passwd", work);
	set_str(&cf.smtp_sasl_password_maps, path);
	sink_start(opts, NULL);
	snprintf(text, sizeof(text), "# test\n[127.0.0.1]:%u user:SeCrEt\n",
	    sink_port);
	write_file(path, text, 0600);
	spool_message(&r, RCPT2, 2, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.7.0", "SASL credentials for 127.0.0.1"
	    "[127.0.0.1] not sent without TLS");
	is_res(&r, 1, R_DEFER, "4.7.0", "SASL credentials for ");
	run_free(&r);
	smtp_close_cached();
	log = slurp_log();
	tap_ok(strstr(log, "AUTH") == NULL && strstr(log, "MAIL") == NULL,
	    "credentials without TLS: no AUTH, no MAIL");
	free(log);

	/* Credentials for another next hop only: AUTH is not needed. */
	write_file(path, "[127.0.0.1]:1 user:SeCrEt\nlocalhost user:x\n", 0600);
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok");
	run_free(&r);
	smtp_close_cached();

	/* A file others may read is refused. */
	write_file(path, text, 0640);
	spool_message(&r, RCPT2, 1, "192.0.2.1");
	deliver(&r, "smtp:[127.0.0.1]:%u");
	is_res(&r, 0, R_DEFER, "4.7.0", "SASL password file refused: ");
	tap_ok(strstr(r.res[0].text, "mode 0640") != NULL &&
	    strstr(r.res[0].text, "SeCrEt") == NULL, "the reason: its mode");
	run_free(&r);
	smtp_close_cached();
	tap_ok(dump_count() == 1, "AUTH cases: one message sent");
	set_str(&cf.smtp_sasl_password_maps, "");
}

int
main(void)
{
	tap_on_fatal(cleanup);
	/* Orphans of the Postfix master come to us, to be reaped. */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGALRM, on_alarm);
	alarm(60);
	if (access(SINK, X_OK) != 0) {
		printf("1..0 # SKIP %s not installed\n", SINK);
		return 0;
	}
	setup();
	test_pipelined();
	test_reuse();
	test_no_pipelining();
	test_reject("-r", "RCPT", R_DEFER, "4.3.0", "RCPT TO");
	test_reject("-f", "RCPT", R_BOUNCE, "5.3.0", "RCPT TO");
	test_reject("-r", "MAIL", R_DEFER, "4.3.0", "MAIL FROM");
	test_reject("-f", "MAIL", R_BOUNCE, "5.3.0", "MAIL FROM");
	test_reject("-r", "DATA", R_DEFER, "4.3.0", "DATA");
	test_reject("-f", ".", R_BOUNCE, "5.3.0", "end of DATA");
	test_xforward_refused();
	test_greeting();
	test_helo_fallback();
	test_lost();
	test_timeouts();
	test_refused();
	test_lmtp();
	test_unsafe();
	test_postfix();
	test_tls_levels();
	test_auth_plaintext();
	cleanup();
	return tap_done();
}
