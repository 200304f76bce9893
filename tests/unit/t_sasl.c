/*
 * t_sasl.c - smapd/sasl.c: reading smtp_sasl_password_maps.
 *
 * Usage: t_sasl
 *
 * Files are written into a mkdtemp(3) directory: parsing (comments,
 * blank lines, CRLF, spaces, a ":" in the password, the first of the
 * keys that has a line, case), and every refusal (mode, owner, symbolic
 * link, directory, FIFO, size, line length, malformed lines), each
 * reason checked not to hold a password. The owner case needs root
 * (chown to nobody) and is skipped without it.
 */
#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../smapd/sasl.h"
#include "tap.h"

#define PATH_LEN	4096

static char work[] = "/tmp/t_sasl.XXXXXX";
static char file[PATH_LEN];

static void	put(const char *, size_t, mode_t);
static int	look(const char *, struct sasl_cred *, char *, size_t);
static void	found(const char *, const char *, const char *, const char *,
		    const char *);
static void	refused(const char *, const char *);
static void	test_parse(void);
static void	test_lines(void);
static void	test_files(void);
static void	test_sizes(void);

/* put - the password file with n bytes of text and mode */
static void
put(const char *text, size_t n, mode_t mode)
{
	FILE *fp;

	(void)unlink(file);
	if ((fp = fopen(file, "w")) == NULL ||
	    fwrite(text, 1, n, fp) != n || fclose(fp) != 0 ||
	    chmod(file, mode) < 0)
		tap_fatal("write the password file");
}

/* look - sasl_lookup of one key and its port-less form, as smapd asks */
static int
look(const char *key, struct sasl_cred *cr, char *why, size_t len)
{
	char bare[300];
	const char *keys[2] = { key, bare };
	const char *colon = strrchr(key, ':');

	snprintf(bare, sizeof(bare), "%.*s", colon && colon[-1] != ':' ?
	    (int)(colon - key) : (int)strlen(key), key);
	why[0] = '\0';
	return sasl_lookup(file, keys, 2, cr, why, len);
}

/* found - text gives key user:pass */
static void
found(const char *text, const char *key, const char *user, const char *pass,
    const char *desc)
{
	struct sasl_cred cr;
	char why[512];
	int rc;

	put(text, strlen(text), 0600);
	rc = look(key, &cr, why, sizeof(why));
	tap_ok(rc == 1 && strcmp(cr.user, user) == 0 &&
	    strcmp(cr.pass, pass) == 0, "%s", desc);
	if (rc != 1 || strcmp(cr.user, user) || strcmp(cr.pass, pass))
		tap_diag("rc %d, user \"%s\", pass \"%s\", why \"%s\"", rc,
		    cr.user, cr.pass, why);
	sasl_wipe(&cr);
	tap_ok(cr.user[0] == '\0' && cr.pass[0] == '\0' &&
	    cr.pass[1] == '\0', "%s: sasl_wipe empties it", desc);
}

/* refused - the file as it is now is refused, for a reason with want */
static void
refused(const char *want, const char *desc)
{
	struct sasl_cred cr;
	char why[512];
	int rc = look("[192.0.2.1]:587", &cr, why, sizeof(why));

	tap_ok(rc == -1 && strstr(why, want) != NULL &&
	    strstr(why, "SeCrEt") == NULL && cr.user[0] == '\0' &&
	    cr.pass[0] == '\0', "refused: %s", desc);
	if (rc != -1 || strstr(why, want) == NULL)
		tap_diag("rc %d, why \"%s\", want \"%s\"", rc, why, want);
}

