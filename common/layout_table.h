/*
 * layout_table.h - the rows of the spool's table, shared by its check
 * (layout_check.c) and smapd -P (layout_setup.c); nobody else.
 */
#ifndef SMAP_LAYOUT_TABLE_H
#define SMAP_LAYOUT_TABLE_H

#include <stddef.h>
#include <sys/types.h>
#include "layout_setup.h"

enum layout_role { O_ROOT, O_SMAP, O_SMAPD };

struct layout_row {
	const char *path;	/* below spool_directory; "." the spool */
	enum layout_role owner, group;	/* group O_ROOT: any, if not writable */
	mode_t mode;		/* what -P sets */
	mode_t need, deny;	/* what a check requires and refuses */
	enum layout_side side;	/* SIDE_SMAP: smap needs it too */
};

const struct layout_row *layout_rows(size_t *n);
uid_t layout_uid(const struct layout_ids *ids, enum layout_role r);
gid_t layout_gid(const struct layout_ids *ids, enum layout_role r);
void layout_row_path(char *buf, size_t len, const char *spool,
    const struct layout_row *r);
void layout_say(void (*say)(void *, const char *), void *ctx,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
