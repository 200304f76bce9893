/*
 * t_smtp_pipe.c - deliver_smtp()'s reply counting against a scripted
 * server: every reply read for every command sent, whatever it says
 * (a refused XFORWARD, a refused MAIL, LMTP's replies after DATA), and
 * a surplus reply seen for what it is.
 *
 * Usage: t_smtp_pipe
 *
 * The server is a child of this test, forked onto a 127.0.0.1 socket
 * whose port the kernel chose. For each connection in turn it plays a
 * script of (command, reply) steps and writes every command line it
 * reads to a transcript, then reads on until the client hangs up
 * ("eof"). Like Postfix's smtpd, it holds its replies back while more
 * pipelined commands wait to be read, so the replies to a group leave
 * in one write. The transcript, the verdicts and smapd's log (a file,
 * log_open) are compared with what must have happened. The child's
 * reads time out after 5 s, it is stopped by its PID, and an alarm
 * ends the whole run after 60 s. Spool files are made with common/
 * spool.h's writer in a mkdtemp(3) directory and read back as smapd
 * does.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#define NRCPT_MAX	3
#define LINE_MAX_T	1024	/* one command line in the child */
#define BODY_LINES_MAX	10000

/* One step of a script: read a line starting with cmd ("" on connect,
 * "." reads the message up to its end), then send reply (NULL: none).
 * A step with cmd NULL ends the script. */
struct step {
	const char *cmd;
	const char *reply;
};

/* The child's view of a connection. */
struct peer {
	int fd;
	size_t inlen, outlen;
	char in[8192];
	char out[8192];
};

/* One message to deliver and what came of it. */
struct run {
	struct envelope env;
	int fd;
	size_t idx[NRCPT_MAX];
	struct rcpt_result res[NRCPT_MAX];
	struct delivery d;
};

static char work[] = "/tmp/t_smtp_pipe.XXXXXX";
static char transcript[PATH_LEN], ourlog[PATH_LEN];
static struct conf cf;
static pid_t server_pid = -1;
static unsigned server_port;

static const char *const RCPT[NRCPT_MAX] = { "<one@example.com>",
    "<two@example.com>", "<three@example.com>" };

#define GREET	{ "", "220 script.test ESMTP\r\n" }
#define EHLO_PX	{ "EHLO ", "250-script.test\r\n250-PIPELINING\r\n" \
		    "250 XFORWARD NAME ADDR PROTO HELO\r\n" }
#define EHLO_P	{ "EHLO ", "250-script.test\r\n250 PIPELINING\r\n" }
#define MAIL_OK	{ "MAIL FROM:", "250 2.1.0 Ok\r\n" }
#define RCPT_OK	{ "RCPT TO:", "250 2.1.5 Ok\r\n" }
#define DATA_OK	{ "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n" }
#define QUIT_OK	{ "QUIT", "221 2.0.0 Bye\r\n" }
#define END	{ NULL, NULL }

static void	on_alarm(int);
static void	stop_server(void);
static void	cleanup(void);
static void	setup(void);
static int	peer_line(struct peer *, char *, size_t);
static void	peer_flush(struct peer *);
static int	peer_read(struct peer *, char *, size_t);
static int	read_body(struct peer *, char *, size_t);
static int	play(struct peer *, const struct step *, FILE *);
static void	drain(struct peer *, FILE *);
static void	serve(int, const struct step *const []);
static void	server_start(const struct step *const []);
static char	*server_done(void);
static void	spool_message(struct run *, const char *, size_t);
static void	deliver(struct run *, const char *);
static void	run_free(struct run *);
static int	count(const char *, const char *);
static char	*log_take(void);
static void	is_res(const struct run *, size_t, enum rstatus, const char *,
		    const char *);
static void	test_xforward_refused(void);
static void	test_xforward_421(void);
static void	test_xforward_off(void);
static void	test_mail_refused(void);
static void	test_lmtp(void);
static void	test_surplus_end(void);
static void	test_surplus_before(const char *, const struct step *,
		    const char *, const char *);