/* test_parse - good files and what they give */
static void
test_parse(void)
{
	static const char good[] = "# smtp_sasl_password_maps\n"
	    "\n   # indented comment\n"
	    "[192.0.2.1]:587 relayuser:pass word:with colon\n"
	    "[192.0.2.1] anyport:p1\n"
	    "MAIL.Example.COM:25\tmx:tab  \r\n"
	    "mail.example.com other:later\n"
	    "mail.example.com:25 dup:second\n"
	    "[2001:db8::1]:25 six:p6\n"
	    "unix:/run/lmtp lmtp:pl\n"
	    "last.example.com last:no-newline";
	struct sasl_cred cr;
	char why[512];

	found(good, "[192.0.2.1]:587", "relayuser", "pass word:with colon",
	    "[address]:port; spaces and \":\" in the password");
	found(good, "[192.0.2.1]:25", "anyport", "p1",
	    "[address] without a port: any port");
	found(good, "mail.example.com:25", "mx", "tab",
	    "key case ignored, tab, trailing blanks and CR dropped");
	found(good, "mail.example.com:26", "other", "later",
	    "host without port for another port");
	found(good, "[2001:db8::1]:25", "six", "p6", "IPv6 literal");
	found(good, "unix:/run/lmtp", "lmtp", "pl", "unix:/path");
	found(good, "last.example.com:25", "last", "no-newline",
	    "last line without LF");
	found("mail.example.com a:1\nmail.example.com:25 b:2\n",
	    "mail.example.com:25", "b", "2",
	    "the key with the port wins over an earlier line without");

	put(good, strlen(good), 0600);
	tap_ok(look("[192.0.2.2]:587", &cr, why, sizeof(why)) == 0 &&
	    cr.user[0] == '\0', "no line for the next hop: 0");
	tap_ok(look("192.0.2.1:587", &cr, why, sizeof(why)) == 0,
	    "a name is not the [address]");
	tap_ok(look("example.com:25", &cr, why, sizeof(why)) == 0,
	    "no suffix match");
	put("", 0, 0600);
	tap_ok(look("[192.0.2.1]:587", &cr, why, sizeof(why)) == 0,
	    "empty file: 0");
	put(good, strlen(good), 0400);
	tap_ok(look("[192.0.2.1]:587", &cr, why, sizeof(why)) == 1,
	    "mode 0400 is accepted");
}

/* test_lines - malformed lines refuse the whole file, named by number */
static void
test_lines(void)
{
	static const struct {
		const char *text, *want, *desc;
	} bad[] = {
		{ "ok.example x:y\n[192.0.2.1]:587\n", "line 2: not",
		    "key without credentials" },
		{ "[192.0.2.1]:587 SeCrEt\n", "line 1: not", "no colon" },
		{ "[192.0.2.1]:587 :SeCrEt\n", "line 1: not", "empty user" },
		{ "[192.0.2.1]:587 user:\n", "line 1: not", "empty password" },
		{ "[192.0.2.1]:587 user:SeC\001rEt\n", "line 1: not",
		    "control character" },
		{ "[192.0.2.1]:587 user:SeC\x7frEt\n", "line 1: not", "DEL" },
		{ "#\n\n[192.0.2.1]:587 user:SeC\rrEt\n", "line 3: not",
		    "CR inside a line" },
		{ "h\xc3\xa9.example u:SeCrEt\n", "line 1: not",
		    "8-bit byte in the key" },
		{ "[192.0.2.1]:587 user:SeCrEt\nbroken\n", "line 2: not",
		    "a bad line after the match" },
	};
	static const char nul[] = "[192.0.2.1]:587 user:SeC\0rEt\n";
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i].text, strlen(bad[i].text), 0600);
		refused(bad[i].want, bad[i].desc);
	}
	put(nul, sizeof(nul) - 1, 0600);
	refused("line 1: not", "NUL byte");
	found("x u:p\xc3\xa9\n", "x", "u", "p\xc3\xa9",
	    "8-bit bytes in a password");
}

