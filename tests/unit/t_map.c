/*
 * t_map.c - unit tests for common/map.c, and a query driver for
 * tests/29-map-postmap.t.
 *
 * Usage: t_map                    the unit tests (TAP)
 *        t_map -q SPEC            one key a line on stdin; prints "key TAB
 *                                 value" for each key found, as "postmap -q
 *                                 - SPEC" does, nothing for a miss
 *        t_map -r SPEC DELIM      one local@domain a line; prints "address
 *                                 TAB" and map_recipient's 1, 0 or -1
 *        t_map -t SPEC DELIM      one local@domain (or @domain) a line;
 *                                 prints "address TAB =value", or "-" when
 *                                 map_transport found nothing, "!" on error
 * A driver that cannot open SPEC prints the reason and exits 2.
 *
 * The unit tests work in a fresh directory made with mkdtemp(3) below
 * /tmp, removed at the end. texthash files are written here byte for
 * byte; cdb files are made with tinycdb's cdb_make (the real postmap is
 * the integration test's business), in both of postmap's forms (no NUL,
 * and "-N": a NUL after each key and value), and broken on purpose.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "map.h"
#include "tap.h"

#define PATH_LEN	4096
#define LINE_LEN	(4 * MAP_KEY_MAX)
#define CDB_TOC_TEST	2048	/* the header; records follow */

static char work[] = "/tmp/t_map.XXXXXX";
static int made;

/* cleanup - remove the work directory */
static void
cleanup(void)
{
	if (made)
		tap_rmtree(work);
	made = 0;
}

/* wpath - "<work>/name" into buf */
static void
wpath(char *buf, size_t len, const char *name)
{
	if (snprintf(buf, len, "%s/%s", work, name) >= (int)len) {
		errno = ENAMETOOLONG;
		tap_fatal("path");
	}
}

/* spec - "type:<work>/name" into buf */
static const char *
spec(char *buf, size_t len, const char *type, const char *name)
{
	if (snprintf(buf, len, "%s:%s/%s", type, work, name) >= (int)len) {
		errno = ENAMETOOLONG;
		tap_fatal("spec");
	}
	return buf;
}

/* write_file - name in the work directory holds exactly data[0..n) */
static void
write_file(const char *name, const char *data, size_t n)
{
	char p[PATH_LEN];
	FILE *f;

	wpath(p, sizeof(p), name);
	if ((f = fopen(p, "w")) == NULL || fwrite(data, 1, n, f) != n ||
	    fclose(f) != 0)
		tap_fatal(p);
}

/* One record for make_cdb: vlen 0 means strlen(v). */
struct kv {
	const char *k, *v;
	size_t vlen;
};

/* make_cdb - name.cdb from the records kv[0..n), as postmap writes them
 * (nul: as "postmap -N" does) */
