/*
 * layout_setup.h - smapd -P: the table of the spool's directories
 * (layout_check.h) made true, as `postfix set-permissions` does
 * (layout_setup.c), which also moves a spool of the old layout (tmp/
 * and new/ directly below spool_directory) into incoming/.
 */
#ifndef SMAP_LAYOUT_SETUP_H
#define SMAP_LAYOUT_SETUP_H

#include <stddef.h>
#include "layout_check.h"

/* As root: create what is missing, set owners and modes, move an old
 * layout's files into incoming/; idempotent. Each change and each
 * problem is passed to say(). Returns the number of problems. */
int layout_prepare(const char *spool, const struct layout_ids *ids,
    void (*say)(void *, const char *), void *ctx);

#endif