/* test_files - what the file is, who owns it, who may read it */
static void
test_files(void)
{
	static const char text[] = "[192.0.2.1]:587 user:SeCrEt\n";
	static const mode_t modes[] = { 0640, 0604, 0660, 0700, 0610, 04600,
	    01600 };
	char path[PATH_LEN + 16];
	struct passwd *pw = getpwnam("nobody");
	struct sasl_cred cr;
	char why[512];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		put(text, sizeof(text) - 1, modes[i]);
		snprintf(path, sizeof(path), "mode %04o", (unsigned)modes[i]);
		refused(path, path);
	}
	put(text, sizeof(text) - 1, 0600);
	if (geteuid() == 0 && pw != NULL) {
		if (chown(file, pw->pw_uid, (gid_t)-1) < 0)
			tap_fatal("chown");
		refused("not by smapd's uid", "owned by another uid");
	} else
		tap_ok(1, "# SKIP the owner case needs root");

	put(text, sizeof(text) - 1, 0600);
	snprintf(path, sizeof(path), "%s/link", work);
	if (symlink(file, path) < 0)
		tap_fatal("symlink");
	snprintf(file, sizeof(file), "%s/link", work);
	refused("is a symbolic link", "a symbolic link to a good file");
	snprintf(file, sizeof(file), "%s/dir", work);
	if (mkdir(file, 0700) < 0)
		tap_fatal("mkdir");
	refused("not a regular file", "a directory");
	snprintf(file, sizeof(file), "%s/fifo", work);
	if (mkfifo(file, 0600) < 0)
		tap_fatal("mkfifo");
	refused("not a regular file", "a FIFO (and no hang)");
	snprintf(file, sizeof(file), "%s/missing", work);
	tap_ok(look("[192.0.2.1]:587", &cr, why, sizeof(why)) == -1 &&
	    strstr(why, "No such file") != NULL, "a missing file: refused");
	snprintf(file, sizeof(file), "%s/sasl_passwd", work);
}

/* test_sizes - the file and line caps */
static void
test_sizes(void)
{
	char *big = malloc(SASL_FILE_MAX + 2);
	char line[SASL_LINE_MAX + 2], why[512];
	struct sasl_cred cr;
	size_t n;

	if (big == NULL)
		tap_fatal("malloc");
	/* exactly SASL_FILE_MAX bytes of comments, then a match */
	memset(big, '#', SASL_FILE_MAX);
	for (n = 1000; n < SASL_FILE_MAX - 64; n += 1000)
		big[n] = '\n';
	n = SASL_FILE_MAX - 32;
	memcpy(big + n, "\nx u:p\n", 7);
	memset(big + n + 7, '#', SASL_FILE_MAX - n - 7);
	put(big, SASL_FILE_MAX, 0600);
	tap_ok(look("x", &cr, why, sizeof(why)) == 1 &&
	    strcmp(cr.pass, "p") == 0, "a file of %d bytes is read whole",
	    SASL_FILE_MAX);
	big[SASL_FILE_MAX] = '\n';
	put(big, SASL_FILE_MAX + 1, 0600);
	refused("larger than 65536 bytes", "a file of 65537 bytes");
	free(big);

	/* a line of exactly SASL_LINE_MAX bytes is fine, one more is not */
	memset(line, 'p', sizeof(line));
	memcpy(line, "x u:", 4);
	line[SASL_LINE_MAX] = '\n';
	put(line, SASL_LINE_MAX + 1, 0600);
	tap_ok(look("x", &cr, why, sizeof(why)) == 1 &&
	    strlen(cr.pass) == SASL_LINE_MAX - 4,
	    "a line of %d bytes is read whole", SASL_LINE_MAX);
	sasl_wipe(&cr);
	line[SASL_LINE_MAX] = 'p';
	line[SASL_LINE_MAX + 1] = '\n';
	put(line, SASL_LINE_MAX + 2, 0600);
	refused("line 1: longer than 1024", "a line of 1025 bytes");
}

int
main(void)
{
	if (mkdtemp(work) == NULL)
		tap_fatal("mkdtemp");
	snprintf(file, sizeof(file), "%s/sasl_passwd", work);
	test_parse();
	test_lines();
	test_files();
	test_sizes();
	(void)tap_rmtree(work);
	return tap_done();
}
