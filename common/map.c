/*
 * map.c - "cdb:" and "texthash:" lookup tables, read the way Postfix
 * reads them, and the two lookup orders that smap and smapd need.
 *
 * CDB: what "postmap cdb:PATH" (Postfix 3.7, Debian postfix-cdb) writes,
 * from Postfix's src/util/dict_cdb.c and src/postmap/postmap.c, checked
 * with the real postmap and tinycdb's "cdb -d":
 *   - the file is PATH.cdb, written as PATH.cdb.tmp and renamed;
 *   - keys are folded to lower case (postmap's default DICT_FLAG_FOLD_FIX;
 *     "postmap -f" turns it off, and such a file is not for us);
 *   - no NUL is appended to keys or values: dict_cdbm_open picks
 *     DICT_FLAG_TRY0NULL when creating unless "-N" is given. On lookup
 *     dict_cdbq_lookup tries key+NUL, then key, and keeps to the form
 *     that hit first. Here the first record of the file decides the form
 *     at open (one form per file is all postmap writes), so a lookup is
 *     one cdb_find;
 *   - the value is the text after the key with the white space around it
 *     removed; a lookup result is what Postfix sees as a C string (up to
 *     a NUL, if a value held one); duplicates: the first one is kept.
 * Reading is tinycdb's: cdb_init mmaps the file, cdb_find and cdb_get
 * check every offset against its size (EPROTO). At open, beyond cdb_init
 * (which takes any file of 2048 bytes or more), the 256 slots of the
 * header are checked to point inside the file, and the hash tables to
 * fill its end exactly, as every cdb writer lays them out: a text file,
 * a truncated file or one with bytes appended is "not a cdb file".
 *
 * TEXTHASH: the postmap(1) input format ("INPUT FILE FORMAT"), as
 * postmap.c and src/util/dict_thash.c parse it, checked against
 * "postmap -q KEY texthash:FILE":
 *   - a line whose first non-blank byte is '#', and a blank line, are
 *     skipped anywhere, also inside a logical line;
 *   - a line that starts with white space continues the logical line,
 *     joined as it is (only the newline goes);
 *   - the key ends at the first white space outside double quotes ('\'
 *     escapes the next byte); quotes and backslashes stay in the key;
 *   - the value is the rest with its surrounding white space removed;
 *   - keys are folded to lower case; a duplicate key keeps the first.
 * Where Postfix warns and skips a line (no value, unbalanced quote, a
 * first line that starts with white space), map_open fails and names
 * the line: the table would not say what its author meant. A NUL byte,
 * a file over MAP_TEXT_MAX and a logical line over CONF_LINE_MAX fail
 * too. Postfix folds non-ASCII keys with UTF-8 rules when smtputf8 is
 * on; here only ASCII is folded, which no ASCII address can tell apart.
 *
 * TRUST: the files are root's configuration, trusted as far as that, but
 * read with caps and checks all the same; lookup keys come from smap's
 * or smapd's checked addresses, values go back to the caller unchecked.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "map.h"

#define CDB_TOC		2048		/* 256 slots of (position, count) */

struct map_ent {
	const char *key;
	const char *val;
	size_t vlen;
	size_t seq;			/* line order: the first one wins */
};

/* map_why - a reason into why */
static void __attribute__((format(printf, 3, 4)))
map_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len > 0) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
}

/* A reason into why, and -1 (visible as such to the static analysers). */
#define map_err(why, len, ...)	(map_why((why), (len), __VA_ARGS__), -1)

/* map_lower - tolower() for ASCII only, whatever the locale */
static char
map_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* map_space - isspace() in the C locale, whatever the locale */
static int
map_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* map_strerror - errno in the plain words of an admin's message */
static const char *
map_strerror(int e)
{
	switch (e) {
	case ENOENT:
		return "no such file";
	case EACCES:
	case EPERM:
		return "permission denied";
	case ENOTDIR:
		return "a path component is not a directory";
	case ELOOP:
		return "too many symbolic links";
	case EPROTO:
		return "not a cdb file";
	case ENOMEM:
		return "out of memory";
	default:
		return strerror(e);
	}
}

