/*
 * conf_keys.h - the table of configuration keys (conf.c), as the
 * reader (conf_read.c) uses it: keys by index 0 .. conf_nkeys() - 1,
 * in the table's order.
 */
#ifndef SMAP_CONF_KEYS_H
#define SMAP_CONF_KEYS_H

#include <stddef.h>

struct conf;

/* The number of keys. */
size_t conf_nkeys(void);

/* The index of the key named by n bytes of name, or -1. */
int conf_key_find(const char *name, size_t n);

/* Key i's name. */
const char *conf_key_name(size_t i);

/* Key i's default text; NULL: the host's name, from gethostname(). */
const char *conf_key_default(size_t i);

/* Parse text (expanded) as key i's value into its field of c. Returns
 * 0, or -1 with the reason in why. */
int conf_key_parse(struct conf *c, size_t i, const char *text, char *why,
    size_t wl);

#endif
