/*
 * smap-sendmail.c - smap-sendmail: the sendmail command of a host whose
 * mail leaves through its own smap (see smap-sendmail.8).
 *
 * Reads the caller's options and message and hands the message to smap
 * over SMTP at submit_server (submit.c), so that it goes through the
 * same receiver and the same durable spool as mail from the network.
 * It holds no privilege (it refuses to run set-uid, set-gid or with
 * file capabilities), runs no daemon and writes no file; -bp and -q run
 * smapq.
 *
 * TRUST: the command line and the message are the caller's: trusted to
 * say what the caller wants, not to be well formed, and bounded
 * (submit_msg.c, submit_addr.c). Only root and smapd_user may set any
 * envelope sender; anyone else may give their own address or the null
 * sender, and any other -f is replaced by their own (a warning says
 * so). The configuration is root's, read by conf.c: a -C file of a
 * caller other than root must be owned by root and writable by no one
 * else, or it could name a log file and a server of the caller's
 * choosing (a -C passed on by a web application: the CVE-2016-10033
 * class, which the refused -X and -O are for sendmail). The environment
 * is not read, but for TZ (Date:).
 */
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "submit.h"
#include "submit_addr.h"
#include "submit_msg.h"

#define PROG "smap-sendmail"
#define FULLNAME_MAX 256	/* -F */
#define LOGIN_MAX 64
#define OPTSTRING "+A:B:C:F:L:N:R:UV:b:f:h:imno:q::r:tv"

enum mode { M_SEND, M_LIST, M_FLUSH, M_ALIASES };

struct opts {
	const char *conf;	/* -C */
	const char *sender;	/* -f, -r; NULL: the user's own address */
	const char *fullname;	/* -F; NULL: from the passwd entry */
	int extract;		/* -t */
	int ignore_dots;	/* -i, -oi */
	enum mode mode;
	char **rcpt;		/* the arguments */
	int nrcpt;
};

/* The caller, from the passwd entry of the real uid. */
struct me {
	uid_t uid;
	char login[LOGIN_MAX];
	char gecos[FROM_NAME_MAX];
	int trusted;		/* root or smapd_user */
	struct addr own;	/* login@myhostname */
};

/* usage - the synopsis; returns EX_USAGE */
static int
usage(void)
{
	fprintf(stderr, "usage: " PROG " [-t] [-i] [-f sender] [-F name] "
	    "[-C config] [--] [recipient ...] <message\n"
	    "       " PROG " -bp | -q [-C config]\n"
	    "accepted and ignored: -oi -oem -oep -oeq -oew -odb -odi -odq -om "
	    "-v -n -m -U\n    -B 7BIT|8BITMIME -N dsn -R hdrs|full -V envid "
	    "-h hops -L tag -A c|m -bm\n");
	return EX_USAGE;
}

/* bad_value - an option with a value we do not take */
static int
bad_value(int ch, const char *arg, const char *want)
{
	fprintf(stderr, PROG ": -%c %s: %s\n", ch, arg, want);
	return usage();
}

/* dsn_notify - -N never, or a list of success, failure and delay */
static int
dsn_notify(const char *s)
{
	char buf[64], *w, *save = NULL;

	if (strcasecmp(s, "never") == 0)
		return 0;
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf) || !*s)
		return -1;
	for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
		if (strcasecmp(w, "success") != 0 &&
		    strcasecmp(w, "failure") != 0 && strcasecmp(w, "delay") != 0)
			return -1;
	return s[strlen(s) - 1] == ',' || s[0] == ',' ? -1 : 0;
}

/* word_ok - printable ASCII without spaces, 1..max bytes */
static int
word_ok(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || i >= max)
			return 0;
	return i > 0;
}

/* opt_o - -oX: the sendmail options that mean something to callers */
static int
opt_o(struct opts *o, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		o->ignore_dots = 1;
	else if (strcmp(arg, "m") == 0 ||
	    (arg[0] == 'e' && arg[1] && strchr("mpqwe", arg[1]) && !arg[2]) ||
	    (arg[0] == 'd' && arg[1] && strchr("biq", arg[1]) && !arg[2]))
		return 0;
	else
		return bad_value('o', arg, "not a sendmail option "
		    PROG " takes (-oi, -oe[mpqwe], -od[biq], -om)");
	return 0;
}

/* opt_b - -bX: send (m), list the queue (p), "newaliases" (i) */
static int
opt_b(struct opts *o, const char *arg)
{
	if (strcmp(arg, "m") == 0)
		o->mode = M_SEND;
	else if (strcmp(arg, "p") == 0)
		o->mode = M_LIST;
	else if (strcmp(arg, "i") == 0)
		o->mode = M_ALIASES;
	else
		return bad_value('b', arg, "not supported (only -bm, -bp and "
		    "-bi); there is no daemon and no SMTP on standard input: "
		    "smap is the SMTP server");
	return 0;
}

