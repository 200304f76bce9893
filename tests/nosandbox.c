/*
 * tests/nosandbox.c - linked in place of common/sandbox.c into copies of
 * smap and smapd that run only under valgrind (make check-valgrind, and
 * the instruction counts of make bench): valgrind cannot run inside a
 * seccomp filter. Everything else in those copies is the normal build.
 */
#include <stddef.h>

int sandbox_smap(char *why, size_t whylen);
int sandbox_smapd(char *why, size_t whylen);

int sandbox_smap(char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return 0;
}

int sandbox_smapd(char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return 0;
}