/* on_alarm - the run took too long: stop the server, fail */
static void
on_alarm(int sig)
{
	(void)sig;
	if (server_pid > 0)
		kill(server_pid, SIGKILL);
	_exit(1);
}

/* stop_server - SIGKILL the child, if it is still there, and reap it */
static void
stop_server(void)
{
	int status;

	if (server_pid <= 0)
		return;
	kill(server_pid, SIGKILL);
	(void)waitpid(server_pid, &status, 0);
	server_pid = -1;
}

/* cleanup - stop the server, remove the work directory */
static void
cleanup(void)
{
	stop_server();
	smtp_close_cached();
	if (chdir("/") == 0 && work[strlen(work) - 1] != 'X')
		(void)tap_rmtree(work);
	conf_free(&cf);
}

/* setup - work dir with spool/{tmp,new} (cwd), smapd's log, conf */
static void
setup(void)
{
	char path[PATH_LEN];

	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	snprintf(transcript, sizeof(transcript), "%s/transcript", work);
	snprintf(ourlog, sizeof(ourlog), "%s/smtp.log", work);
	snprintf(path, sizeof(path), "%s/spool", work);
	if (mkdir(path, 0700) < 0 || chdir(path) < 0 ||
	    mkdir(LAYOUT_TMP, 0700) < 0 || mkdir(LAYOUT_NEW, 0700) < 0)
		tap_fatal("work directory");
	if (log_open("smap/smtp", "mail", ourlog) < 0)
		tap_fatal("log_open");
	if (conf_defaults(&cf) != 0)
		tap_fatal("conf_defaults");
	free(cf.smtp_helo_name);
	cf.smtp_helo_name = strdup("smapd.test");
	cf.smtp_tls_security_level = TLS_MAY;	/* no STARTTLS here */
	if (cf.smtp_helo_name == NULL)
		tap_fatal("strdup");
	cf.smtp_connect_timeout = 5;
	cf.smtp_helo_timeout = 5;
	cf.smtp_data_done_timeout = 5;
}

/* peer_line - a whole line already in p->in, moved to buf without its
 * CRLF: 1; 0 none yet; -1 longer than LINE_MAX_T */
static int
peer_line(struct peer *p, char *buf, size_t len)
{
	char *nl = memchr(p->in, '\n', p->inlen);
	size_t n;

	if (nl == NULL)
		return p->inlen >= LINE_MAX_T ? -1 : 0;
	n = (size_t)(nl - p->in) + 1;
	if (n >= len || n >= LINE_MAX_T)
		return -1;
	memcpy(buf, p->in, n);
	buf[n - (n > 1 && buf[n - 2] == '\r' ? 2 : 1)] = '\0';
	memmove(p->in, p->in + n, p->inlen - n);
	p->inlen -= n;
	return 1;
}

/* peer_flush - send the replies held back */
static void
peer_flush(struct peer *p)
{
	if (p->outlen > 0)
		(void)send(p->fd, p->out, p->outlen, MSG_NOSIGNAL);
	p->outlen = 0;
}

/* peer_read - the next line; the replies held back leave first when no
 * line is waiting. 0, or -1: EOF, timeout, overlong */
static int
peer_read(struct peer *p, char *buf, size_t len)
{
	ssize_t got;
	int rc;

	while ((rc = peer_line(p, buf, len)) == 0) {
		peer_flush(p);
		got = recv(p->fd, p->in + p->inlen, sizeof(p->in) - p->inlen,
		    0);
		if (got <= 0)
			return -1;
		p->inlen += (size_t)got;
	}
	return rc > 0 ? 0 : -1;
}

/* read_body - the message lines up to "." (in buf); 0 or -1 */
static int
read_body(struct peer *p, char *buf, size_t len)
{
	int i;

	for (i = 0; i < BODY_LINES_MAX; i++) {
		if (peer_read(p, buf, len) < 0)
			return -1;
		if (strcmp(buf, ".") == 0)
			return 0;
	}
	return -1;
}