/* opt_ignored - options taken and checked, but without effect */
static int
opt_ignored(int ch, const char *arg)
{
	if (ch == 'B' && strcasecmp(arg, "7BIT") != 0 &&
	    strcasecmp(arg, "8BITMIME") != 0)
		return bad_value(ch, arg, "7BIT or 8BITMIME");
	if (ch == 'N' && dsn_notify(arg) < 0)
		return bad_value(ch, arg, "never, or success,failure,delay");
	if (ch == 'R' && strcasecmp(arg, "hdrs") != 0 &&
	    strcasecmp(arg, "full") != 0)
		return bad_value(ch, arg, "hdrs or full");
	if (ch == 'h' && strspn(arg, "0123456789") != strlen(arg))
		return bad_value(ch, arg, "a number");
	if ((ch == 'V' || ch == 'L') && !word_ok(arg, 100))
		return bad_value(ch, arg, "printable ASCII, 1 to 100 bytes");
	if (ch == 'A' && strcmp(arg, "c") != 0 && strcmp(arg, "m") != 0)
		return bad_value(ch, arg, "c or m");
	return 0;
}

/* one_opt - one option letter and its value */
static int
one_opt(struct opts *o, int ch, const char *arg)
{
	switch (ch) {
	case 'C':
		o->conf = arg;
		return 0;
	case 'f':
	case 'r':
		o->sender = arg;
		return 0;
	case 'F':
		o->fullname = arg;
		return strlen(arg) <= FULLNAME_MAX ? 0 :
		    bad_value(ch, "...", "longer than 256 bytes");
	case 't':
		o->extract = 1;
		return 0;
	case 'i':
		o->ignore_dots = 1;
		return 0;
	case 'o':
		return opt_o(o, arg);
	case 'b':
		return opt_b(o, arg);
	case 'q':
		o->mode = M_FLUSH;
		return arg == NULL ? 0 : bad_value(ch, arg, "-q takes no "
		    "interval: smapd runs the queue (-q alone asks it to now)");
	case 'v': case 'n': case 'm': case 'U':
		return 0;
	case 'A': case 'B': case 'N': case 'R': case 'V': case 'h': case 'L':
		return opt_ignored(ch, arg);
	default:
		return usage();
	}
}

/* bad_opt - what getopt() could not take */
static int
bad_opt(const char *optstring)
{
	const char *p = optopt ? strchr(optstring, optopt) : NULL;

	if (p != NULL && p[1] == ':')
		fprintf(stderr, PROG ": option -%c needs a value\n", optopt);
	else if (optopt > ' ' && optopt < 0x7f)
		fprintf(stderr, PROG ": unknown option -%c\n", optopt);
	else
		fprintf(stderr, PROG ": unknown option\n");
	return usage();
}

/* parse_opts - the command line into o; 0 or EX_USAGE */
static int
parse_opts(int argc, char **argv, struct opts *o)
{
	const char *base = strrchr(argv[0], '/');
	int ch, rc, i;

	base = base ? base + 1 : argv[0];
	o->conf = "/etc/smap/smap.conf";
	o->mode = strcmp(base, "mailq") == 0 ? M_LIST :
	    strcmp(base, "newaliases") == 0 ? M_ALIASES : M_SEND;
	opterr = 0;
	while ((ch = getopt(argc, argv, OPTSTRING)) != -1)
		if ((rc = ch == '?' ? bad_opt(OPTSTRING) :
		    one_opt(o, ch, optarg)) != 0)
			return rc;
	o->rcpt = argv + optind;
	o->nrcpt = argc - optind;
	for (i = 0; i < o->nrcpt && strcmp(argv[optind - 1], "--") != 0; i++)
		if (o->rcpt[i][0] == '-') {
			fprintf(stderr, PROG ": %s: options come before the "
			    "recipients (or use -- before a recipient)\n",
			    o->rcpt[i]);
			return usage();
		}
	if (o->mode != M_SEND && (o->nrcpt > 0 || o->extract)) {
		fprintf(stderr, PROG ": -bp, -bi and -q take no recipients\n");
		return usage();
	}
	if (o->mode == M_SEND && o->nrcpt == 0 && !o->extract) {
		fprintf(stderr, PROG ": no recipients (give some, or -t)\n");
		return usage();
	}
	return 0;
}

