/*
 * map_walk.c - every entry of an open table, for a caller that checks
 * them all at once (smapd -t and smapd's start parse each value of
 * transport_maps): see map_walk() in map.h.
 *
 * cdb: tinycdb's sequential reader over the mapped file, each record's
 * offsets checked by cdb_seqnext and cdb_get (EPROTO); texthash: the
 * sorted entries map_open made, each with the line it started on.
 *
 * TRUST: the table was opened and checked by map_open; the values are
 * handed to fn as they are.
 */
#include <errno.h>
#include <string.h>

#include "map.h"

/* walk_cdb - each record of the file */
static int
walk_cdb(const struct map *m, int (*fn)(void *, const char *, size_t,
    const char *, size_t, int), void *ctx)
{
	struct cdb c = m->cdb;		/* cdb_seqnext notes where it is */
	unsigned pos;
	const char *k, *v;
	size_t kl, vl;
	int r;

	cdb_seqinit(&pos, &c);
	while ((r = cdb_seqnext(&pos, &c)) > 0) {
		k = cdb_get(&c, cdb_keylen(&c), cdb_keypos(&c));
		v = cdb_get(&c, cdb_datalen(&c), cdb_datapos(&c));
		if (k == NULL || v == NULL)
			break;
		kl = cdb_keylen(&c);
		vl = cdb_datalen(&c);
		if (m->nul && kl > 0 && k[kl - 1] == '\0')
			kl--;
		vl = strnlen(v, vl);	/* what a lookup would give */
		if ((r = fn(ctx, k, kl, v, vl, 0)) != 0)
			return r;
	}
	if (r == 0)
		return 0;
	errno = EPROTO;
	return -1;
}

/* map_walk - fn for every entry, until it returns non-zero */
int
map_walk(const struct map *m, int (*fn)(void *, const char *, size_t,
    const char *, size_t, int), void *ctx)
{
	size_t i;
	int r;

	if (m->type == MAP_CDB)
		return walk_cdb(m, fn, ctx);
	if (m->type != MAP_TEXTHASH) {
		errno = EBADF;
		return -1;
	}
	for (i = 0; i < m->nent; i++)
		if ((r = fn(ctx, m->ent[i].key, strlen(m->ent[i].key),
		    m->ent[i].val, m->ent[i].vlen, (int)m->ent[i].seq)) != 0)
			return r;
	return 0;
}
