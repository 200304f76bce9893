/*
 * sandbox_gen.c - a build-time tool: smap's seccomp filter as C.
 *
 * Builds smap's allow-list with libseccomp (sandbox_smap_rules() in
 * sandbox.c), exports it as a BPF program and writes it to stdout as
 * the array sandbox_smap.c loads. Compiled with the same flags as smap,
 * so an ASan build gets the ASan allow-list. Trusts nothing but
 * libseccomp; it never runs where smap runs.
 */
#include <stdio.h>
#include <unistd.h>
#include <linux/filter.h>

#include <seccomp.h>

#include "sandbox.h"

int
main(void)
{
	struct sock_filter ins;
	char why[256];
	void *ctx;
	FILE *tmp = tmpfile();
	size_t n = 0;

	if (tmp == NULL || sandbox_smap_rules(&ctx, why, sizeof(why)) < 0 ||
	    seccomp_export_bpf(ctx, fileno(tmp)) < 0 || fflush(tmp) != 0) {
		fprintf(stderr, "sandbox_gen: %s\n", tmp ? why : "tmpfile failed");
		return 1;
	}
	seccomp_release(ctx);
	rewind(tmp);
	printf("/* smap's seccomp filter: written by common/sandbox_gen from the "
	    "rules in\n * common/sandbox.c when smap was built. Do not edit. */\n"
	    "static const struct sock_filter smap_bpf[] = {\n");
	while (fread(&ins, sizeof(ins), 1, tmp) == 1 && ++n)
		printf("\t{ 0x%04x, %u, %u, 0x%08x },\n", ins.code, ins.jt,
		    ins.jf, ins.k);
	printf("};\n");
	fclose(tmp);
	if (n == 0 || n > BPF_MAXINSNS) {
		fprintf(stderr, "sandbox_gen: %zu instructions\n", n);
		return 1;
	}
	return ferror(stdout) || fflush(stdout) != 0;
}
