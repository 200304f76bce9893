/*
 * journal_setup.c - the journal's first key: made by smapd -P (or by
 * smapd at its first record), checked by smapd -t, printed once by
 * smapq journal-key and then removed from the host (journal.h).
 *
 * TRUST: the configuration names the spool; journal/ is smapd's, and
 * nothing in it is followed (journal.c's rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "journal.h"
#include "layout.h"
#include "log.h"
#include "startup.h"

/* open_dir - spool/journal (or journal/ in the spool): fd or -1 */
static int
open_dir(const char *spool, char *path, size_t len)
{
	if (spool != NULL)
		snprintf(path, len, "%s/%s", spool, JOURNAL_DIR);
	else
		snprintf(path, len, "%s", JOURNAL_DIR);
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* journal_prepare - smapd -P: the first key, if there is none */
int
journal_prepare(const char *spool, uid_t uid, gid_t gid,
    void (*say)(void *, const char *), void *ctx)
{
	char path[4200], why[300], line[4600];
	int dfd = open_dir(spool, path, sizeof(path)), rc;

	if (dfd < 0) {
		snprintf(line, sizeof(line), "%s: %s", path, strerror(errno));
		say(ctx, line);
		return 1;
	}
	rc = journal_make_key(dfd, uid, gid, why, sizeof(why));
	(void)close(dfd);
	if (rc == 0)
		snprintf(line, sizeof(line), "created %s/%s and %s: print the "
		    "first key with \"smapq journal-key\" and keep it off this "
		    "host", path, JOURNAL_KEY, JOURNAL_FIRST);
	else if (rc < 0)
		snprintf(line, sizeof(line), "%s: %s", path, why);
	if (rc != 1)
		say(ctx, line);
	return rc < 0;
}

/* journal_check - smapd -t, as smapd_user */
void
journal_check(struct startup *st, const struct conf *cf)
{
	char path[4200], why[300], line[4600];
	struct jkey k;
	long *days = NULL;
	size_t n = 0;
	int dfd = open_dir(cf->spool_directory, path, sizeof(path));

	if (dfd < 0 || faccessat(dfd, ".", R_OK | W_OK | X_OK, 0) < 0) {
		snprintf(line, sizeof(line), "%s: smapd_user %s cannot use it: "
		    "%s", path, cf->smapd_user, strerror(errno));
		startup_say(st, line);
	} else if (journal_read_key(dfd, JOURNAL_KEY, &k, why,
	    sizeof(why)) == 0) {
		OPENSSL_cleanse(&k, sizeof(k));
	} else if (errno != ENOENT || (journal_days(dfd, &days, &n) == 0 &&
	    n > 0)) {
		snprintf(line, sizeof(line), "%s/%s%s", path, errno == ENOENT ?
		    JOURNAL_KEY ": missing, and the journal has days already: "
		    "it cannot go on (see smap-spool(5), JOURNAL)" : "", errno ==
		    ENOENT ? "" : why);
		startup_say(st, line);
	}
	free(days);
	if (dfd >= 0)
		(void)close(dfd);
}

/* gone - the first key is not (any more) on this host: 1 */
static int
gone(FILE *err, const char *why)
{
	if (errno == ENOENT)
		fprintf(err, "smapq: the journal's first key is no longer on this "
		    "host: it is printed once, then removed (smapq(8))\n");
	else
		fprintf(err, "smapq: %s/%s\n", JOURNAL_DIR, why);
	return 1;
}

/* journal_print_first - smapq journal-key */
int
journal_print_first(FILE *out, FILE *err)
{
	char path[64], why[300], line[JKEY_LINE_MAX];
	struct jkey k;
	int dfd = open_dir(NULL, path, sizeof(path)), ok;

	if (dfd < 0)
		return gone(err, strerror(errno));
	if (journal_read_key(dfd, JOURNAL_FIRST, &k, why, sizeof(why)) < 0) {
		(void)close(dfd);
		return gone(err, why);
	}
	jkey_format(&k, line);
	OPENSSL_cleanse(&k, sizeof(k));
	ok = fputs(line, out) >= 0 && fflush(out) == 0;
	OPENSSL_cleanse(line, sizeof(line));
	(void)fsync(fileno(out));	/* a file on a removable disk */
	if (!ok) {
		fprintf(err, "smapq: cannot write the key: %s; it stays on this "
		    "host\n", strerror(errno));
		(void)close(dfd);
		return 1;
	}
	if (unlinkat(dfd, JOURNAL_FIRST, 0) < 0 || layout_sync(dfd) < 0)
		fprintf(err, "smapq: %s/%s: cannot remove it: %s\n", JOURNAL_DIR,
		    JOURNAL_FIRST, strerror(errno));
	(void)close(dfd);
	log_info("journal: the first key was printed (%s) and removed from "
	    "this host", journal_actor());
	fprintf(err, "smapq: that is the journal's first key, now removed from "
	    "this host: keep it off the host; smapq verify --key FILE checks "
	    "the journal with it\n");
	return 0;
}