/* map_split_spec - the type of spec into *t, its path into *path */
static int
map_split_spec(const char *spec, enum map_type *t, const char **path,
    char *why, size_t len)
{
	const char *colon = strchr(spec, ':');
	const char *p;
	size_t tl;

	*t = MAP_CLOSED;
	*path = "";
	if (colon == NULL)
		return map_err(why, len, "\"%.64s\": no map type: use "
		    "cdb:PATH or texthash:PATH", spec);
	tl = (size_t)(colon - spec);
	if (tl == 3 && strncmp(spec, "cdb", 3) == 0)
		*t = MAP_CDB;
	else if (tl == 8 && strncmp(spec, "texthash", 8) == 0)
		*t = MAP_TEXTHASH;
	else
		return map_err(why, len, "\"%.64s\": unsupported map type "
		    "\"%.*s\": use cdb: or texthash:", spec,
		    (int)(tl > 32 ? 32 : tl), spec);
	*path = colon + 1;
	if (**path != '/')
		return map_err(why, len, "\"%.64s\": the path must be "
		    "absolute", spec);
	if (strlen(*path) > MAP_PATH_MAX)
		return map_err(why, len, "\"%.64s...\": path longer than %d "
		    "bytes", spec, MAP_PATH_MAX);
	for (p = *path; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return map_err(why, len, "\"%.64s\": space or control "
			    "character in the path", spec);
	return 0;
}

/* map_spec_ok - is spec a map this module can open? */
int
map_spec_ok(const char *spec, char *why, size_t len)
{
	const char *path;
	enum map_type t;

	return map_split_spec(spec, &t, &path, why, len);
}

/* map_open_file - a read-only fd on the regular file path, or -1 */
static int
map_open_file(const char *path, struct stat *st, char *why, size_t len)
{
	int fd, e;

	/* O_NONBLOCK: a FIFO must not hang us before fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return map_err(why, len, "%s: %s", path, map_strerror(errno));
	if (fstat(fd, st) == -1) {
		e = errno;
		close(fd);
		return map_err(why, len, "%s: %s", path, map_strerror(e));
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return map_err(why, len, "%s: not a regular file", path);
	}
	return fd;
}

/* cdb_toc_ok - do the header's 256 hash tables fill the file's end? */
static int
cdb_toc_ok(const struct cdb *c, unsigned fsize)
{
	const unsigned char *toc = cdb_get(c, CDB_TOC, 0);
	unsigned long long total = 0;
	unsigned dend, pos, n, i;

	if (toc == NULL)
		return 0;
	dend = cdb_unpack(toc);		/* table 0 starts where data ends */
	if (dend < CDB_TOC || dend > fsize)
		return 0;
	for (i = 0; i < 256; i++) {
		pos = cdb_unpack(toc + 8 * i);
		n = cdb_unpack(toc + 8 * i + 4);
		if (pos < dend || pos > fsize || n > (fsize - pos) / 8)
			return 0;
		total += 8ULL * n;
	}
	return total == fsize - dend;
}

/* cdb_first_nul - does the file's first key end in a NUL (postmap -N)? */
static int
cdb_first_nul(struct cdb *c, int *nul)
{
	unsigned pos;
	const unsigned char *k;
	int r;

	cdb_seqinit(&pos, c);
	if ((r = cdb_seqnext(&pos, c)) <= 0) {
		*nul = 0;
		return r;		/* 0: an empty table */
	}
	if ((k = cdb_getkey(c)) == NULL)
		return -1;
	*nul = cdb_keylen(c) > 0 && k[cdb_keylen(c) - 1] == '\0';
	return 0;
}

/* map_cdb_open - open PATH.cdb and map it */
static int
map_cdb_open(struct map *m, const char *path, char *why, size_t len)
{
	char file[MAP_PATH_MAX + 8];
	struct stat st;

	snprintf(file, sizeof(file), "%s.cdb", path);
	if ((m->fd = map_open_file(file, &st, why, len)) == -1)
		return -1;
	if (st.st_size < CDB_TOC || st.st_size > 0xffffffffLL) {
		close(m->fd);
		return map_err(why, len, "%s: not a cdb file (%lld bytes)",
		    file, (long long)st.st_size);
	}
	if (cdb_init(&m->cdb, m->fd) != 0) {
		close(m->fd);
		return map_err(why, len, "%s: %s", file, map_strerror(errno));
	}
	if (!cdb_toc_ok(&m->cdb, (unsigned)st.st_size) ||
	    cdb_first_nul(&m->cdb, &m->nul) < 0) {
		cdb_free(&m->cdb);
		close(m->fd);
		return map_err(why, len, "%s: not a cdb file (bad header or "
		    "first record)", file);
	}
	m->type = MAP_CDB;
	return 0;
}

/* ---- texthash ---- */

/* The parser's state: entries so far and the logical line being read. */
struct th {
	const char *path;
	char *out;			/* keys and values go here */
	size_t olen;
	struct map_ent *ent;
	size_t nent, cap;
	char line[CONF_LINE_MAX + 1];
	size_t llen;
	int lno;			/* where the logical line started; 0: none */
};

/* th_slurp - the whole file, NUL-terminated, within MAP_TEXT_MAX */
static char *
th_slurp(const char *path, size_t *np, char *why, size_t len)
{
	struct stat st;
	char *buf;
	size_t n = 0, cap;
	ssize_t r = 0;
	int fd;

	if ((fd = map_open_file(path, &st, why, len)) == -1)
		return NULL;
	if (st.st_size > MAP_TEXT_MAX) {
		close(fd);
		map_why(why, len, "%s: file too large (more than %d bytes)",
		    path, MAP_TEXT_MAX);
		return NULL;
	}
	cap = (size_t)st.st_size + 1;	/* one more byte: did it grow? */
	if ((buf = malloc(cap + 1)) == NULL) {
		close(fd);
		map_why(why, len, "%s: out of memory", path);
		return NULL;
	}
	while (n < cap && ((r = read(fd, buf + n, cap - n)) > 0 ||
	    (r == -1 && errno == EINTR)))
		n += r > 0 ? (size_t)r : 0;
	if (n == cap || r == -1) {
		map_why(why, len, "%s: %s", path, n == cap ?
		    "file grew while being read" : map_strerror(errno));
		free(buf);
		buf = NULL;
	} else
		buf[n] = '\0';
	close(fd);
	*np = n;
	return buf;
}

/* th_add - one key and value (the key folded) into the table */
static int
th_add(struct th *t, const char *k, size_t klen, const char *v, size_t vlen)
{
	struct map_ent *e;
	size_t i;

	if (t->nent == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 64;
		if ((e = reallocarray(t->ent, t->cap, sizeof(*e))) == NULL)
			return -1;
		t->ent = e;
	}
	e = &t->ent[t->nent];
	e->key = t->out + t->olen;
	for (i = 0; i < klen; i++)
		t->out[t->olen++] = map_lower(k[i]);
	t->out[t->olen++] = '\0';
	e->val = t->out + t->olen;
	memcpy(t->out + t->olen, v, vlen);
	t->olen += vlen;
	t->out[t->olen++] = '\0';
	e->vlen = vlen;
	e->seq = t->nent++;
	return 0;
}

/* th_logical - split the logical line into key and value, and add it */
static int
th_logical(struct th *t, char *why, size_t len)
{
	const char *l = t->line;
	size_t i = 0, v, n = t->llen;
	int quoted = 0;

	for (; i < n; i++) {
		if (l[i] == '\\') {
			if (++i == n)
				break;
		} else if (map_space(l[i])) {
			if (!quoted)
				break;
		} else if (l[i] == '"')
			quoted = !quoted;
	}
	if (quoted)
		return map_err(why, len, "%s: line %d: unbalanced '\"'",
		    t->path, t->lno);
	for (v = i; v < n && map_space(l[v]); v++)
		;
	while (n > v && map_space(l[n - 1]))
		n--;
	if (i == 0 || v == n)
		return map_err(why, len, "%s: line %d: expected \"key "
		    "whitespace value\"", t->path, t->lno);
	if (th_add(t, l, i, l + v, n - v) < 0)
		return map_err(why, len, "%s: out of memory", t->path);
	return 0;
}

/* th_line - one physical line: skip, start or continue a logical line */
static int
th_line(struct th *t, const char *p, size_t n, int lno, char *why,
    size_t len)
{
	size_t i;

	for (i = 0; i < n && map_space(p[i]); i++)
		;
	if (i == n || p[i] == '#')
		return 0;		/* blank or comment, anywhere */
	if (i == 0) {
		if (t->lno != 0 && th_logical(t, why, len) < 0)
			return -1;
		t->lno = lno;
		t->llen = 0;
	} else if (t->lno == 0)
		return map_err(why, len, "%s: line %d: starts with white "
		    "space but continues nothing", t->path, lno);
	if (n > CONF_LINE_MAX - t->llen)
		return map_err(why, len, "%s: line %d: logical line longer "
		    "than %d bytes", t->path, t->lno, CONF_LINE_MAX);
	memcpy(t->line + t->llen, p, n);
	t->llen += n;
	return 0;
}

/* th_parse - every line of buf[0..n) */
static int
th_parse(struct th *t, const char *buf, size_t n, char *why, size_t len)
{
	const char *p = buf, *nl, *end = buf + n;
	int lno = 0;

	if (memchr(buf, '\0', n) != NULL)
		return map_err(why, len, "%s: NUL byte in the file", t->path);
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (th_line(t, p, (size_t)(nl - p), ++lno, why, len) < 0)
			return -1;
		p = nl + 1;
	}
	return t->lno != 0 ? th_logical(t, why, len) : 0;
}

/* ent_cmp - by key, then by line order */
static int
ent_cmp(const void *a, const void *b)
{
	const struct map_ent *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* th_sort - sort the entries and keep the first of each key */
static void
th_sort(struct th *t)
{
	size_t i, j = 0;

	if (t->nent == 0)
		return;
	qsort(t->ent, t->nent, sizeof(t->ent[0]), ent_cmp);
	for (i = 1; i < t->nent; i++)
		if (strcmp(t->ent[i].key, t->ent[j].key) != 0)
			t->ent[++j] = t->ent[i];
	t->nent = j + 1;
}

/* map_texthash_open - read and index the whole text file */
static int
map_texthash_open(struct map *m, const char *path, char *why, size_t len)
{
	struct th *t;
	char *buf;
	size_t n;
	int r = -1;

	if ((buf = th_slurp(path, &n, why, len)) == NULL)
		return -1;
	/* keys and values take at most the file's bytes plus a NUL each,
	 * in place of the white space or newline that ended them */
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->out = malloc(n + 2)) == NULL)
		map_why(why, len, "%s: out of memory", path);
	else {
		t->path = path;
		if ((r = th_parse(t, buf, n, why, len)) == 0) {
			th_sort(t);
			m->text = t->out;
			m->ent = t->ent;
			m->nent = t->nent;
			m->type = MAP_TEXTHASH;
		} else {
			free(t->out);
			free(t->ent);
		}
	}
	free(t);
	free(buf);
	return r;
}

