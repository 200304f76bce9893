/*
 * conf_read.c - read the configuration file: conf_load() and
 * conf_defaults() (see conf.h).
 *
 * Postfix main.cf syntax: "key = value" logical lines, "#" comment
 * lines, blank lines ignored, a line starting with white space
 * continues the previous logical line. An unknown key is an error that
 * names the nearest known one ("did you mean"); a key set twice keeps
 * its later value, as in Postfix.
 *
 * Loading is in three steps: the file is read into raw text per key
 * (later settings win), unset keys get their default text, then every
 * value has $name / ${name} expanded (against the other keys' final
 * expanded text; "$$" is a literal "$") and is parsed by its key's
 * type (the table: conf.c; the types: conf_types.c). Last come the
 * checks of settings as a whole: the relay policy's (relay_check() in
 * conf_relay.c) and that smap and smapd are two users.
 *
 * SECURITY: the file is written by root, but trusted only that far:
 * its size (CONF_FILE_MAX), logical lines (CONF_LINE_MAX), expanded
 * values and expansion depth are capped here, every value is checked
 * against its type and range there. Errors never stop the parse: all
 * are collected and reported in line order, within the caller's
 * buffer, and the caller refuses to run if there is any. No global
 * mutable state; no DNS.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "conf.h"
#include "conf_keys.h"
#include "conf_types.h"
#include "relay.h"

#define EXPAND_DEPTH 10		/* $a -> $b -> ... nesting */
#define SUGGEST_MAX 64		/* longest key we look for a near miss of */
#define BLANKS " \t\r\f\v"

struct cerr {
	int line;
	size_t seq;
	char *msg;
};

enum { X_NEW, X_BUSY, X_DONE, X_FAILED };

/* What the reader knows of one key. */
struct slot {
	char *raw;			/* text as set, before expansion */
	char *val;			/* text after expansion */
	unsigned char state;		/* of the expansion: X_* */
	int set_line;			/* 0: not set in the file */
};

struct ctx {
	const char *path;
	struct conf *c;
	struct cerr *ev;		/* errors kept for the report */
	size_t en, ecap, ebytes, ebudget;
	int nerr;			/* all errors, kept or not */
	char line[CONF_LINE_MAX + 1];	/* the logical line being read */
	size_t llen;
	int lnum;			/* its first line; 0: none open */
	int lbad;			/* already reported, discard it */
	size_t nkeys;
	struct slot key[];		/* by the table's index */
};

/* ---- errors ---- */

/* conf_err - count an error at a line (0: none), keep it while err has
 * room */
static void __attribute__((format(printf, 3, 4)))
conf_err(struct ctx *x, int line, const char *fmt, ...)
{
	char msg[512];
	struct cerr *nv;
	va_list ap;

	x->nerr++;
	if (x->ebytes >= x->ebudget)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->en == x->ecap) {
		nv = reallocarray(x->ev, x->ecap * 2 + 8, sizeof(*nv));
		if (nv == NULL)
			return;
		x->ev = nv;
		x->ecap = x->ecap * 2 + 8;
	}
	if ((x->ev[x->en].msg = strdup(msg)) == NULL)
		return;
	x->ev[x->en].line = line;
	x->ev[x->en].seq = x->en;
	x->en++;
	x->ebytes += strlen(msg) + strlen(x->path) + 14;
}

