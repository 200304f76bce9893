/*
 * sandbox_smap.c - smap's seccomp filter, loaded without libseccomp.
 *
 * The program is made from the rules in sandbox.c when smap is built
 * (sandbox_gen.c writes sandbox_smap_bpf.h): building it with
 * libseccomp in every session cost more than the rest of the jail.
 * Trusts the build; needs no_new_privs, which jail_enter() has set.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "sandbox.h"
#include "sandbox_smap_bpf.h"

/* sandbox_smap - install the allow-list; see sandbox.h */
int
sandbox_smap(char *why, size_t len)
{
	struct sock_fprog prog = {
		(unsigned short)(sizeof(smap_bpf) / sizeof(smap_bpf[0])),
		(struct sock_filter *)smap_bpf
	};

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
		snprintf(why, len, "seccomp load: %s", strerror(errno));
		return -1;
	}
	return 0;
}