/* whoami - the caller's passwd entry; 0 or EX_NOUSER */
static int
whoami(const struct conf *cf, struct me *me)
{
	const struct passwd *pw;
	const char *why;
	size_t n;

	me->uid = getuid();
	if ((pw = getpwuid(me->uid)) == NULL) {
		fprintf(stderr, PROG ": uid %lu has no passwd entry\n",
		    (unsigned long)me->uid);
		return EX_NOUSER;
	}
	snprintf(me->login, sizeof(me->login), "%s", pw->pw_name);
	n = strcspn(pw->pw_gecos ? pw->pw_gecos : "", ",");
	snprintf(me->gecos, sizeof(me->gecos), "%.*s", (int)n,
	    pw->pw_gecos ? pw->pw_gecos : "");
	if (sender_parse(me->login, cf->myhostname, &me->own, &why) < 0 ||
	    me->own.text[0] == '\0') {
		fprintf(stderr, PROG ": the login name %s is no address: %s\n",
		    me->login, why);
		return EX_NOUSER;
	}
	me->trusted = me->uid == 0 ||
	    ((pw = getpwnam(cf->smapd_user)) != NULL && pw->pw_uid == me->uid);
	return 0;
}

/* choose_sender - -f when this user may use it, else their own */
static int
choose_sender(const struct opts *o, const struct conf *cf,
    const struct me *me, struct addr *a)
{
	const char *why;

	*a = me->own;
	if (o->sender == NULL)
		return 0;
	if (sender_parse(o->sender, cf->myhostname, a, &why) < 0) {
		fprintf(stderr, PROG ": -f %s: %s\n", o->sender, why);
		return EX_USAGE;
	}
	if (me->trusted || a->text[0] == '\0' ||
	    strcmp(a->text, me->own.text) == 0)
		return 0;
	fprintf(stderr, PROG ": warning: %s may not send as <%s> (only root "
	    "and %s may set any sender); sending as <%s>\n", me->login,
	    a->text, cf->smapd_user, me->own.text);
	*a = me->own;
	return 0;
}

/* arg_rcpts - the recipients given as arguments */
static int
arg_rcpts(const struct opts *o, const struct conf *cf, struct rcptset *set)
{
	char why[512];
	int i, rc;

	for (i = 0; i < o->nrcpt; i++)
		if ((rc = alist_add(set, "argument", o->rcpt[i],
		    strlen(o->rcpt[i]), cf->myhostname, why, sizeof(why))) < 0) {
			fprintf(stderr, PROG ": %s\n", why);
			return rc == -2 ? EX_OSERR : EX_DATAERR;
		}
	return 0;
}

/* run_smapq - -bp and -q: smapq, from the directory of this program */
static int
run_smapq(const char *conf, const char *cmd)
{
	char self[PATH_MAX], path[PATH_MAX + 8], *slash;
	char *argv[] = { "smapq", "-c", (char *)conf, (char *)cmd, NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		fprintf(stderr, PROG ": /proc/self/exe: %s\n", strerror(errno));
		return EX_OSERR;
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/smapq", self);
	execv(path, argv);
	fprintf(stderr, PROG ": cannot run %s: %s\n", path, strerror(errno));
	return EX_UNAVAILABLE;
}

/* build - read the message and make it ready; 0 or an exit status */
static int
build(const struct opts *o, const struct conf *cf, const struct me *me,
    const struct addr *sender, struct rcptset *set, struct mbuf *msg)
{
	struct mbuf in = { NULL, 0, 0, (size_t)cf->message_size_limit };
	struct msg_ids id;
	char why[600];
	int rc;

	memset(&id, 0, sizeof(id));
	id.domain = cf->myhostname;
	id.from_addr = sender->text[0] ? sender->text : me->own.text;
	id.from_name = o->fullname ? o->fullname :
	    strcmp(id.from_addr, me->own.text) == 0 ? me->gecos : "";
	id.now = time(NULL);
	if (getrandom(&id.unique, sizeof(id.unique), 0) !=
	    (ssize_t)sizeof(id.unique))
		id.unique = (unsigned long long)id.now ^
		    ((unsigned long long)getpid() << 32);
	msg->max = in.max;
	if ((rc = msg_read(STDIN_FILENO, o->ignore_dots, &in, why,
	    sizeof(why))) == 0)
		rc = msg_build(&in, &id, o->extract ? set : NULL, msg, why,
		    sizeof(why));
	mbuf_free(&in);
	if (rc == 0 && set->n == 0) {
		snprintf(why, sizeof(why), "no recipients: none given, and none "
		    "in To:, Cc: or Bcc:");
		rc = EX_DATAERR;
	}
	if (rc != 0)
		fprintf(stderr, PROG ": %s\n", why);
	return rc;
}

/* hand_over - the message to smap; its status, said on stderr and logged */
static int
hand_over(const struct conf *cf, const struct me *me, const struct addr *sender,
    const struct rcptset *set, const struct mbuf *msg)
{
	struct submit_server srv;
	struct submit_result res;
	struct submit_job job;
	char why[300];
	int rc;

	if (submit_server_parse(cf->submit_server, &srv, why, sizeof(why)) < 0) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_CONFIG;
	}
	memset(&job, 0, sizeof(job));
	job.helo = cf->myhostname;
	job.sender = sender->text;
	job.rcpt = set->v;
	job.nrcpt = set->n;
	job.data = msg->p;
	job.len = msg->len;
	job.eightbit = msg_8bit(msg);
	job.connect_timeout = (int)cf->smtp_connect_timeout;
	job.cmd_timeout = (int)cf->smtp_helo_timeout;
	job.data_timeout = (int)cf->smtp_data_done_timeout;
	if ((rc = submit(&srv, &job, &res)) == 0) {
		log_info("%s: uid=%lu username=%s from=<%s> nrcpt=%zu size=%zu",
		    res.id[0] ? res.id : "NOQUEUE", (unsigned long)me->uid,
		    me->login, sender->text, set->n, msg->len);
		return 0;
	}
	log_warn("uid=%lu username=%s from=<%s>: not sent: %s",
	    (unsigned long)me->uid, me->login, sender->text, res.text);
	if (rc == EX_TEMPFAIL)
		fprintf(stderr, PROG ": the message was not sent: %s. Nothing "
		    "was queued: try again later.\n", res.text);
	else
		fprintf(stderr, PROG ": the message was refused: %s\n",
		    res.text);
	return rc;
}

