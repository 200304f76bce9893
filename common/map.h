/*
 * map.h - read-only lookup tables named as Postfix names them, "type:path".
 *
 * Two types, both read as Postfix reads them for relay_recipient_maps and
 * transport_maps (tables opened with DICT_FLAG_FOLD_FIX):
 *   cdb:PATH       PATH.cdb exactly as "postmap cdb:PATH" writes it: keys
 *                  folded to lower case, no trailing NUL on keys or values
 *                  (a file written with "postmap -N", which has one, is
 *                  read too). Opened once (open, fstat, cdb_init, which
 *                  mmaps); each lookup is one tinycdb cdb_find in place.
 *   texthash:PATH  PATH itself, postmap's input format, read whole at open
 *                  into a sorted array (at most MAP_TEXT_MAX bytes, logical
 *                  lines of at most CONF_LINE_MAX bytes). For small tables:
 *                  a process that opens it parses it.
 * Lookups fold the key to lower case (ASCII only; smap's addresses are
 * ASCII). See map.c for the file format details and where they come from.
 *
 * An open map needs no system call to be searched, so it can be opened
 * before a chroot or a seccomp filter and used after. A cdb file must be
 * replaced by rename(2), as postmap does, never rewritten in place: a
 * process that has it mapped would see the change (or SIGBUS on a
 * truncated file).
 */
#ifndef SMAP_MAP_H
#define SMAP_MAP_H

#include <stddef.h>
#include <cdb.h>
#include "bounds.h"

#define MAP_PATH_MAX	1024		/* the path of a spec, bytes */
#define MAP_SPEC_MAX	(MAP_PATH_MAX + 16)	/* a whole "type:path" */
#define MAP_KEY_MAX	1024		/* a lookup key, bytes */
#define MAP_TEXT_MAX	CONF_FILE_MAX	/* a texthash file, bytes */
#define MAP_WHY_MAX	(MAP_PATH_MAX + 128)	/* room for any reason */

enum map_type { MAP_CLOSED = 0, MAP_CDB, MAP_TEXTHASH };

struct map_ent;				/* texthash: one key and its value */

struct map {
	enum map_type type;
	char spec[MAP_SPEC_MAX + 1];	/* as given to map_open */
	/* cdb */
	int fd;
	int nul;			/* keys and values end in a NUL byte */
	struct cdb cdb;
	/* texthash */
	char *text;			/* keys and values, NUL-terminated */
	struct map_ent *ent;		/* sorted by key, no duplicates */
	size_t nent;
};

/* Check the syntax of a spec for the configuration parser: "cdb:" or
 * "texthash:" and an absolute path of printable characters, at most
 * MAP_PATH_MAX bytes. Returns 0, or -1 with a reason in why. */
int map_spec_ok(const char *spec, char *why, size_t len);

/* Open the table; on failure m is closed and why says, in plain words,
 * which file and why ("/etc/smap/rcpt.cdb: no such file", "...: not a
 * cdb file", "/etc/smap/rcpt: line 3: unbalanced '\"'"). Returns 0 / -1. */
int map_open(struct map *m, const char *spec, char *why, size_t len);

/* Look key up (folded to lower case). Returns 1 with the value in *val,
 * *vlen (read-only, valid until map_close; NOT NUL-terminated for cdb:
 * use vlen), 0 when the key is not there, -1 with errno on an error that
 * is not "not found": EPROTO for a corrupt cdb, ENAMETOOLONG for a key
 * over MAP_KEY_MAX. val and vlen may be NULL. */
int map_lookup(const struct map *m, const char *key, const char **val,
    size_t *vlen);

/* Release what map_open took; safe on a closed map, and twice. */
void map_close(struct map *m);

/* Is local@domain a valid recipient (relay_recipient_maps)? Tries, as
 * Postfix does for a domain that is not local: local@domain, then, when
 * delim (a set of recipient_delimiter characters, "" or NULL for none)
 * splits an extension off local, base@domain, then @domain. domain must
 * not be empty (-1, EINVAL); an address literal ("[...]") never matches
 * (0): callers do not ask for one. Returns 1 found, 0 not, -1 error. */
int map_recipient(const struct map *m, const char *local, const char *domain,
    const char *delim);

/* The transport(5) entry for local@domain: local@domain, base@domain
 * (extension split off by delim), domain, then each parent as ".parent"
 * (".example.com" for x.example.com; "example.com" matches only itself),
 * then "*". local may be NULL or "" to skip the address forms. An
 * address literal is looked up as itself, without parents. Returns 1
 * with the value as map_lookup does, 0 when nothing matched, -1 error. */
int map_transport(const struct map *m, const char *local, const char *domain,
    const char *delim, const char **val, size_t *vlen);

#endif
