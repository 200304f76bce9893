/*
 * journal_key.c - the journal's keys and day files on disk (journal.h):
 * the day files listed, a key file read and replaced durably, the first
 * key made. journal.c's writer and journal_setup.c's set-up use them.
 *
 * TRUST: journal/ is smapd's (mode 0700). Nothing in it is followed
 * (O_NOFOLLOW); a key file is read with a cap and parsed; files are
 * created O_EXCL as NAME.tmp and renamed into place. A key never stays
 * in memory longer than its use (OPENSSL_cleanse).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "bounds.h"
#include "journal.h"
#include "layout.h"

/* day_cmp - qsort order of days */
static int
day_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* journal_days - the day files, sorted */
int
journal_days(int dfd, long **days, size_t *n)
{
	struct dirent *de;
	size_t cap = 0, seen = 0;
	long d, *v = NULL, *nv;
	int fd = dup(dfd);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);

	*n = 0;
	if (dir == NULL) {
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL && seen++ < SCAN_MAX) {
		if (jday_parse(de->d_name, &d) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		v[(*n)++] = d;
	}
	closedir(dir);
	if (*n > 0)
		qsort(v, *n, sizeof(*v), day_cmp);
	*days = v;
	return 0;
}

/* journal_write_file - dfd/name made as name.tmp with data (fsync'd, given to
 * uid:gid when root), renamed into place (over an old one only when
 * replace), the directory fsync'd: 0, or -1 */
int
journal_write_file(int dfd, const char *name, const char *data, size_t n,
    uid_t uid, gid_t gid, int replace)
{
	char tmp[64];
	int fd, bad;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	(void)unlinkat(dfd, tmp, 0);	/* a crash's leftover */
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	bad = write(fd, data, n) != (ssize_t)n || (geteuid() == 0 &&
	    fchown(fd, uid, gid) < 0) || fsync(fd) < 0;
	bad |= close(fd) < 0;
	if (!bad && (replace ? renameat(dfd, tmp, dfd, name) :
	    layout_move(dfd, tmp, dfd, name)) == 0)
		return layout_sync(dfd);
	if (errno == 0)
		errno = EIO;
	bad = errno;
	(void)unlinkat(dfd, tmp, 0);
	errno = bad;
	return -1;
}

/* journal_persist_key - journal/key holds k from now on; the old one is gone */
int
journal_persist_key(int dfd, const struct jkey *k, uid_t uid, gid_t gid)
{
	char line[JKEY_LINE_MAX];
	int rc;

	jkey_format(k, line);
	rc = journal_write_file(dfd, JOURNAL_KEY, line, strlen(line), uid, gid, 1);
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

/* journal_read_key - a key file, capped, never through a link */
int
journal_read_key(int dfd, const char *name, struct jkey *k, char *why,
    size_t len)
{
	char buf[JKEY_LINE_MAX + 1];
	struct stat st;
	ssize_t n = -1;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY);

	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, buf, sizeof(buf));
	else if (fd >= 0)
		errno = EINVAL;
	if (n < 0) {
		snprintf(why, len, "%s: %s", name, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	(void)close(fd);
	n = n > JKEY_LINE_MAX ? -1 : jkey_parse(buf, (size_t)n, k);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (n < 0)
		snprintf(why, len, "%s: not a journal key (one line "
		    "\"smap-journal-key 1 YYYY-MM-DD HEX\")", name);
	return n < 0 ? -1 : 0;
}

/* first_from_copy - key.first is there but key is not (a crash between
 * the two when the first key was made): key made from key.first */
static int
first_from_copy(int dfd, uid_t uid, gid_t gid, char *why, size_t len)
{
	struct jkey k;
	int rc;

	if (journal_read_key(dfd, JOURNAL_FIRST, &k, why, len) < 0)
		return -1;
	rc = journal_persist_key(dfd, &k, uid, gid);
	OPENSSL_cleanse(&k, sizeof(k));
	if (rc < 0)
		snprintf(why, len, "%s: %s", JOURNAL_KEY, strerror(errno));
	return rc;
}

/* fresh_key - a random first key of today, as key.first, then as key */
static int
fresh_key(int dfd, uid_t uid, gid_t gid, char *why, size_t len)
{
	char line[JKEY_LINE_MAX];
	struct jkey k;
	size_t got = 0;
	ssize_t r;
	int rc = -1;

	while (got < JMAC_LEN && ((r = getrandom(k.k + got, JMAC_LEN - got,
	    0)) > 0 || errno == EINTR))
		got += r > 0 ? (size_t)r : 0;
	k.day = jday_of(time(NULL));
	jkey_format(&k, line);
	if (got < JMAC_LEN)
		snprintf(why, len, "getrandom: %s", strerror(errno));
	else if (journal_write_file(dfd, JOURNAL_FIRST, line, strlen(line), uid, gid,
	    0) < 0 || journal_persist_key(dfd, &k, uid, gid) < 0)
		snprintf(why, len, "cannot write the first key: %s",
		    strerror(errno));
	else
		rc = 0;
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* journal_make_key - the first key, when there is neither key nor day */
int
journal_make_key(int dfd, uid_t uid, gid_t gid, char *why, size_t len)
{
	struct stat st;
	size_t n = 0;
	long *days = NULL;

	if (fstatat(dfd, JOURNAL_KEY, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (journal_days(dfd, &days, &n) < 0) {
		snprintf(why, len, "cannot read %s/: %s", JOURNAL_DIR,
		    strerror(errno));
		return -1;
	}
	free(days);
	if (n > 0) {
		snprintf(why, len, "%s/ holds %zu days but no key: the chain "
		    "cannot go on; move %s/ aside (keep it for review) to start "
		    "a new one", JOURNAL_DIR, n, JOURNAL_DIR);
		return -1;
	}
	if (fstatat(dfd, JOURNAL_FIRST, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return first_from_copy(dfd, uid, gid, why, len);
	return fresh_key(dfd, uid, gid, why, len);
}
