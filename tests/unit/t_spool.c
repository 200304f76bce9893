/*
 * t_spool.c - unit tests for common/spool.c: writer, commit and reader.
 *
 * Usage: t_spool [golden-dir]   (default tests/golden)
 *
 * Works in a fresh directory made with mkdtemp(3) below /tmp, with tmp/
 * and new/ in it, because the spool functions use the relative paths
 * "tmp/ID" and "new/ID"; the directory is removed at the end.
 *
 * Writer: a fixed envelope and message are written, finalised and
 * committed; the file in new/ must equal <golden>/spool/written.spool
 * byte for byte (that file was made by hand from the format described
 * at the top of spool.c). Commit must give mode 0640, leave tmp/ empty
 * and never replace a file in new/.
 *
 * Reader: every good case must parse with max_rcpt 100 and dump as its
 * .out file; every bad case (made by spool/make-bad.py) must be refused
 * with the first line of its .out file as the reason. A listed file that
 * is missing fails, and so does a good-* or bad-* file that is not
 * listed here.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "spool.h"
#include "tap.h"

/* Not PATH_MAX: <limits.h> resolves to common/limits.h under -iquote. */
#define PATH_LEN	4096
#define WHY_MAX		256
#define MAX_RCPT	100

#define GOLDEN_ID	"6921A4F30B1C21A2B"
#define CLASH_ID	"6921A4F30B1C21A2C"
#define TAKEN_ID	"6921A4F30B1C21A2D"
#define MESSAGE		"Received: ...\r\nSubject: golden\r\n\r\n" \
			"line one\r\n.dot line\r\n"

static const char *const good_cases[] = {
	"written",
	"good-null-sender", "good-postmaster", "good-ipv6",
	"good-unknown-client", "good-smtp", "good-7bit", "good-literal",
	"good-100rcpt", "good-empty-body", "good-opaque-body",
	"good-max-helo", "good-id31", "good-long-local", "good-fraction",
};

/* Keep in step with CASES in tests/golden/spool/make-bad.py. */
static const char *const bad_cases[] = {
	"bad-empty", "bad-magic", "bad-magic-trailer", "bad-version2",
	"bad-crlf", "bad-only-magic", "bad-missing-id", "bad-missing-proto",
	"bad-missing-from", "bad-missing-size", "bad-order-helo-client",
	"bad-order-rcpt-from", "bad-order-size-rcpt", "bad-dup-id",
	"bad-dup-body", "bad-dup-from", "bad-dup-size", "bad-unknown-tail",
	"bad-unknown-head", "bad-id-lower", "bad-id-nonhex", "bad-id-path",
	"bad-id-long", "bad-id-empty", "bad-arrival-alpha",
	"bad-arrival-negative", "bad-arrival-overflow", "bad-arrival-long",
	"bad-arrival-dot", "bad-arrival-fraction7", "bad-arrival-twodots", "bad-client-noport",
	"bad-client-emptyport", "bad-client-badaddr", "bad-client-name",
	"bad-client-scope", "bad-client-port-big", "bad-client-port-sign",
	"bad-client-twospaces", "bad-helo-space", "bad-helo-twospaces",
	"bad-helo-empty", "bad-helo-noblank", "bad-helo-long",
	"bad-helo-8bit", "bad-helo-nul", "bad-helo-tab", "bad-proto-lmtp",
	"bad-proto-lower", "bad-proto-trailing", "bad-body-binary",
	"bad-body-8bitmime", "bad-from-nobrackets", "bad-from-option",
	"bad-from-route", "bad-from-postmaster", "bad-from-cr",
	"bad-rcpt-pipe", "bad-rcpt-file", "bad-rcpt-option", "bad-rcpt-null",
	"bad-rcpt-route", "bad-rcpt-nobrackets", "bad-rcpt-twospaces",
	"bad-rcpt-trailing", "bad-rcpt-nul", "bad-rcpt-cr", "bad-rcpt-lf",
	"bad-rcpt-8bit", "bad-rcpt-path-long", "bad-from-path-long",
	"bad-rcpt-1024",
	"bad-rcpt-1025", "bad-rcpt-huge",
	"bad-rcpt-101", "bad-no-rcpt", "bad-size-short", "bad-size-long",
	"bad-size-alpha", "bad-size-sign", "bad-size-truncated",
	"bad-size-extra", "bad-no-blank", "bad-eof-in-envelope",
	"bad-eof-after-size",
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char golden[PATH_LEN];	/* absolute <golden-dir>/spool */
static char work[] = "/tmp/t_spool.XXXXXX";
static int made;		/* work exists */

static void	setup(const char *);
static void	gpath(char *, size_t, const char *, const char *);
static void	cleanup(void);
static int	dir_entries(const char *);
static int	write_file(const char *, const char *);
static char	*dump(const struct envelope *);
static int	read_path(const char *, struct envelope *, size_t, char *);
static void	golden_envelope(struct envelope *, char **, size_t);
static void	test_writer(void);
static void	test_commit_noreplace(void);
static void	test_create_clash(void);
static void	test_good(const char *);
static void	test_bad(const char *);
static int	listed(const char *);
static void	test_unlisted(void);
static void	test_max_rcpt(void);

/* setup - the golden path, then a fresh spool directory as cwd */
static void
setup(const char *dir)
{
	char rel[PATH_LEN];

	if (snprintf(rel, sizeof(rel), "%s/spool", dir) >= (int)sizeof(rel) ||
	    realpath(rel, golden) == NULL) {
		tap_diag("golden directory %s/spool", dir);
		tap_fatal("realpath");
	}
	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	made = 1;
	if (chdir(work) < 0 || mkdir(LAYOUT_TMP, 0700) < 0 ||
	    mkdir(LAYOUT_NEW, 0700) < 0)
		tap_fatal("spool directory");
}

/* gpath - <golden>/name suffix into buf */
static void
gpath(char *buf, size_t len, const char *name, const char *suffix)
{
	int n = snprintf(buf, len, "%s/%s%s", golden, name, suffix);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		tap_fatal("golden path");
	}
}