/* map_open - open the table spec names */
int
map_open(struct map *m, const char *spec, char *why, size_t len)
{
	const char *path;
	enum map_type t;
	int r;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (map_split_spec(spec, &t, &path, why, len) < 0)
		return -1;
	snprintf(m->spec, sizeof(m->spec), "%s", spec);
	if (t == MAP_CDB)
		r = map_cdb_open(m, path, why, len);
	else
		r = map_texthash_open(m, path, why, len);
	if (r < 0)
		m->fd = -1;
	return r;
}

/* map_close - unmap and free; the map is closed after */
void
map_close(struct map *m)
{
	if (m->type == MAP_CDB) {
		cdb_free(&m->cdb);
		close(m->fd);
	}
	free(m->text);
	free(m->ent);
	m->text = NULL;
	m->ent = NULL;
	m->nent = 0;
	m->fd = -1;
	m->type = MAP_CLOSED;
}

/* ---- lookups ---- */

/* cdb_lookup - one cdb_find, in the form the file was written in */
static int
cdb_lookup(const struct map *m, const char *key, size_t klen,
    const char **val, size_t *vlen)
{
	struct cdb c = m->cdb;		/* cdb_find notes where it found */
	const char *p;
	int r;

	/* key[klen] is the NUL that ends it: "postmap -N" keys hold it. */
	if ((r = cdb_find(&c, key, (unsigned)klen + (m->nul ? 1 : 0))) <= 0)
		return r < 0 ? -1 : 0;
	if ((p = cdb_getdata(&c)) == NULL)
		return -1;
	*val = p;
	*vlen = strnlen(p, cdb_datalen(&c));
	return 1;
}