/* play - one connection's script; 0, or -1 when it went another way */
static int
play(struct peer *p, const struct step *st, FILE *tr)
{
	char line[LINE_MAX_T];
	size_t n;

	for (; st->cmd != NULL; st++) {
		if (st->cmd[0] != '\0') {
			if ((strcmp(st->cmd, ".") == 0 ? read_body(p, line,
			    sizeof(line)) : peer_read(p, line,
			    sizeof(line))) < 0) {
				fprintf(tr, "lost, waiting for %s\n", st->cmd);
				return -1;
			}
			fprintf(tr, "%s\n", line);
			if (strncmp(line, st->cmd, strlen(st->cmd)) != 0) {
				fprintf(tr, "unexpected: wanted %s\n", st->cmd);
				return -1;
			}
		}
		if (st->reply == NULL)
			continue;
		n = strlen(st->reply);
		if (n > sizeof(p->out) - p->outlen)
			return -1;
		memcpy(p->out + p->outlen, st->reply, n);
		p->outlen += n;
	}
	peer_flush(p);
	return 0;
}

/* drain - after the script: whatever else comes, until EOF */
static void
drain(struct peer *p, FILE *tr)
{
	char line[LINE_MAX_T];
	int i;

	for (i = 0; i < BODY_LINES_MAX; i++) {
		if (peer_read(p, line, sizeof(line)) < 0) {
			fprintf(tr, p->inlen > 0 ? "lost\n" : "eof\n");
			return;
		}
		fprintf(tr, "extra: %s\n", line);
	}
}

/* serve - the child: one connection per script, in order */
static void
serve(int lfd, const struct step *const conns[])
{
	struct timeval tv = { .tv_sec = 5 };
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	static struct peer p;
	FILE *tr = fopen(transcript, "w");
	size_t i;

	if (tr == NULL)
		_exit(2);
	setvbuf(tr, NULL, _IOLBF, 0);
	for (i = 0; conns[i] != NULL; i++) {
		memset(&p, 0, sizeof(p));
		if (poll(&pfd, 1, 5000) != 1 || (p.fd = accept(lfd, NULL,
		    NULL)) < 0) {
			fprintf(tr, "no connection\n");
			_exit(1);
		}
		(void)setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fprintf(tr, "-- connection\n");
		if (play(&p, conns[i], tr) == 0)
			drain(&p, tr);
		close(p.fd);
	}
	_exit(0);
}

/* server_start - the scripted server for conns, on a new port */
static void
server_start(const struct step *const conns[])
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		tap_fatal("listen");
	server_port = ntohs(sin.sin_port);
	smtp_close_cached();
	if (truncate(ourlog, 0) < 0)
		tap_fatal("truncate");
	fflush(stdout);
	if ((server_pid = fork()) < 0)
		tap_fatal("fork");
	if (server_pid == 0)
		serve(lfd, conns);
	close(lfd);
}

/* server_done - close the cached connection, wait (5 s at most) for
 * the child to finish its scripts; the transcript */
static char *
server_done(void)
{
	int i, status;
	char *s;

	smtp_close_cached();
	for (i = 0; i < 500; i++) {
		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			server_pid = -1;
			break;
		}
		usleep(10000);
	}
	stop_server();
	s = tap_slurp(transcript, NULL);
	return s ? s : strdup("");
}

/* spool_message - write, commit and read back one spool file with the
 * first n recipients of RCPT */