/* cleanup - remove the temp spool directory */
static void
cleanup(void)
{
	if (!made)
		return;
	made = 0;
	if (chdir("/") < 0 || tap_rmtree(work) < 0)
		tap_diag("cannot remove %s: %s", work, strerror(errno));
}

/* dir_entries - number of names in dir besides . and .., -1 on error */
static int
dir_entries(const char *dir)
{
	struct dirent *d;
	DIR *dp;
	int n = 0;

	if ((dp = opendir(dir)) == NULL)
		return -1;
	while ((d = readdir(dp)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

/* write_file - create path exclusively with the text s */
static int
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return -1;
	rc = spool_write(fd, s, strlen(s));
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* dump - the parsed envelope, one "field value" a line, malloc'd */
static char *
dump(const struct envelope *e)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	fprintf(fp, "version %d\nid %s\narrival %lld", e->version, e->id,
	    e->arrival);
	if (e->arrival_us != 0)
		fprintf(fp, ".%06ld", e->arrival_us);
	fprintf(fp, "\nclient %s\nport %u\nhelo %s\nproto %s\nbody8 %d\n"
	    "sender %s\n", e->client, e->port, e->helo, e->proto, e->body8,
	    e->sender);
	for (i = 0; i < e->nrcpt; i++)
		fprintf(fp, "rcpt %s\n", e->rcpt[i]);
	fprintf(fp, "size %lld\nbody_offset %lld\n", e->size,
	    (long long)e->body_offset);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* read_path - open path and run the reader; -2 when it cannot be opened */
static int
read_path(const char *path, struct envelope *e, size_t max, char *why)
{
	int fd, rc;

	why[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -2;
	rc = spool_read_envelope(fd, e, max, why, WHY_MAX);
	close(fd);
	return rc;
}

/* golden_envelope - the envelope of written.spool, before the message */
static void
golden_envelope(struct envelope *e, char **rcpt, size_t nrcpt)
{
	memset(e, 0, sizeof(*e));
	e->version = SPOOL_VERSION;
	snprintf(e->id, sizeof(e->id), "%s", GOLDEN_ID);
	e->arrival = 1795412345;
	e->arrival_us = 42;
	snprintf(e->client, sizeof(e->client), "192.0.2.10");
	e->port = 4711;
	snprintf(e->helo, sizeof(e->helo), "mail.example.org");
	snprintf(e->proto, sizeof(e->proto), "ESMTP");
	e->body8 = 0;
	snprintf(e->sender, sizeof(e->sender), "<alice@example.org>");
	e->rcpt = rcpt;
	e->nrcpt = nrcpt;
}

/* test_writer - create, envelope, message, final, commit: the golden file */
static void
test_writer(void)
{
	static char rcpt1[] = "<bob@example.com>", rcpt2[] = "<carol@example.net>";
	static char *rcpts[] = { rcpt1, rcpt2 };
	char id[SPOOL_ID_MAX + 1] = GOLDEN_ID, path[PATH_LEN], gfile[PATH_LEN], why[WHY_MAX], *got, *want, *d;
	struct envelope e, r;
	off_t start, end;
	size_t glen, wlen;
	struct stat st;
	int fd;

	golden_envelope(&e, rcpts, NELEM(rcpts));
	fd = layout_create(id, sizeof(id));
	if (!tap_ok(fd >= 0, "spool_create %s", GOLDEN_ID))
		tap_fatal("spool_create");
	tap_is(id, GOLDEN_ID, "spool_create keeps the id given");
	tap_ok(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600, "temp file has mode 0600");
	tap_ok(access(LAYOUT_TMP "/" GOLDEN_ID, F_OK) == 0,
	    "temp file is tmp/ID");
	tap_ok(spool_write_envelope(fd, &e) == 0, "spool_write_envelope");
	start = lseek(fd, 0, SEEK_CUR);
	tap_ok(spool_write(fd, MESSAGE, sizeof(MESSAGE) - 1) == 0,
	    "spool_write message");
	end = lseek(fd, 0, SEEK_CUR);
	tap_ok(start > 0 && end - start == (off_t)sizeof(MESSAGE) - 1,
	    "message of %zu bytes after an envelope of %lld",
	    sizeof(MESSAGE) - 1, (long long)start);
	e.size = (long long)(end - start);
	e.body8 = 1;
	tap_ok(spool_write_final(fd, &e) == 0, "spool_write_final");
	tap_ok(layout_commit(fd, id) == 0, "spool_commit");

	snprintf(path, sizeof(path), "%s/%s", LAYOUT_NEW, GOLDEN_ID);
	gpath(gfile, sizeof(gfile), "written", ".spool");
	got = tap_slurp(path, &glen);
	want = tap_slurp(gfile, &wlen);
	tap_ok(want != NULL, "golden file written.spool present");
	tap_ok(got != NULL && want != NULL && glen == wlen &&
	    memcmp(got, want, glen) == 0, "new/ID equals written.spool "
	    "(%zu bytes, want %zu)", got ? glen : 0, want ? wlen : 0);
	if (got != NULL && want != NULL)
		tap_is(got, want, "new/ID as text");
	free(got);
	free(want);
	tap_ok(lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0644 && st.st_nlink == 1,
	    "committed file: regular, mode 0644, one link (mode %o)",
	    (unsigned)(st.st_mode & 07777));
	tap_ok(dir_entries(LAYOUT_TMP) == 0, "tmp/ is empty after commit");
	tap_ok(dir_entries(LAYOUT_NEW) == 1, "new/ holds one file");

	/* What the writer wrote, the reader takes back unchanged. */
	tap_ok(read_path(path, &r, MAX_RCPT, why) == 0,
	    "reader accepts the written file (%s)", why);
	d = dump(&r);
	gpath(gfile, sizeof(gfile), "written", ".out");
	want = tap_slurp(gfile, NULL);
	tap_is(d, want, "written file dumps as written.out");
	free(d);
	free(want);
	spool_free_envelope(&r);
}

/* test_commit_noreplace - commit must not replace a file in new/ */
static void
test_commit_noreplace(void)
{
	char id[SPOOL_ID_MAX + 1] = CLASH_ID, *s;
	int fd, rc, err;

	tap_ok(write_file(LAYOUT_NEW "/" CLASH_ID, "existing\n") == 0,
	    "new/%s made by hand", CLASH_ID);
	fd = layout_create(id, sizeof(id));
	if (!tap_ok(fd >= 0, "spool_create %s", CLASH_ID))
		tap_fatal("spool_create");
	tap_is(id, CLASH_ID, "spool_create keeps the id (only new/ has it)");
	tap_ok(spool_write(fd, "replacement\n", 12) == 0, "write temp file");
	errno = 0;
	rc = layout_commit(fd, id);
	err = errno;
	tap_ok(rc == -1 && err == EEXIST,
	    "spool_commit onto an existing new/ID fails with EEXIST "
	    "(rc %d, %s)", rc, strerror(err));
	s = tap_slurp(LAYOUT_NEW "/" CLASH_ID, NULL);
	tap_is(s, "existing\n", "the existing file is intact");
	free(s);
	tap_ok(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
	    "spool_commit closed the fd on failure");
	tap_ok(access(LAYOUT_TMP "/" CLASH_ID, F_OK) == 0,
	    "the temp file is still there for spool_abort");
	layout_abort(-1, id);
	tap_ok(dir_entries(LAYOUT_TMP) == 0, "spool_abort emptied tmp/");
	tap_ok(unlink(LAYOUT_NEW "/" CLASH_ID) == 0, "remove new/%s", CLASH_ID);
}

/* test_create_clash - an id taken in tmp/ gives a fresh one */
static void
test_create_clash(void)
{
	char id[SPOOL_ID_MAX + 1] = TAKEN_ID, path[PATH_LEN], *s;
	size_t n;
	int fd, hex = 1;

	tap_ok(write_file(LAYOUT_TMP "/" TAKEN_ID, "taken\n") == 0,
	    "tmp/%s made by hand", TAKEN_ID);
	fd = layout_create(id, sizeof(id));
	tap_ok(fd >= 0 && strcmp(id, TAKEN_ID) != 0,
	    "spool_create on a taken id picks another (%s)", id);
	for (n = 0; id[n]; n++)
		if (!(id[n] >= '0' && id[n] <= '9') &&
		    !(id[n] >= 'A' && id[n] <= 'F'))
			hex = 0;
	tap_ok(hex && n > 0 && n <= SPOOL_ID_MAX,
	    "the fresh id is 1..%d uppercase hex digits", SPOOL_ID_MAX);
	snprintf(path, sizeof(path), "%s/%s", LAYOUT_TMP, id);
	tap_ok(fd >= 0 && access(path, F_OK) == 0, "tmp/<fresh id> exists");
	s = tap_slurp(LAYOUT_TMP "/" TAKEN_ID, NULL);
	tap_is(s, "taken\n", "the taken file is intact");
	free(s);
	if (fd >= 0)
		layout_abort(fd, id);
	tap_ok(access(path, F_OK) < 0 && errno == ENOENT,
	    "spool_abort removed tmp/<fresh id>");
	tap_ok(unlink(LAYOUT_TMP "/" TAKEN_ID) == 0, "remove tmp/%s", TAKEN_ID);
	tap_ok(dir_entries(LAYOUT_TMP) == 0, "tmp/ is empty");
}

/* test_good - name.spool parses and dumps as name.out */
static void
test_good(const char *name)
{
	char path[PATH_LEN], why[WHY_MAX], *want, *got;
	struct envelope e;
	int rc;

	gpath(path, sizeof(path), name, ".out");
	want = tap_slurp(path, NULL);
	gpath(path, sizeof(path), name, ".spool");
	rc = read_path(path, &e, MAX_RCPT, why);
	if (rc == -2 || want == NULL) {
		tap_ok(0, "%s: golden .spool or .out missing", name);
		if (rc == 0)
			spool_free_envelope(&e);
		free(want);
		return;
	}
	if (!tap_ok(rc == 0, "%s: accepted", name)) {
		tap_diag("refused: %s", why);
		tap_ok(0, "%s: dump", name);
		free(want);
		return;
	}
	got = dump(&e);
	tap_is(got, want, "%s: dump", name);
	free(got);
	free(want);
	spool_free_envelope(&e);
}

/* test_bad - name.spool is refused for the reason on line 1 of name.out */
static void
test_bad(const char *name)
{
	char path[PATH_LEN], why[WHY_MAX], *want, *nl;
	struct envelope e;
	int rc;

	gpath(path, sizeof(path), name, ".out");
	want = tap_slurp(path, NULL);
	gpath(path, sizeof(path), name, ".spool");
	rc = read_path(path, &e, MAX_RCPT, why);
	if (rc == -2 || want == NULL) {
		tap_ok(0, "%s: golden .spool or .out missing", name);
		if (rc == 0)
			spool_free_envelope(&e);
		free(want);
		return;
	}
	if ((nl = strchr(want, '\n')) != NULL)
		*nl = '\0';
	if (rc == 0) {
		tap_ok(0, "%s: refused (want \"%s\")", name, want);
		spool_free_envelope(&e);
	} else {
		tap_is(why, want, "%s: refused", name);
		tap_ok(e.rcpt == NULL && e.nrcpt == 0,
		    "%s: nothing left allocated", name);
	}
	free(want);
}

/* listed - is the case name (without suffix) in one of the lists? */
static int
listed(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(good_cases); i++)
		if (strcmp(name, good_cases[i]) == 0)
			return 1;
	for (i = 0; i < NELEM(bad_cases); i++)
		if (strcmp(name, bad_cases[i]) == 0)
			return 1;
	return 0;
}

/* test_unlisted - every good-* and bad-* file in the golden dir is tested */
static void
test_unlisted(void)
{
	char name[256];
	struct dirent *d;
	size_t n;
	DIR *dp;
	int all = 1;

	if ((dp = opendir(golden)) == NULL) {
		tap_ok(0, "open %s: %s", golden, strerror(errno));
		return;
	}
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, "good-", 5) != 0 &&
		    strncmp(d->d_name, "bad-", 4) != 0)
			continue;
		n = strlen(d->d_name);
		if (n > 6 && strcmp(d->d_name + n - 6, ".spool") == 0)
			n -= 6;
		else if (n > 4 && strcmp(d->d_name + n - 4, ".out") == 0)
			n -= 4;
		snprintf(name, sizeof(name), "%.*s", (int)n, d->d_name);
		if (!listed(name)) {
			tap_diag("not listed in t_spool.c: %s", d->d_name);
			all = 0;
		}
	}
	closedir(dp);
	tap_ok(all, "every good-* and bad-* golden file is listed");
}