static void
make_cdb(const char *name, const struct kv *kv, size_t n, int nul)
{
	struct cdb_make cm;
	char p[PATH_LEN], file[PATH_LEN + 8];
	size_t i, vl;
	int fd;

	wpath(p, sizeof(p), name);
	snprintf(file, sizeof(file), "%s.cdb", p);
	if ((fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0 ||
	    cdb_make_start(&cm, fd) < 0)
		tap_fatal(file);
	for (i = 0; i < n; i++) {
		vl = kv[i].vlen ? kv[i].vlen : strlen(kv[i].v);
		if (cdb_make_add(&cm, kv[i].k, strlen(kv[i].k) + nul,
		    kv[i].v, vl + nul) < 0)
			tap_fatal("cdb_make_add");
	}
	if (cdb_make_finish(&cm) < 0 || close(fd) < 0)
		tap_fatal("cdb_make_finish");
}

/* is_val - key finds exactly want (NULL: is not found) */
static void
is_val(const struct map *m, const char *key, const char *want)
{
	const char *v = NULL;
	char got[LINE_LEN];
	size_t n = 0;
	int r = map_lookup(m, key, &v, &n);

	if (want == NULL) {
		tap_ok(r == 0, "%s: \"%s\" is not found (%d)", m->spec, key, r);
		return;
	}
	snprintf(got, sizeof(got), "%.*s", r == 1 ? (int)n : 0,
	    r == 1 ? v : "");
	if (!tap_ok(r == 1 && strlen(want) == n && memcmp(v, want, n) == 0,
	    "%s: \"%s\" finds \"%s\"", m->spec, key, want))
		tap_diag("got %d \"%s\"", r, got);
}

/* open_ok - open spec or fail the test file */
static void
open_ok(struct map *m, const char *sp)
{
	char why[MAP_WHY_MAX];

	if (!tap_ok(map_open(m, sp, why, sizeof(why)) == 0, "open %s", sp)) {
		tap_diag("%s", why);
		tap_fatal("map_open");
	}
}

/* open_fails - map_open refuses sp with a reason that contains want */
static void
open_fails(const char *sp, const char *want)
{
	char why[MAP_WHY_MAX] = "";
	struct map m;
	int r = map_open(&m, sp, why, sizeof(why));

	if (!tap_ok(r == -1 && strstr(why, want) != NULL &&
	    m.type == MAP_CLOSED, "open %s fails: %s", sp, want))
		tap_diag("got %d: \"%s\"", r, why);
	map_close(&m);
}

/* ---- texthash ---- */

/* A table in postmap's input format with every feature the parser has. */
static const char text_table[] =
    "# a comment line\n"
    "\n"
    "User@Example.COM\tOK  value with  inner   space \t\n"
    "multi   first \t\n"
    "# a comment inside a logical line\n"
    "   \n"
    "\t second\n"
    "  third\n"
    "\"a b\"@Quoted.Example   quoted key\n"
    "back\\ slash   escaped space\n"
    "dup first\n"
    "DUP second\n"
    "@Catch.Example catch-all\r\n"
    "crlf value\r\n"
    "hash#in#key  #not a comment\n"
    "last no-newline";

/* test_texthash_read - keys, values, folding, continuation, duplicates */
static void
test_texthash_read(void)
{
	char sp[PATH_LEN];
	struct map m;

	write_file("text", text_table, sizeof(text_table) - 1);
	open_ok(&m, spec(sp, sizeof(sp), "texthash", "text"));
	is_val(&m, "user@example.com", "OK  value with  inner   space");
	is_val(&m, "USER@EXAMPLE.COM", "OK  value with  inner   space");
	is_val(&m, "multi", "first \t\t second  third");
	is_val(&m, "\"a b\"@quoted.example", "quoted key");
	is_val(&m, "\"a", NULL);
	is_val(&m, "back\\ slash", "escaped space");
	is_val(&m, "dup", "first");
	is_val(&m, "@catch.example", "catch-all");
	is_val(&m, "crlf", "value");
	is_val(&m, "hash#in#key", "#not a comment");
	is_val(&m, "last", "no-newline");
	is_val(&m, "second", NULL);
	is_val(&m, "", NULL);
	is_val(&m, "user@example.co", NULL);
	is_val(&m, "user@example.comm", NULL);
	tap_ok(m.nent == 9, "9 entries (the duplicate dropped): %zu",
	    m.nent);
	map_close(&m);
	map_close(&m);
	tap_ok(map_lookup(&m, "dup", NULL, NULL) == -1 && errno == EBADF,
	    "a closed map answers -1 (EBADF), twice closed");
}

/* test_texthash_empty - a file of comments only is an empty table */
static void
test_texthash_empty(void)
{
	char sp[PATH_LEN];
	struct map m;

	write_file("empty", "# nothing\n\n", 11);
	open_ok(&m, spec(sp, sizeof(sp), "texthash", "empty"));
	is_val(&m, "nothing", NULL);
	map_close(&m);
	write_file("zero", "", 0);
	open_ok(&m, spec(sp, sizeof(sp), "texthash", "zero"));
	is_val(&m, "x", NULL);
	map_close(&m);
}

/* bad_text - a texthash file with body is refused with want */
static void
bad_text(const char *body, size_t n, const char *want)
{
	char sp[PATH_LEN];

	write_file("bad", body, n);
	open_fails(spec(sp, sizeof(sp), "texthash", "bad"), want);
}

/* test_texthash_bad - what Postfix would skip with a warning fails here */
static void
test_texthash_bad(void)
{
	char *big;
	size_t n;

	bad_text("a b\nnovalue\n", 12, "bad: line 2: expected \"key "
	    "whitespace value\"");
	bad_text("a b\nkey   \t\n", 12, "line 2: expected");
	bad_text("\"a b c\n", 7, "line 1: unbalanced '\"'");
	bad_text("  lead x\n", 9, "line 1: starts with white space but "
	    "continues nothing");
	bad_text("a b\0c\n", 6, "NUL byte in the file");
	if ((big = malloc(MAP_TEXT_MAX + 2)) == NULL)
		tap_fatal("malloc");
	n = (size_t)CONF_LINE_MAX + 1;
	memset(big, 'x', n);
	big[1] = ' ';
	bad_text(big, n, "line 1: logical line longer than 8192 bytes");
	memcpy(big, "k v\n", 4);
	memset(big + 4, ' ', 10);
	big[14] = 'y';
	memset(big + 15, 'z', CONF_LINE_MAX);
	bad_text(big, 15 + CONF_LINE_MAX, "line 1: logical line longer");
	memset(big, '#', MAP_TEXT_MAX + 1);
	bad_text(big, MAP_TEXT_MAX + 1, "file too large (more than "
	    "1048576 bytes)");
	free(big);
}

/* test_texthash_limits - a line of exactly CONF_LINE_MAX, a file of
 * exactly MAP_TEXT_MAX, and a key of MAP_KEY_MAX + 1 bytes */
static void
test_texthash_limits(void)
{
	char sp[PATH_LEN], *big, key[MAP_KEY_MAX + 2];
	struct map m;

	if ((big = malloc(MAP_TEXT_MAX)) == NULL)
		tap_fatal("malloc");
	memset(big, '#', MAP_TEXT_MAX);
	memcpy(big, "k ", 2);
	memset(big + 2, 'v', CONF_LINE_MAX - 2);
	big[CONF_LINE_MAX] = '\n';
	write_file("limits", big, MAP_TEXT_MAX);
	open_ok(&m, spec(sp, sizeof(sp), "texthash", "limits"));
	big[CONF_LINE_MAX] = '\0';
	is_val(&m, "k", big + 2);
	memset(key, 'k', sizeof(key) - 1);
	key[MAP_KEY_MAX] = '\0';
	is_val(&m, key, NULL);
	key[MAP_KEY_MAX] = 'k';
	key[MAP_KEY_MAX + 1] = '\0';
	tap_ok(map_lookup(&m, key, NULL, NULL) == -1 && errno == ENAMETOOLONG,
	    "a key of %d bytes is an error (ENAMETOOLONG), not a miss",
	    MAP_KEY_MAX + 1);
	map_close(&m);
	free(big);
}

/* ---- specs and files ---- */

/* test_specs - map_spec_ok and map_open on bad specs */
static void
test_specs(void)
{
	static const char *const bad[][2] = {
		{ "hash:/etc/postfix/x", "unsupported map type \"hash\"" },
		{ "/etc/smap/x", "no map type" },
		{ "cdb:etc/x", "the path must be absolute" },
		{ "cdb:", "the path must be absolute" },
		{ "texthash:/a b", "space or control character" },
		{ "texthash:/a\tb", "space or control character" },
		{ "CDB:/x", "unsupported map type \"CDB\"" },
	};
	char why[MAP_WHY_MAX], longp[MAP_PATH_MAX + 16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (!tap_ok(map_spec_ok(bad[i][0], why, sizeof(why)) == -1 &&
		    strstr(why, bad[i][1]) != NULL, "spec \"%s\": %s",
		    bad[i][0], bad[i][1]))
			tap_diag("why: %s", why);
		open_fails(bad[i][0], bad[i][1]);
	}
	tap_ok(map_spec_ok("cdb:/etc/smap/relay_recipients", why,
	    sizeof(why)) == 0, "cdb:/etc/smap/relay_recipients is good");
	tap_ok(map_spec_ok("texthash:/etc/smap/transport", why,
	    sizeof(why)) == 0, "texthash:/etc/smap/transport is good");
	memcpy(longp, "cdb:/", 5);
	memset(longp + 5, 'p', MAP_PATH_MAX);
	longp[MAP_PATH_MAX + 4] = '\0';
	tap_ok(map_spec_ok(longp, why, sizeof(why)) == 0,
	    "a path of %d bytes is good", MAP_PATH_MAX);
	longp[MAP_PATH_MAX + 4] = 'p';
	longp[MAP_PATH_MAX + 5] = '\0';
	tap_ok(map_spec_ok(longp, why, sizeof(why)) == -1 &&
	    strstr(why, "path longer than 1024 bytes") != NULL,
	    "a path of %d bytes is refused", MAP_PATH_MAX + 1);
}

/* test_files - missing, not regular, FIFO: refused without hanging */
static void
test_files(void)
{
	char sp[PATH_LEN], p[PATH_LEN], want[PATH_LEN + 32];

	spec(sp, sizeof(sp), "cdb", "missing");
	wpath(p, sizeof(p), "missing.cdb");
	snprintf(want, sizeof(want), "%s: no such file", p);
	open_fails(sp, want);
	open_fails(spec(sp, sizeof(sp), "texthash", "missing"),
	    "missing: no such file");
	wpath(p, sizeof(p), "dir.cdb");
	if (mkdir(p, 0700) < 0)
		tap_fatal("mkdir");
	open_fails(spec(sp, sizeof(sp), "cdb", "dir"),
	    "dir.cdb: not a regular file");
	wpath(p, sizeof(p), "fifo");
	if (mkfifo(p, 0600) < 0)
		tap_fatal("mkfifo");
	open_fails(spec(sp, sizeof(sp), "texthash", "fifo"),
	    "fifo: not a regular file");
	wpath(p, sizeof(p), "dir.cdb/x");
	open_fails(spec(sp, sizeof(sp), "texthash", "text/x"),
	    "text/x: a path component is not a directory");
}

/* denied_child - as nobody, the result of opening sp; 0 when it was
 * refused with "permission denied" */
static int
denied_child(const char *sp)
{
	char why[MAP_WHY_MAX] = "";
	struct map m;

	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
		return 3;
	if (map_open(&m, sp, why, sizeof(why)) == 0)
		return 1;
	return strstr(why, ": permission denied") != NULL ? 0 : 2;
}

/* test_denied - an unreadable file is "permission denied" */
static void
test_denied(void)
{
	char sp[PATH_LEN], p[PATH_LEN];
	pid_t pid;
	int st;

	write_file("secret", "k v\n", 4);
	wpath(p, sizeof(p), "secret");
	if (chmod(p, 0) < 0 || chmod(work, 0755) < 0)
		tap_fatal("chmod");
	spec(sp, sizeof(sp), "texthash", "secret");
	fflush(stdout);
	if ((pid = fork()) < 0)
		tap_fatal("fork");
	if (pid == 0)
		_exit(denied_child(sp));
	if (waitpid(pid, &st, 0) != pid)
		tap_fatal("waitpid");
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "open %s as an "
	    "unprivileged user fails: permission denied (child: %d)", sp,
	    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	chmod(work, 0700);
}

/* ---- cdb ---- */

static const struct kv cdb_kv[] = {
	{ "user@example.com", "OK", 0 },
	{ "a+b@x.example", "exact with extension", 0 },
	{ "@catch.example", "catch", 0 },
	{ "empty", "", 0 },
	{ "value", "with\0nul", 8 },	/* Postfix sees a C string: "with" */
};

/* test_cdb_forms - postmap's two forms, read alike */
static void
test_cdb_forms(void)
{
	char sp[PATH_LEN];
	struct map m;
	int nul;

	for (nul = 0; nul <= 1; nul++) {
		make_cdb(nul ? "tablen" : "table", cdb_kv, 5, nul);
		open_ok(&m, spec(sp, sizeof(sp), "cdb",
		    nul ? "tablen" : "table"));
		tap_ok(m.nul == nul, "%s: the first record says NUL form %d",
		    m.spec, nul);
		is_val(&m, "user@example.com", "OK");
		is_val(&m, "User@Example.COM", "OK");
		is_val(&m, "a+b@x.example", "exact with extension");
		is_val(&m, "@Catch.Example", "catch");
		is_val(&m, "empty", "");
		is_val(&m, "value", "with");
		is_val(&m, "user@example.co", NULL);
		is_val(&m, "valu", NULL);
		is_val(&m, "", NULL);
		map_close(&m);
	}
}

/* test_cdb_empty - a cdb without records: every key misses */
static void
test_cdb_empty(void)
{
	char sp[PATH_LEN];
	struct map m;

	make_cdb("none", cdb_kv, 0, 0);
	open_ok(&m, spec(sp, sizeof(sp), "cdb", "none"));
	is_val(&m, "user@example.com", NULL);
	map_close(&m);
}

/* bad_cdb - name.cdb holding data[0..n) is "not a cdb file" */
static void
bad_cdb(const char *name, const char *data, size_t n, const char *want)
{
	char sp[PATH_LEN], file[PATH_LEN];

	snprintf(file, sizeof(file), "%s.cdb", name);
	write_file(file, data, n);
	open_fails(spec(sp, sizeof(sp), "cdb", name), want);
}

/* test_cdb_bad - text, short, truncated and extended files */
static void
test_cdb_bad(void)
{
	char p[PATH_LEN], *good, *buf;
	size_t n;

	if ((buf = calloc(1, 8192)) == NULL)
		tap_fatal("calloc");
	memset(buf, 'a', 4096);
	bad_cdb("short", buf, 2047, "short.cdb: not a cdb file (2047 bytes)");
	bad_cdb("zeros", "", 0, "zeros.cdb: not a cdb file (0 bytes)");
	memset(buf, 0, 4096);
	bad_cdb("nulls", buf, 4096, "nulls.cdb: not a cdb file (bad header");
	memset(buf, 'a', 4096);
	bad_cdb("text", buf, 4096, "text.cdb: not a cdb file (bad header");
	make_cdb("good", cdb_kv, 5, 0);
	wpath(p, sizeof(p), "good.cdb");
	if ((good = tap_slurp(p, &n)) == NULL || n > 8190)
		tap_fatal("good.cdb");
	bad_cdb("cut", good, n - 1, "cut.cdb: not a cdb file (bad header");
	memcpy(buf, good, n);
	buf[n] = '\n';
	bad_cdb("long", buf, n + 1, "long.cdb: not a cdb file (bad header");
	memcpy(buf, good, n);
	memset(buf + CDB_TOC_TEST, 0xff, 4);	/* the first record's klen */
	bad_cdb("rec1", buf, n, "rec1.cdb: not a cdb file (bad header or "
	    "first record)");
	free(good);
	free(buf);
}

/* test_cdb_corrupt - a broken second record: its lookup is an error,
 * not a miss, in map_lookup and in both lookup orders; the other keys
 * still work */
static void
test_cdb_corrupt(void)
{
	static const struct kv kv[] = { { "one@x.example", "1", 0 },
	    { "two@x.example", "2", 0 }, { "three@x.example", "3", 0 } };
	char sp[PATH_LEN], p[PATH_LEN], *data;
	const char *v;
	size_t n;
	struct map m;

	make_cdb("rec2", kv, 3, 0);
	wpath(p, sizeof(p), "rec2.cdb");
	if ((data = tap_slurp(p, &n)) == NULL)
		tap_fatal("rec2.cdb");
	/* the value lengths of records 1 and 2 (each: lengths, key, value) */
	memset(data + CDB_TOC_TEST + 4, 0x7f, 4);
	memset(data + CDB_TOC_TEST + 8 + strlen(kv[0].k) + 1 + 4, 0xff, 4);
	write_file("rec2.cdb", data, n);
	free(data);
	open_ok(&m, spec(sp, sizeof(sp), "cdb", "rec2"));
	is_val(&m, "three@x.example", "3");
	errno = 0;
	tap_ok(map_lookup(&m, "one@x.example", NULL, NULL) == -1 &&
	    errno == EPROTO, "a corrupt first record is an error (EPROTO), "
	    "not a miss");
	errno = 0;
	tap_ok(map_lookup(&m, "two@x.example", NULL, NULL) == -1 &&
	    errno == EPROTO, "a corrupt record is an error (EPROTO), not a "
	    "miss");
	tap_ok(map_recipient(&m, "two", "x.example", "+") == -1,
	    "map_recipient passes the error on");
	tap_ok(map_transport(&m, "two", "x.example", "+", &v, &n) == -1,
	    "map_transport passes the error on");
	tap_ok(map_recipient(&m, "three", "x.example", "+") == 1,
	    "map_recipient still finds three@x.example");
	map_close(&m);
}

/* ---- the lookup orders ---- */

static const struct kv rcpt_kv[] = {
	{ "user@example.com", "x", 0 },
	{ "owner@list.example", "x", 0 },
	{ "list@list.example", "x", 0 },
	{ "a+b@plus.example", "x", 0 },
	{ "@catch.example", "x", 0 },
	{ "postmaster@example.com", "x", 0 },
	{ "[192.0.2.1]", "x", 0 },
	{ "@[192.0.2.1]", "x", 0 },
};

/* is_rcpt - map_recipient(local, domain, delim) is want */
static void
is_rcpt(const struct map *m, const char *local, const char *domain,
    const char *delim, int want)
{
	int r = map_recipient(m, local, domain, delim);

	tap_ok(r == want, "recipient %s@%s, delimiters \"%s\": %d (got %d)",
	    local, domain, delim ? delim : "(null)", want, r);
}

/* test_recipient - relay_recipient_maps order and extensions */
static void
test_recipient(void)
{
	char sp[PATH_LEN];
	struct map m;

	make_cdb("rcpt", rcpt_kv, 8, 0);
	open_ok(&m, spec(sp, sizeof(sp), "cdb", "rcpt"));
	is_rcpt(&m, "user", "example.com", "+", 1);
	is_rcpt(&m, "USER", "Example.COM", "", 1);
	is_rcpt(&m, "user+tag", "example.com", "+", 1);
	is_rcpt(&m, "user+tag", "example.com", "", 0);
	is_rcpt(&m, "user+tag", "example.com", NULL, 0);
	is_rcpt(&m, "user-tag", "example.com", "+", 0);
	is_rcpt(&m, "user-tag", "example.com", "+-", 1);
	is_rcpt(&m, "user+a-b", "example.com", "-+", 1);
	is_rcpt(&m, "user+", "example.com", "+", 1);
	is_rcpt(&m, "+user", "example.com", "+", 0);
	is_rcpt(&m, "a+b", "plus.example", "+", 1);
	is_rcpt(&m, "a+c", "plus.example", "+", 0);
	is_rcpt(&m, "owner-list", "list.example", "-", 0);
	is_rcpt(&m, "list-request", "list.example", "-", 0);
	is_rcpt(&m, "list-x", "list.example", "-", 1);
	is_rcpt(&m, "owner-list", "list.example", "+", 0);
	is_rcpt(&m, "anyone", "catch.example", "+", 1);
	is_rcpt(&m, "anyone", "sub.catch.example", "+", 0);
	is_rcpt(&m, "other", "example.com", "+", 0);
	is_rcpt(&m, "postmaster", "example.com", "+", 1);
	is_rcpt(&m, "anyone", "[192.0.2.1]", "+", 0);
	tap_ok(map_recipient(&m, "user", "", "+") == -1 && errno == EINVAL,
	    "an empty domain is an error (EINVAL)");
	map_close(&m);
}

static const char transport_text[] =
    "user@example.com   smtp:[user.example]\n"
    "u+special@example.com  lmtp:special\n"
    "example.com        smtp:[domain.example]\n"
    ".example.com       smtp:[sub.example]\n"
    ".lab.example.net   relay:[lab.example]\n"
    "[192.0.2.1]        smtp:[literal.example]\n";

/* is_route - map_transport(local, domain, "+") finds want (NULL: 0) */
static void
is_route(const struct map *m, const char *local, const char *domain,
    const char *want)
{
	const char *v = "";
	size_t n = 0;
	int r = map_transport(m, local, domain, "+", &v, &n);

	if (want == NULL)
		tap_ok(r == 0, "%s: transport %s@%s: none (got %d)", m->spec,
		    local ? local : "(null)", domain, r);
	else if (!tap_ok(r == 1 && n == strlen(want) &&
	    memcmp(v, want, n) == 0, "%s: transport %s@%s: %s", m->spec,
	    local ? local : "(null)", domain, want))
		tap_diag("got %d \"%.*s\"", r, (int)n, v);
}

/* test_transport - transport(5) order, with and without "*" */
static void
test_transport(void)
{
	char sp[PATH_LEN], text[sizeof(transport_text) + 32];
	struct map m;
	int wild;

	for (wild = 0; wild <= 1; wild++) {
		snprintf(text, sizeof(text), "%s%s", transport_text,
		    wild ? "*  smtp:[wild.example]\n" : "");
		write_file("transport", text, strlen(text));
		open_ok(&m, spec(sp, sizeof(sp), "texthash", "transport"));
		is_route(&m, "user", "example.com", "smtp:[user.example]");
		is_route(&m, "User+ext", "EXAMPLE.com", "smtp:[user.example]");
		is_route(&m, "u+special", "example.com", "lmtp:special");
		is_route(&m, "u+other", "example.com", "smtp:[domain.example]");
		is_route(&m, "other", "example.com", "smtp:[domain.example]");
		is_route(&m, NULL, "example.com", "smtp:[domain.example]");
		is_route(&m, "", "a.example.com", "smtp:[sub.example]");
		is_route(&m, "user", "a.b.example.com", "smtp:[sub.example]");
		is_route(&m, "x", "h.lab.example.net", "relay:[lab.example]");
		is_route(&m, "x", "[192.0.2.1]", "smtp:[literal.example]");
		is_route(&m, "x", "lab.example.net",
		    wild ? "smtp:[wild.example]" : NULL);
		is_route(&m, "x", "example.net",
		    wild ? "smtp:[wild.example]" : NULL);
		is_route(&m, "x", "[192.0.2.2]",
		    wild ? "smtp:[wild.example]" : NULL);
		map_close(&m);
	}
}

/* run_cases - every unit test */
static void
run_cases(void)
{
	test_texthash_read();
	test_texthash_empty();
	test_texthash_bad();
	test_texthash_limits();
	test_specs();
	test_files();
	test_denied();
	test_cdb_forms();
	test_cdb_empty();
	test_cdb_bad();
	test_cdb_corrupt();
	test_recipient();
	test_transport();
}

/* ---- the driver ---- */

/* drive_line - the next stdin line without its newline, or NULL */
static char *
drive_line(char *buf, size_t len)
{
	size_t n;

	if (fgets(buf, (int)len, stdin) == NULL)
		return NULL;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return buf;
}

/* drive_addr - split "local@domain" at its last '@' (local may be "") */
static const char *
drive_addr(char *a, const char **domain)
{
	char *at = strrchr(a, '@');

	if (at == NULL) {
		*domain = a;
		return "";
	}
	*at = '\0';
	*domain = at + 1;
	return a;
}

/* drive_one - one query in the mode asked for */
static void
drive_one(int mode, const struct map *m, char *key, const char *delim)
{
	char copy[LINE_LEN];
	const char *v, *local, *domain;
	size_t n;
	int r;

	snprintf(copy, sizeof(copy), "%s", key);
	if (mode == 'q') {
		if (map_lookup(m, key, &v, &n) == 1)
			printf("%s\t%.*s\n", key, (int)n, v);
		return;
	}
	local = drive_addr(copy, &domain);
	if (mode == 'r') {
		printf("%s\t%d\n", key, map_recipient(m, local, domain, delim));
		return;
	}
	r = map_transport(m, local, domain, delim, &v, &n);
	if (r == 1)
		printf("%s\t=%.*s\n", key, (int)n, v);
	else
		printf("%s\t%s\n", key, r == 0 ? "-" : "!");
}

/* drive - answer queries from stdin */
static int
drive(int mode, const char *sp, const char *delim)
{
	char why[MAP_WHY_MAX], line[LINE_LEN];
	struct map m;

	if (map_open(&m, sp, why, sizeof(why)) < 0) {
		fprintf(stderr, "t_map: %s\n", why);
		return 2;
	}
	while (drive_line(line, sizeof(line)) != NULL)
		drive_one(mode, &m, line, delim);
	map_close(&m);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	if (argc == 3 && strcmp(argv[1], "-q") == 0)
		return drive('q', argv[2], "");
	if (argc == 4 && (strcmp(argv[1], "-r") == 0 ||
	    strcmp(argv[1], "-t") == 0))
		return drive(argv[1][1], argv[2], argv[3]);
	if (argc != 1) {
		fprintf(stderr, "usage: t_map [-q SPEC | -r SPEC DELIM | "
		    "-t SPEC DELIM]\n");
		return 64;
	}
	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	made = 1;
	tap_on_fatal(cleanup);
	run_cases();
	cleanup();
	return tap_done();
}
