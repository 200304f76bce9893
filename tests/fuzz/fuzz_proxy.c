/*
 * fuzz_proxy - libFuzzer harness for common/proxy.c: proxy_parse on the
 * raw bytes, whole and fed as proxy_read feeds it (each time the bytes
 * it asks for, or what is left). Asserts the documented invariants:
 * both ways agree, a header is taken exactly (never a byte past its
 * end), what is asked for fits proxy_read's buffer, and the fields of
 * an accepted header are sound.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define READ_MAX	(16 + PROXY_V2_MAX)	/* proxy_read's buffer */

/* check_hdr - the fields of a header accepted with length n */
static void
check_hdr(const uint8_t *data, int n, const struct proxy_hdr *h)
{
	unsigned char bin[16];

	assert(h->version == 1 || h->version == 2);
	if (h->version == 1)
		assert(n >= 15 && n <= PROXY_V1_MAX &&
		    memcmp(data + n - 2, "\r\n", 2) == 0);
	else
		assert(n >= 16 && n <= READ_MAX);
	assert(memchr(h->src, '\0', sizeof(h->src)) != NULL);
	assert(memchr(h->dst, '\0', sizeof(h->dst)) != NULL);
	if (h->local) {
		assert(h->family == 0 && h->src[0] == '\0' && h->dst[0] == '\0');
		return;
	}
	assert(h->family == AF_INET || h->family == AF_INET6);
	assert(inet_pton(h->family, h->src, bin) == 1);
	assert(inet_pton(h->family, h->dst, bin) == 1);
	assert(h->sport <= 65535 && h->dport <= 65535);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h, hf;
	const char *why = NULL, *whyf = NULL;
	size_t need, have = 0, k;
	int n, nf;

	n = proxy_parse(data, size, &h, &need, &why);
	assert(n >= -1 && (n <= 0 || (size_t)n <= size));
	if (n > 0)
		check_hdr(data, n, &h);
	else if (n == 0)
		assert(need > 0 && size + need <= READ_MAX);
	else
		assert(why != NULL && why[0] != '\0');
	while ((nf = proxy_parse(data, have, &hf, &need, &whyf)) == 0) {
		assert(need > 0 && have + need <= READ_MAX);
		if (have == size)
			break;
		have += need < size - have ? need : size - have;
	}
	if (nf == 0)
		assert(n == 0 && have == size);
	else if (nf > 0)
		assert(n == nf && (size_t)nf == have &&
		    memcmp(&h, &hf, sizeof(h)) == 0);
	else
		assert(n == -1 && strcmp(why, whyf) == 0);
	for (k = 0; n > 0 && k < (size_t)n; k++)	/* never early */
		assert(proxy_parse(data, k, &hf, &need, &whyf) == 0 &&
		    k + need <= (size_t)n);
	return 0;
}