/* test_max_rcpt - the limit is the caller's, exactly */
static void
test_max_rcpt(void)
{
	char path[PATH_LEN], why[WHY_MAX];
	struct envelope e;
	int rc;

	gpath(path, sizeof(path), "good-100rcpt", ".spool");
	rc = read_path(path, &e, 99, why);
	tap_ok(rc == -1, "100 recipients with max_rcpt 99 refused");
	if (rc == 0)
		spool_free_envelope(&e);
	else
		tap_is(why, "too many recipients", "... as too many recipients");
	gpath(path, sizeof(path), "written", ".spool");
	rc = read_path(path, &e, 2, why);
	tap_ok(rc == 0 && e.nrcpt == 2, "2 recipients with max_rcpt 2 accepted");
	if (rc == 0)
		spool_free_envelope(&e);
	rc = read_path(path, &e, 1, why);
	tap_ok(rc == -1, "2 recipients with max_rcpt 1 refused");
	if (rc == 0)
		spool_free_envelope(&e);
}

int
main(int argc, char *argv[])
{
	size_t i;

	tap_on_fatal(cleanup);
	setup(argc > 1 ? argv[1] : "tests/golden");
	test_writer();
	test_commit_noreplace();
	test_create_clash();
	for (i = 0; i < NELEM(good_cases); i++)
		test_good(good_cases[i]);
	for (i = 0; i < NELEM(bad_cases); i++)
		test_bad(bad_cases[i]);
	test_unlisted();
	test_max_rcpt();
	cleanup();
	return tap_done();
}