static void
spool_message(struct run *r, const char *client, size_t n)
{
	static const char body[] = "Subject: pipe test\r\n\r\nbody\r\n";
	struct envelope e;
	char id[SPOOL_ID_MAX + 1] = "", path[64], why[256];
	int fd;
	size_t i;

	memset(&e, 0, sizeof(e));
	memset(r, 0, sizeof(*r));
	e.arrival = 1795412345;
	snprintf(e.client, sizeof(e.client), "%s", client);
	snprintf(e.helo, sizeof(e.helo), "client.example");
	snprintf(e.proto, sizeof(e.proto), "ESMTP");
	snprintf(e.sender, sizeof(e.sender), "<sender@example.org>");
	e.rcpt = (char **)RCPT;
	e.nrcpt = n;
	e.size = (long long)sizeof(body) - 1;
	if ((fd = layout_create(id, sizeof(id))) < 0)
		tap_fatal("layout_create");
	snprintf(e.id, sizeof(e.id), "%s", id);
	if (spool_write_envelope(fd, &e) < 0 ||
	    spool_write(fd, body, sizeof(body) - 1) < 0 ||
	    spool_write_final(fd, &e) < 0 || layout_commit(fd, id) < 0)
		tap_fatal("spool file");
	snprintf(path, sizeof(path), "%s/%s", LAYOUT_NEW, id);
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    spool_read_envelope(r->fd, &r->env, 100, why, sizeof(why)) < 0)
		tap_fatal("spool read");
	(void)unlink(path);
	for (i = 0; i < n; i++)
		r->idx[i] = i;
	r->d = (struct delivery){ .env = &r->env, .fd = r->fd, .idx = r->idx,
	    .n = n, .res = r->res };
}

/* deliver - deliver_smtp to kind ("smtp", "lmtp") on the server */
static void
deliver(struct run *r, const char *kind)
{
	struct transport t;
	char spec[64], why[256];

	snprintf(spec, sizeof(spec), "%s:[127.0.0.1]:%u", kind, server_port);
	if (transport_parse(spec, &t, why, sizeof(why)) < 0)
		tap_fatal("transport_parse");
	deliver_smtp(&t, &cf, &r->d);
}

