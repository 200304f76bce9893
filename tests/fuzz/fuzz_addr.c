/*
 * fuzz_addr - libFuzzer harness for common/addr.c: addr_parse (both
 * kinds) on the raw bytes, addr_check_stored (both kinds) on a
 * NUL-terminated copy. Asserts the documented invariants.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_ok(const struct addr *a)
{
	size_t i, n = strnlen(a->text, sizeof(a->text));

	assert(n < sizeof(a->text));
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a->text[i];
		assert(ch > 0x20 && ch < 0x7f);
	}
	if (a->at != 0)
		assert(a->at < n && a->text[a->at] == '@');
	(void)addr_domain(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum addr_kind kinds[] = { ADDR_SENDER, ADDR_RECIPIENT };
	struct addr a;
	const char *why;
	char *copy;
	size_t k;
	int n;

	for (k = 0; k < 2; k++) {
		why = NULL;
		memset(&a, 0x5a, sizeof(a));
		n = addr_parse((const char *)data, size, kinds[k], &a, &why);
		if (n >= 0) {
			assert((size_t)n <= size);
			assert(n >= 2 && data[0] == '<' && data[n - 1] == '>');
			check_ok(&a);
		} else {
			assert(n == -1 && why != NULL);
			assert(strlen(why) > 0);
		}
	}
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (k = 0; k < 2; k++) {
		why = NULL;
		memset(&a, 0x5a, sizeof(a));
		if (addr_check_stored(copy, kinds[k], &a, &why) == 0)
			check_ok(&a);
		else
			assert(why != NULL);
	}
	free(copy);
	return 0;
}
