/*
 * bench/nosandbox.c - linked in place of common/sandbox.c into a copy of
 * smap used only to count instructions under valgrind, which cannot run
 * seccomp(2). Everything else in that copy is the normal smap build.
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
