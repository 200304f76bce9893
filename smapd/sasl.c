/*
 * sasl.c - reading smtp_sasl_password_maps (see sasl.h).
 *
 * The file is opened without following a symbolic link and judged by
 * fstat(2) of what was opened: a regular file, our effective uid, no
 * permission for group or others, at most SASL_FILE_MAX bytes. It is
 * then read whole (bounded) and every line is checked, even after a
 * match, so that a broken file is refused the same way whatever it is
 * asked for. Reasons name the file and line number only.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sasl.h"

/* One "nexthop username:password" line, pointing into the file. */
struct entry {
	const char *key, *val;
	size_t keylen, vallen;
};

/* file_ok - the opened file is ours, private, regular and small */
static int
file_ok(int fd, const char *path, char *why, size_t len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		snprintf(why, len, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(why, len, "%s: not a regular file", path);
	else if (st.st_uid != geteuid())
		snprintf(why, len, "%s: owned by uid %u, not by smapd's uid %u",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
	else if ((st.st_mode & 07777 & ~(mode_t)0600) != 0)
		snprintf(why, len, "%s: mode %04o, must be 0600 or stricter",
		    path, (unsigned)(st.st_mode & 07777));
	else if (st.st_size > SASL_FILE_MAX)
		snprintf(why, len, "%s: larger than %d bytes", path,
		    SASL_FILE_MAX);
	else
		return 0;
	return -1;
}

/* slurp - the whole file into buf (SASL_FILE_MAX + 1 bytes), checked */
static int
slurp(const char *path, char *buf, size_t *n, char *why, size_t len)
{
	ssize_t got;
	int fd, rc = -1;

	*n = 0;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "%s: %s", path, errno == ELOOP ?
		    "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (file_ok(fd, path, why, len) == 0) {
		for (;;) {
			got = read(fd, buf + *n, SASL_FILE_MAX + 1 - *n);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0 || (*n += (size_t)got) > SASL_FILE_MAX)
				break;
		}
		if (got < 0)
			snprintf(why, len, "%s: %s", path, strerror(errno));
		else if (*n > SASL_FILE_MAX)
			snprintf(why, len, "%s: larger than %d bytes", path,
			    SASL_FILE_MAX);
		else
			rc = 0;
	}
	(void)close(fd);
	return rc;
}

/* blank - space or tab */
static int
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* parse_line - 1 an entry, 0 blank or comment, -1 malformed */
static int
parse_line(const char *s, size_t n, struct entry *e)
{
	const char *colon;
	size_t i;

	while (n > 0 && (blank(s[n - 1]) || s[n - 1] == '\r'))
		n--;
	while (n > 0 && blank(*s)) {
		s++;
		n--;
	}
	if (n == 0 || *s == '#')
		return 0;
	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') ||
		    s[i] == 0x7f)
			return -1;
	for (i = 0; i < n && !blank(s[i]); i++)
		if ((unsigned char)s[i] > 0x7e)
			return -1;
	e->key = s;
	e->keylen = i;
	while (i < n && blank(s[i]))
		i++;
	e->val = s + i;
	e->vallen = n - i;
	colon = memchr(e->val, ':', e->vallen);
	if (e->keylen == i || colon == NULL || colon == e->val ||
	    colon == e->val + e->vallen - 1)
		return -1;
	return 1;
}

/* find - check every line; *best: the line of the earliest key */
static int
find(const char *buf, size_t n, const char *const *keys, size_t nkeys,
    struct entry *best, const char *path, char *why, size_t len)
{
	struct entry e;
	size_t pos, end, line, k, found = nkeys;
	const char *nl;
	int rc;

	for (pos = 0, line = 1; pos < n; pos = end + 1, line++) {
		nl = memchr(buf + pos, '\n', n - pos);
		end = nl ? (size_t)(nl - buf) : n;
		if (end - pos > SASL_LINE_MAX) {
			snprintf(why, len, "%s, line %zu: longer than %d bytes",
			    path, line, SASL_LINE_MAX);
			return -1;
		}
		if ((rc = parse_line(buf + pos, end - pos, &e)) < 0) {
			snprintf(why, len, "%s, line %zu: not \"nexthop "
			    "username:password\"", path, line);
			return -1;
		}
		for (k = 0; rc > 0 && k < found; k++)
			if (strlen(keys[k]) == e.keylen &&
			    strncasecmp(keys[k], e.key, e.keylen) == 0) {
				found = k;
				*best = e;
			}
	}
	return found < nkeys;
}

/* sasl_lookup - see sasl.h */
int
sasl_lookup(const char *path, const char *const *keys, size_t nkeys,
    struct sasl_cred *cr, char *why, size_t len)
{
	struct entry e = { NULL, NULL, 0, 0 };
	const char *colon;
	size_t n, ul;
	char *buf;
	int rc = -1;

	sasl_wipe(cr);
	if ((buf = malloc(SASL_FILE_MAX + 1)) == NULL) {
		snprintf(why, len, "%s: out of memory", path);
		return -1;
	}
	if (slurp(path, buf, &n, why, len) == 0 &&
	    (rc = find(buf, n, keys, nkeys, &e, path, why, len)) > 0) {
		colon = memchr(e.val, ':', e.vallen);
		ul = (size_t)(colon - e.val);
		memcpy(cr->user, e.val, ul);
		memcpy(cr->pass, colon + 1, e.vallen - ul - 1);
	}
	explicit_bzero(buf, SASL_FILE_MAX + 1);
	free(buf);
	return rc;
}

/* sasl_wipe - forget credentials */
void
sasl_wipe(struct sasl_cred *cr)
{
	explicit_bzero(cr, sizeof(*cr));
}
