/*
 * suffix.h - is a domain a public suffix (com, co.uk, github.io), one
 * under which anyone may register a name?
 */
#ifndef SMAP_SUFFIX_H
#define SMAP_SUFFIX_H

#include <stddef.h>

/* 1 if domain is on the public suffix list, 0 if not, -1 if the list
 * cannot be had (why, in words, in err[len]). */
int suffix_public(const char *domain, char *err, size_t len);

#endif