/* cerr_cmp - errors in line order, then in the order found */
static int
cerr_cmp(const void *a, const void *b)
{
	const struct cerr *ea = a, *eb = b;

	if (ea->line != eb->line)
		return ea->line < eb->line ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

/* conf_report - the kept errors, whole lines only, into err; frees
 * them; the number of all errors */
static int
conf_report(struct ctx *x, char *err, size_t errlen)
{
	char ln[16];
	size_t i, used = 0;
	int n, full = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (x->en > 0)
		qsort(x->ev, x->en, sizeof(*x->ev), cerr_cmp);
	for (i = 0; i < x->en; i++) {
		snprintf(ln, sizeof(ln), ":%d", x->ev[i].line);
		if (err != NULL && !full) {
			n = snprintf(err + used, errlen - used, "%s%s: %s\n",
			    x->path, x->ev[i].line ? ln : "", x->ev[i].msg);
			if (n < 0 || (size_t)n >= errlen - used) {
				err[used] = '\0';
				full = 1;
			} else
				used += (size_t)n;
		}
		free(x->ev[i].msg);
	}
	free(x->ev);
	x->ev = NULL;
	x->en = x->ecap = 0;
	return x->nerr;
}

/* ---- small text helpers ---- */

/* is_blank - is ch white space (but not a newline)? */
static int
is_blank(int ch)
{
	return ch != '\0' && strchr(BLANKS, ch) != NULL;
}

/* trim - cut leading and trailing white space of s in place */
static char *
trim(char *s)
{
	char *e;

	while (is_blank((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_blank((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* valid_key - is s a parameter name: [a-zA-Z0-9_]+? */
static int
valid_key(const char *s)
{
	return *s != '\0' &&
	    s[strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] == '\0';
}

/* edit_distance - Levenshtein distance of two short strings (<=
 * SUGGEST_MAX) */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, sub;
	size_t prev[SUGGEST_MAX + 1], cur[SUGGEST_MAX + 1];

	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			cur[j] = prev[j] + 1 < cur[j - 1] + 1 ?
			    prev[j] + 1 : cur[j - 1] + 1;
			if (sub < cur[j])
				cur[j] = sub;
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

/* suggest - the key nearest to an unknown one, within distance 2, or
 * NULL */
static const char *
suggest(const char *key)
{
	const char *best = NULL, *name;
	size_t i, d, bestd = 3;

	if (strlen(key) > SUGGEST_MAX)
		return NULL;
	for (i = 0; i < conf_nkeys(); i++) {
		name = conf_key_name(i);
		if (strlen(name) > SUGGEST_MAX)
			continue;
		if ((d = edit_distance(key, name)) < bestd) {
			bestd = d;
			best = name;
		}
	}
	return best;
}

/* ---- reading the file ---- */

/* conf_open - open the file; a regular file within CONF_FILE_MAX */
static int
conf_open(struct ctx *x, off_t *size)
{
	struct stat st;
	int fd;

	/* O_NONBLOCK: a FIFO must not hang us before fstat refuses it. */
	fd = open(x->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		conf_err(x, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1)
		conf_err(x, 0, "cannot stat: %s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		conf_err(x, 0, "not a regular file");
	else if (st.st_size > CONF_FILE_MAX)
		conf_err(x, 0, "file too large (more than %d bytes)",
		    CONF_FILE_MAX);
	else {
		*size = st.st_size;
		return fd;
	}
	close(fd);
	return -1;
}

/* conf_slurp - the whole file in a NUL-terminated buffer, or NULL */
static char *
conf_slurp(struct ctx *x, size_t *lenp)
{
	char *buf;
	size_t cap, n = 0;
	ssize_t r = 0;
	off_t size;
	int fd;

	if ((fd = conf_open(x, &size)) == -1)
		return NULL;
	cap = (size_t)size + 1;		/* one more byte: did it grow? */
	if ((buf = malloc(cap + 1)) == NULL) {
		conf_err(x, 0, "out of memory");
		close(fd);
		return NULL;
	}
	while (n < cap) {
		if ((r = read(fd, buf + n, cap - n)) == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (r == -1)
		conf_err(x, 0, "read error: %s", strerror(errno));
	else if (n == cap)
		conf_err(x, 0, "file changed while being read");
	if (r == -1 || n == cap) {
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
		*lenp = n;
	}
	close(fd);
	return buf;
}

/* line_parse - "key = value": check the key, keep the raw value text */
static void
line_parse(struct ctx *x, char *s, int ln)
{
	char *eq, *key, *val, q[QBUF];
	const char *near;
	int i;

	if ((eq = strchr(s, '=')) == NULL) {
		conf_err(x, ln, "missing \"=\" in %s",
		    conf_quote(q, sizeof(q), s, strlen(s)));
		return;
	}
	*eq = '\0';
	key = trim(s);
	val = trim(eq + 1);
	if (!valid_key(key)) {
		conf_err(x, ln, "bad parameter name %s",
		    conf_quote(q, sizeof(q), key, strlen(key)));
		return;
	}
	if ((i = conf_key_find(key, strlen(key))) < 0) {
		near = suggest(key);
		conf_err(x, ln, "unknown parameter %s%s%s%s",
		    conf_quote(q, sizeof(q), key, strlen(key)),
		    near ? "; did you mean \"" : "", near ? near : "",
		    near ? "\"?" : "");
		return;
	}
	free(x->key[i].raw);
	if ((x->key[i].raw = strdup(val)) == NULL)
		conf_err(x, ln, "out of memory");
	x->key[i].set_line = ln;
}

/* line_append - add a trimmed piece to the logical line, joined with
 * one space */
static void
line_append(struct ctx *x, const char *p, size_t n)
{
	size_t sep = x->llen > 0;

	if (x->lbad)
		return;
	if (x->llen + sep + n > CONF_LINE_MAX) {
		conf_err(x, x->lnum, "line too long (more than %d bytes)",
		    CONF_LINE_MAX);
		x->lbad = 1;
		return;
	}
	if (sep)
		x->line[x->llen++] = ' ';
	memcpy(x->line + x->llen, p, n);
	x->llen += n;
}

/* line_flush - parse the logical line collected so far, if any; reset */
static void
line_flush(struct ctx *x)
{
	if (x->lnum != 0 && !x->lbad) {
		x->line[x->llen] = '\0';
		line_parse(x, x->line, x->lnum);
	}
	x->lnum = 0;
	x->llen = 0;
	x->lbad = 0;
}

/* line_physical - one physical line: skip, start a logical line or
 * continue one */
static void
line_physical(struct ctx *x, const char *p, size_t n, int ln)
{
	size_t a = 0, b = n;

	while (a < b && is_blank((unsigned char)p[a]))
		a++;
	while (b > a && is_blank((unsigned char)p[b - 1]))
		b--;
	if (a == b || p[a] == '#')
		return;
	if (a == 0) {
		line_flush(x);
		x->lnum = ln;
	} else if (x->lnum == 0) {
		conf_err(x, ln, "continuation line (starting with white "
		    "space) before any parameter");
		return;
	}
	if (!x->lbad && memchr(p + a, '\0', b - a) != NULL) {
		conf_err(x, ln, "NUL byte in line");
		x->lbad = 1;
	}
	line_append(x, p + a, b - a);
}

/* conf_lines - split the text into physical lines and feed them on */
static void
conf_lines(struct ctx *x, const char *buf, size_t len)
{
	const char *nl;
	size_t off = 0, n;
	int ln = 0;

	while (off < len) {
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		line_physical(x, buf + off, n, ++ln);
		off += n + 1;
	}
	line_flush(x);
}

/* ---- defaults, expansion, values ---- */

/* set_default - an unset key's default text (myhostname:
 * gethostname()) */
static void
set_default(struct ctx *x, size_t i)
{
	char host[256];
	const char *def = conf_key_default(i), *name = conf_key_name(i);

	if (def == NULL) {
		if (gethostname(host, sizeof(host)) == -1) {
			conf_err(x, 0, "%s: gethostname: %s; set %s", name,
			    strerror(errno), name);
			x->key[i].state = X_FAILED;
			return;
		}
		host[sizeof(host) - 1] = '\0';
		def = host;
	}
	if ((x->key[i].raw = strdup(def)) == NULL) {
		conf_err(x, 0, "out of memory");
		x->key[i].state = X_FAILED;
	}
}

/* A reference expands its key first: expand and expand_ref recurse. */
static int expand(struct ctx *, size_t, int);

/* expand_ref - one "$name" or "${name}" at *sp of key i; advance *sp */
static int
expand_ref(struct ctx *x, size_t i, int depth, const char **sp, char *out,
    size_t *n)
{
	const char *s = *sp + 1, *key = conf_key_name(i);
	int brace = *s == '{', ln = x->key[i].set_line, j;
	size_t len = strspn(s + brace, "abcdefghijklmnopqrstuvwxyz0123456789_");
	char q[QBUF];

	if (len == 0 || (brace && s[1 + len] != '}')) {
		conf_err(x, ln, "%s: bad \"$\" syntax (use $name, ${name}, "
		    "or $$ for a literal \"$\")", key);
		return -1;
	}
	conf_quote(q, sizeof(q), s + brace, len);
	*sp = s + brace + len + brace;
	if ((j = conf_key_find(s + brace, len)) < 0)
		conf_err(x, ln, "%s: unknown parameter %s in value", key, q);
	else if (x->key[j].state == X_BUSY)
		conf_err(x, ln, "%s: expansion of %s loops", key, q);
	else if (depth >= EXPAND_DEPTH)
		conf_err(x, ln, "%s: more than %d levels of expansion", key,
		    EXPAND_DEPTH);
	else if (expand(x, (size_t)j, depth + 1) == 0) {
		len = strlen(x->key[j].val);
		if (*n + len > CONF_LINE_MAX) {
			conf_err(x, ln, "%s: value longer than %d bytes after "
			    "expansion", key, CONF_LINE_MAX);
			return -1;
		}
		memcpy(out + *n, x->key[j].val, len);
		*n += len;
		return 0;
	}
	return -1;
}

/* expand_text - raw text of key i to out, references expanded; out
 * holds CONF_LINE_MAX */
static int
expand_text(struct ctx *x, size_t i, int depth, char *out, size_t *n)
{
	const char *s = x->key[i].raw;

	while (*s != '\0') {
		if (s[0] == '$' && s[1] != '$') {
			if (expand_ref(x, i, depth, &s, out, n) == -1)
				return -1;
			continue;
		}
		if (*n == CONF_LINE_MAX) {
			conf_err(x, x->key[i].set_line, "%s: value longer "
			    "than %d bytes after expansion", conf_key_name(i),
			    CONF_LINE_MAX);
			return -1;
		}
		out[(*n)++] = *s;
		s += s[0] == '$' ? 2 : 1;
	}
	return 0;
}

/* expand - key i's raw text expanded into its val (once); 0 or -1. The
 * expansion is built on the stack and kept at its own length: 49 keys
 * at CONF_LINE_MAX each made a smap session's heap 200 KB larger. */
static int
expand(struct ctx *x, size_t i, int depth)
{
	struct slot *k = &x->key[i];
	char out[CONF_LINE_MAX + 1];
	size_t n = 0;

	if (k->state == X_DONE || k->state == X_FAILED)
		return k->state == X_DONE ? 0 : -1;
	k->state = X_BUSY;
	if (expand_text(x, i, depth, out, &n) == -1) {
		k->state = X_FAILED;
		return -1;
	}
	out[n] = '\0';
	if ((k->val = strdup(out)) == NULL) {
		conf_err(x, k->set_line, "out of memory");
		k->state = X_FAILED;
		return -1;
	}
	k->state = X_DONE;
	return 0;
}

/* conf_value - key i's expanded text parsed into its field */
static void
conf_value(struct ctx *x, size_t i)
{
	const char *name = conf_key_name(i);
	char why[400];

	why[0] = '\0';
	if (conf_key_parse(x->c, i, x->key[i].val, why, sizeof(why)) == 0)
		return;
	if (x->key[i].set_line != 0)
		conf_err(x, x->key[i].set_line, "%s: %s", name, why);
	else if (conf_key_default(i) == NULL ||	/* $key: that key's error */
	    conf_key_default(i)[0] != '$')
		conf_err(x, 0, "%s: %s (%s)", name, why,
		    conf_key_default(i) == NULL ? "from gethostname(); set it "
		    "in the file" : "the default");
}

/* ---- settings as a whole ---- */

/* key_line - the line where the key named key was set; 0: default */
static int
key_line(const struct ctx *x, const char *key)
{
	int i = conf_key_find(key, strlen(key));

	return i >= 0 ? x->key[i].set_line : 0;
}

/* relay_err - what relay_check() refuses, an error at the key's line */
static void
relay_err(void *arg, const char *key, const char *msg)
{
	struct ctx *x = arg;

	conf_err(x, key_line(x, key), "%s", msg);
}

/* users_check - smap and smapd must run as two users: smap may never
 * reach smapd's queue (the ids behind the names are checked by
 * layout_users()) */
static void
users_check(struct ctx *x)
{
	int a = key_line(x, "mail_owner"), b = key_line(x, "smapd_user");

	if (x->c->mail_owner == NULL || x->c->smapd_user == NULL ||
	    strcmp(x->c->mail_owner, x->c->smapd_user) != 0)
		return;
	conf_err(x, a > b ? a : b, "mail_owner and smapd_user are both %s: "
	    "smap and smapd must run as different users (defaults: smap and "
	    "smapd), or a compromised smap could rewrite smapd's queue",
	    x->c->mail_owner);
}

/* conf_finish - defaults, then every value expanded and parsed, then
 * the settings as a whole */
static void
conf_finish(struct ctx *x)
{
	size_t i;

	for (i = 0; i < x->nkeys; i++)
		if (x->key[i].raw == NULL && x->key[i].state == X_NEW)
			set_default(x, i);
	for (i = 0; i < x->nkeys; i++)
		if (expand(x, i, 0) == 0)
			conf_value(x, i);
	(void)relay_check(x->c, relay_err, x);
	users_check(x);
}

/* ---- the interface ---- */

/* ctx_new - a load's context over a cleared struct; NULL: no memory */
static struct ctx *
ctx_new(struct conf *c, const char *path, size_t errlen)
{
	size_t n = conf_nkeys();
	struct ctx *x;

	memset(c, 0, sizeof(*c));
	if ((x = calloc(1, sizeof(*x) + n * sizeof(x->key[0]))) == NULL)
		return NULL;
	x->c = c;
	x->path = path;
	x->ebudget = errlen;
	x->nkeys = n;
	return x;
}

/* ctx_done - publish set_line, free the context, report the errors */
static int
ctx_done(struct ctx *x, char *err, size_t errlen)
{
	size_t i;
	int n;

	if ((x->c->set_line = calloc(x->nkeys, sizeof(int))) == NULL)
		conf_err(x, 0, "out of memory");
	for (i = 0; i < x->nkeys; i++) {
		if (x->c->set_line != NULL)
			x->c->set_line[i] = x->key[i].set_line;
		free(x->key[i].raw);
		free(x->key[i].val);
	}
	n = conf_report(x, err, errlen);
	free(x);
	return n;
}

/* conf_load - defaults, then the file; every error collected */
int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct ctx *x;
	char *buf;
	size_t len = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((x = ctx_new(c, path, err != NULL ? errlen : 0)) == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: out of memory\n", path);
		return 1;
	}
	if ((buf = conf_slurp(x, &len)) != NULL)
		conf_lines(x, buf, len);
	free(buf);
	conf_finish(x);
	return ctx_done(x, err, errlen);
}

/* conf_defaults - defaults only: 0 errors unless gethostname() gives no
 * valid hostname or memory runs out */
int
conf_defaults(struct conf *c)
{
	struct ctx *x;

	if ((x = ctx_new(c, "defaults", 0)) == NULL)
		return 1;
	conf_finish(x);
	return ctx_done(x, NULL, 0);
}