/* run_free - close and free what spool_message made */
static void
run_free(struct run *r)
{
	close(r->fd);
	spool_free_envelope(&r->env);
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

/* log_take - smapd's log since server_start */
static char *
log_take(void)
{
	char *s = tap_slurp(ourlog, NULL);

	return s ? s : strdup("");
}

/* is_res - recipient i's status, dsn and text (exactly) */
static void
is_res(const struct run *r, size_t i, enum rstatus st, const char *dsn,
    const char *text)
{
	const struct rcpt_result *x = &r->res[i];
	int ok = x->status == st && strcmp(x->dsn, dsn) == 0 &&
	    strcmp(x->text, text) == 0;

	tap_ok(ok, "rcpt %zu: status %d, %s, \"%.70s\"", i, st, dsn, text);
	if (!ok)
		tap_diag("got status %d, %s, \"%s\"", x->status, x->dsn,
		    x->text);
}

/*
 * test_xforward_refused - what a Postfix without IPv6 says to an IPv6
 * client's XFORWARD, in one write with the replies to MAIL, RCPT and
 * DATA: the message is delivered, the next one on the connection goes
 * without XFORWARD, one warning says why, and no reply is left over.
 */
static void
test_xforward_refused(void)
{
	static const struct step s[] = { GREET, EHLO_PX,
	    { "XFORWARD ", "501 5.5.4 Bad ADDR syntax: IPV6:::1\r\n" },
	    MAIL_OK, RCPT_OK, RCPT_OK, DATA_OK,
	    { ".", "250 2.0.0 Ok: queued as ONE\r\n" },
	    MAIL_OK, RCPT_OK, DATA_OK,
	    { ".", "250 2.0.0 Ok: queued as TWO\r\n" }, QUIT_OK, END };
	static const struct step *const conns[] = { s, NULL };
	struct run r1, r2;
	char want[256], *tr, *log;

	server_start(conns);
	spool_message(&r1, "::1", 2);
	deliver(&r1, "smtp");
	spool_message(&r2, "::1", 1);
	deliver(&r2, "smtp");
	is_res(&r1, 0, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as ONE");
	is_res(&r1, 1, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as ONE");
	is_res(&r2, 0, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as TWO");
	tr = server_done();
	tap_is(tr, "-- connection\nEHLO smapd.test\nXFORWARD HELO=client."
	    "example ADDR=IPV6:::1 PROTO=ESMTP\nMAIL FROM:<sender@example.org>"
	    "\nRCPT TO:<one@example.com>\nRCPT TO:<two@example.com>\nDATA\n.\n"
	    "MAIL FROM:<sender@example.org>\nRCPT TO:<one@example.com>\nDATA\n"
	    ".\nQUIT\neof\n", "XFORWARD refused: both messages over one "
	    "connection, the second without XFORWARD");
	log = log_take();
	snprintf(want, sizeof(want), "warning: %s: 127.0.0.1[127.0.0.1] "
	    "refused XFORWARD: 501 5.5.4 Bad ADDR syntax: IPV6:::1; going on "
	    "without it on this connection\n", r1.env.id);
	if (!tap_ok(count(log, want) == 1 && count(log, "warning") == 1,
	    "XFORWARD refused: one warning, with the server's reply; none "
	    "of a surplus"))
		tap_diag("log: %s", log);
	free(log);
	free(tr);
	run_free(&r1);
	run_free(&r2);
}

/* test_xforward_421 - 421 to XFORWARD is the server going away: every
 * recipient deferred at once, no wait for replies that cannot come */
static void
test_xforward_421(void)
{
	static const struct step s[] = { GREET, EHLO_PX,
	    { "XFORWARD ", "421 4.3.2 Service shutting down\r\n" },
	    { "MAIL FROM:", NULL }, { "RCPT TO:", NULL }, { "DATA", NULL },
	    END };
	static const struct step *const conns[] = { s, NULL };
	struct run r;
	time_t t0;
	char *tr, *log;

	server_start(conns);
	spool_message(&r, "192.0.2.1", 1);
	t0 = time(NULL);
	deliver(&r, "smtp");
	tap_ok(time(NULL) - t0 < cf.smtp_helo_timeout - 2, "XFORWARD 421: "
	    "no wait for the replies to MAIL, RCPT, DATA");
	is_res(&r, 0, R_DEFER, "4.3.2", "127.0.0.1[127.0.0.1] said: 421 4.3.2 "
	    "Service shutting down (in reply to XFORWARD command)");
	tr = server_done();
	tap_is(tr, "-- connection\nEHLO smapd.test\nXFORWARD HELO=client."
	    "example ADDR=192.0.2.1 PROTO=ESMTP\nMAIL FROM:<sender@example.org>"
	    "\nRCPT TO:<one@example.com>\nDATA\neof\n",
	    "XFORWARD 421: the connection closed, no QUIT");
	log = log_take();
	tap_ok(strstr(log, "warning") == NULL, "XFORWARD 421: no warning");
	free(log);
	free(tr);
	run_free(&r);
}

/* test_xforward_off - smtp_send_xforward_command = no: not sent, though
 * offered */
static void
test_xforward_off(void)
{
	static const struct step s[] = { GREET, EHLO_PX, MAIL_OK, RCPT_OK,
	    DATA_OK, { ".", "250 2.0.0 Ok: queued as OFF\r\n" }, QUIT_OK,
	    END };
	static const struct step *const conns[] = { s, NULL };
	struct run r;
	char *tr;

	server_start(conns);
	cf.smtp_send_xforward_command = 0;
	spool_message(&r, "192.0.2.1", 1);
	deliver(&r, "smtp");
	cf.smtp_send_xforward_command = 1;
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as OFF");
	tr = server_done();
	tap_is(tr, "-- connection\nEHLO smapd.test\nMAIL FROM:<sender@example"
	    ".org>\nRCPT TO:<one@example.com>\nDATA\n.\nQUIT\neof\n",
	    "smtp_send_xforward_command = no: no XFORWARD");
	free(tr);
	run_free(&r);
}

/* test_mail_refused - MAIL refused in a pipelined group: the replies
 * to the RCPTs and DATA behind it are read too, RSET, and the next
 * message on the same connection gets its own replies */
static void
test_mail_refused(void)
{
	static const struct step s[] = { GREET, EHLO_P,
	    { "MAIL FROM:", "550 5.7.1 <sender@example.org>: Sender address "
	    "rejected\r\n" },
	    { "RCPT TO:", "503 5.5.1 Error: need MAIL command\r\n" },
	    { "RCPT TO:", "503 5.5.1 Error: need MAIL command\r\n" },
	    { "DATA", "503 5.5.1 Error: need MAIL command\r\n" },
	    { "RSET", "250 2.0.0 Ok\r\n" }, MAIL_OK, RCPT_OK, DATA_OK,
	    { ".", "250 2.0.0 Ok: queued as TWO\r\n" }, QUIT_OK, END };
	static const struct step *const conns[] = { s, NULL };
	const char *want = "127.0.0.1[127.0.0.1] said: 550 5.7.1 <sender@"
	    "example.org>: Sender address rejected (in reply to MAIL FROM "
	    "command)";
	struct run r1, r2;
	char *tr, *log;

	server_start(conns);
	spool_message(&r1, "192.0.2.1", 2);
	deliver(&r1, "smtp");
	spool_message(&r2, "192.0.2.1", 1);
	deliver(&r2, "smtp");
	is_res(&r1, 0, R_BOUNCE, "5.7.1", want);
	is_res(&r1, 1, R_BOUNCE, "5.7.1", want);
	is_res(&r2, 0, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as TWO");
	tr = server_done();
	tap_is(tr, "-- connection\nEHLO smapd.test\nMAIL FROM:<sender@example"
	    ".org>\nRCPT TO:<one@example.com>\nRCPT TO:<two@example.com>\n"
	    "DATA\nRSET\nMAIL FROM:<sender@example.org>\nRCPT TO:<one@"
	    "example.com>\nDATA\n.\nQUIT\neof\n", "MAIL refused: every reply "
	    "read, RSET, the connection reused");
	log = log_take();
	tap_ok(strstr(log, "warning") == NULL, "MAIL refused: no warning");
	free(log);
	free(tr);
	run_free(&r1);
	run_free(&r2);
}

/* test_lmtp - after DATA, one reply per accepted recipient, no more, no
 * fewer: the next message on the connection is in step */
static void
test_lmtp(void)
{
	static const struct step s[] = {
	    { "", "220 script.test LMTP\r\n" },
	    { "LHLO ", "250-script.test\r\n250 PIPELINING\r\n" }, MAIL_OK,
	    RCPT_OK, { "RCPT TO:", "550 5.1.1 <two@example.com>: no such "
	    "user\r\n" }, RCPT_OK, DATA_OK,
	    { ".", "250 2.0.0 <one@example.com> Ok\r\n452 4.2.2 "
	    "<three@example.com> over quota\r\n" }, MAIL_OK, RCPT_OK,
	    DATA_OK, { ".", "250 2.0.0 <one@example.com> Ok again\r\n" },
	    QUIT_OK, END };
	static const struct step *const conns[] = { s, NULL };
	struct run r1, r2;
	char *tr, *log;

	server_start(conns);
	spool_message(&r1, "192.0.2.1", 3);
	deliver(&r1, "lmtp");
	spool_message(&r2, "192.0.2.1", 1);
	deliver(&r2, "lmtp");
	is_res(&r1, 0, R_SENT, "2.0.0", "250 2.0.0 <one@example.com> Ok");
	is_res(&r1, 1, R_BOUNCE, "5.1.1", "127.0.0.1[127.0.0.1] said: 550 "
	    "5.1.1 <two@example.com>: no such user (in reply to RCPT TO "
	    "command)");
	is_res(&r1, 2, R_DEFER, "4.2.2", "127.0.0.1[127.0.0.1] said: 452 "
	    "4.2.2 <three@example.com> over quota (in reply to end of DATA "
	    "command)");
	is_res(&r2, 0, R_SENT, "2.0.0", "250 2.0.0 <one@example.com> Ok again");
	tr = server_done();
	tap_ok(count(tr, "\nMAIL FROM:") == 2 && strstr(tr, ".\nQUIT\neof\n"),
	    "LMTP: one connection for both, QUIT at the end");
	log = log_take();
	tap_ok(strstr(log, "warning") == NULL, "LMTP: no warning");
	free(log);
	free(tr);
	run_free(&r1);
	run_free(&r2);
}

/* test_surplus_end - a second reply to "." is a surplus: the verdict
 * stands, one warning, and the connection is not reused (no QUIT) */
static void
test_surplus_end(void)
{
	static const struct step s[] = { GREET, EHLO_P, MAIL_OK, RCPT_OK,
	    DATA_OK, { ".", "250 2.0.0 Ok: queued as ONE\r\n250 2.0.0 Ok: "
	    "surplus\r\n" }, END };
	static const struct step *const conns[] = { s, NULL };
	struct run r;
	char *tr, *log;

	server_start(conns);
	spool_message(&r, "192.0.2.1", 1);
	deliver(&r, "smtp");
	is_res(&r, 0, R_SENT, "2.0.0", "250 2.0.0 Ok: queued as ONE");
	tr = server_done();
	tap_is(tr, "-- connection\nEHLO smapd.test\nMAIL FROM:<sender@example"
	    ".org>\nRCPT TO:<one@example.com>\nDATA\n.\neof\n",
	    "surplus after \".\": the connection closed, no QUIT");
	log = log_take();
	tap_ok(count(log, "warning: 127.0.0.1[127.0.0.1] sent more replies "
	    "than commands\n") == 1 && count(log, "warning") == 1,
	    "surplus after \".\": said once");
	free(log);
	free(tr);
	run_free(&r);
}

/* test_surplus_before - an extra reply waiting before smapd writes
 * would pass for the answer to what it writes next: nothing more is
 * written, the recipient is deferred, one warning */
static void
test_surplus_before(const char *what, const struct step *s,
    const char *stage, const char *want)
{
	const struct step *const conns[] = { s, NULL };
	char text[256], *tr, *log;
	struct run r;

	server_start(conns);
	spool_message(&r, "192.0.2.1", 1);
	deliver(&r, "smtp");
	snprintf(text, sizeof(text), "protocol error: 127.0.0.1[127.0.0.1] "
	    "sent more replies than commands while %s", stage);
	is_res(&r, 0, R_DEFER, "4.4.2", text);
	tr = server_done();
	tap_is(tr, want, "surplus %s: nothing written after it", what);
	log = log_take();
	tap_ok(count(log, "warning: 127.0.0.1[127.0.0.1] sent more replies "
	    "than commands\n") == 1 && count(log, "warning") == 1,
	    "surplus %s: said once", what);
	free(log);
	free(tr);
	run_free(&r);
}

int
main(void)
{
	static const struct step ehlo2[] = { GREET, { "EHLO ",
	    "250-script.test\r\n250 PIPELINING\r\n250 2.0.0 extra\r\n" },
	    END };
	static const struct step data2[] = { GREET, EHLO_P, MAIL_OK, RCPT_OK,
	    { "DATA", "354 go ahead\r\n250 2.0.0 Ok: not yet\r\n" }, END };

	tap_on_fatal(cleanup);
	signal(SIGALRM, on_alarm);
	alarm(60);
	setup();
	test_xforward_refused();
	test_xforward_421();
	test_xforward_off();
	test_mail_refused();
	test_lmtp();
	test_surplus_end();
	test_surplus_before("after EHLO", ehlo2, "sending MAIL FROM",
	    "-- connection\nEHLO smapd.test\neof\n");
	test_surplus_before("after 354", data2, "sending message body",
	    "-- connection\nEHLO smapd.test\nMAIL FROM:<sender@example.org>\n"
	    "RCPT TO:<one@example.com>\nDATA\neof\n");
	cleanup();
	return tap_done();
}