/* th_key_cmp - bsearch: a key against an entry */
static int
th_key_cmp(const void *key, const void *ent)
{
	return strcmp(key, ((const struct map_ent *)ent)->key);
}

/* map_lookup - one key, folded to lower case */
int
map_lookup(const struct map *m, const char *key, const char **val,
    size_t *vlen)
{
	char k[MAP_KEY_MAX + 1];
	const struct map_ent *e;
	const char *v0;
	size_t i, n, n0;

	if ((n = strnlen(key, MAP_KEY_MAX + 1)) > MAP_KEY_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (i = 0; i < n; i++)
		k[i] = map_lower(key[i]);
	k[n] = '\0';
	if (val == NULL)
		val = &v0;
	if (vlen == NULL)
		vlen = &n0;
	if (m->type == MAP_CDB)
		return cdb_lookup(m, k, n, val, vlen);
	if (m->type != MAP_TEXTHASH) {
		errno = EBADF;
		return -1;
	}
	if (m->nent == 0 || (e = bsearch(k, m->ent, m->nent, sizeof(*e),
	    th_key_cmp)) == NULL)
		return 0;
	*val = e->val;
	*vlen = e->vlen;
	return 1;
}

/* map_base - the length of local without its extension, or 0 when
 * Postfix's split_addr() would not split it (with owner_request_special
 * = yes and double_bounce_sender = double-bounce, their defaults) */
static size_t
map_base(const char *local, const char *delim)
{
	size_t n = strlen(local), i;

	if (delim == NULL || *delim == '\0' ||
	    strcasecmp(local, "postmaster") == 0 ||
	    strcasecmp(local, "mailer-daemon") == 0 ||
	    strcasecmp(local, "double-bounce") == 0)
		return 0;
	if (strchr(delim, '-') != NULL &&
	    (strncasecmp(local, "owner-", 6) == 0 ||
	    (n > 8 && strcasecmp(local + n - 8, "-request") == 0)))
		return 0;
	i = strcspn(local, delim);
	return i == n ? 0 : i;		/* 0 too when local starts with one */
}

/* map_find - look up a[0..alen), then sep (when not NUL), then b */
static int
map_find(const struct map *m, const char *a, size_t alen, char sep,
    const char *b, const char **val, size_t *vlen)
{
	char k[MAP_KEY_MAX + 1];
	size_t blen = strlen(b), n = alen + (sep != '\0');

	if (alen > MAP_KEY_MAX || blen > MAP_KEY_MAX - n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(k, a, alen);
	k[alen] = sep;
	memcpy(k + n, b, blen + 1);
	return map_lookup(m, k, val, vlen);
}

/* map_find_user - local@domain, then base@domain when delim splits it */
static int
map_find_user(const struct map *m, const char *local, const char *domain,
    const char *delim, const char **val, size_t *vlen)
{
	size_t base;
	int r;

	r = map_find(m, local, strlen(local), '@', domain, val, vlen);
	if (r != 0 || (base = map_base(local, delim)) == 0)
		return r;
	return map_find(m, local, base, '@', domain, val, vlen);
}

/* map_recipient - relay_recipient_maps: the address, base, @domain */
int
map_recipient(const struct map *m, const char *local, const char *domain,
    const char *delim)
{
	int r;

	if (domain == NULL || *domain == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (*domain == '[')
		return 0;
	if ((r = map_find_user(m, local, domain, delim, NULL, NULL)) != 0)
		return r;
	return map_find(m, "@", 1, '\0', domain, NULL, NULL);
}

/* map_transport - transport(5): address, base, domain, .parents, "*" */
int
map_transport(const struct map *m, const char *local, const char *domain,
    const char *delim, const char **val, size_t *vlen)
{
	const char *name;
	int r;

	if (domain == NULL || *domain == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (local != NULL && *local != '\0' &&
	    (r = map_find_user(m, local, domain, delim, val, vlen)) != 0)
		return r;
	if ((r = map_lookup(m, domain, val, vlen)) != 0)
		return r;
	/* x.lab.example: .lab.example, then .example (transport.c's walk) */
	name = *domain == '[' ? NULL : strchr(domain + 1, '.');
	for (; name != NULL; name = strchr(name + 1, '.'))
		if ((r = map_lookup(m, name, val, vlen)) != 0)
			return r;
	return map_lookup(m, "*", val, vlen);
}