/* unprivileged - refuse to run set-uid, set-gid or with file
 * capabilities (AT_SECURE says all three); 0 or EX_CONFIG */
static int
unprivileged(void)
{
	if (getuid() == geteuid() && getgid() == getegid() &&
	    getauxval(AT_SECURE) == 0)
		return 0;
	fprintf(stderr, PROG ": installed set-uid, set-gid or with file "
	    "capabilities: it must not be (it needs no privilege)\n");
	return EX_CONFIG;
}

/* conf_owned - a -C file of a caller other than root is root's and
 * writable by root alone; 0, or EX_CONFIG (said). A file that cannot be
 * stat'd is left to conf_load() to name. */
static int
conf_owned(const char *path)
{
	struct stat st;

	if (getuid() == 0 || stat(path, &st) < 0 ||
	    (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0))
		return 0;
	fprintf(stderr, PROG ": -C %s: a configuration given by a user other "
	    "than root must be owned by root and writable by no one else\n",
	    path);
	return EX_CONFIG;
}

/* setup - configuration, log, the caller; 0 or an exit status */
static int
setup(const struct opts *o, struct conf *cf, struct me *me)
{
	static char err[8192];

	if (conf_load(cf, o->conf, err, sizeof(err)) != 0) {
		fputs(err, stderr);
		return EX_CONFIG;
	}
	/* maillog_file may be closed to this user: then syslog */
	if (log_open("smap/sendmail", cf->syslog_facility,
	    cf->maillog_file) < 0)
		(void)log_open("smap/sendmail", cf->syslog_facility, "");
	return whoami(cf, me);
}

int
main(int argc, char **argv)
{
	static struct conf cf;
	static struct me me;
	struct rcptset set = { NULL, 0, 0 };
	struct mbuf msg = { NULL, 0, 0, 0 };
	struct opts o;
	struct addr sender;
	int rc;

	memset(&o, 0, sizeof(o));
	tzset();
	if ((rc = unprivileged()) != 0)
		return rc;
	if (argc < 1 || argv[0] == NULL)	/* execve() with no argv[0] */
		return usage();
	if ((rc = parse_opts(argc, argv, &o)) != 0 ||
	    (rc = conf_owned(o.conf)) != 0)
		return rc;
	if (o.mode == M_LIST || o.mode == M_FLUSH)
		return run_smapq(o.conf, o.mode == M_LIST ? "list" : "flush");
	if (o.mode == M_ALIASES) {
		fprintf(stderr, PROG ": no alias database here: aliases are "
		    "the relay's\n");
		return 0;
	}
	if ((rc = setup(&o, &cf, &me)) != 0)
		return rc;
	set.max = (size_t)cf.smtpd_recipient_limit;
	if ((rc = choose_sender(&o, &cf, &me, &sender)) == 0 &&
	    (rc = arg_rcpts(&o, &cf, &set)) == 0 &&
	    (rc = build(&o, &cf, &me, &sender, &set, &msg)) == 0)
		rc = hand_over(&cf, &me, &sender, &set, &msg);
	rcptset_free(&set);
	mbuf_free(&msg);
	conf_free(&cf);
	return rc;
}
