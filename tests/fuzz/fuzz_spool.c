/*
 * fuzz_spool - libFuzzer harness for common/spool.c: spool_read_envelope
 * on a memfd holding the input, at most 100 recipients; then
 * spool_free_envelope. Checks the reader's documented invariants.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e;
	char why[256];
	size_t off = 0;
	ssize_t w;

	if (fd < 0) {
		fd = memfd_create("fuzz_spool", MFD_CLOEXEC);
		assert(fd >= 0);
	}
	assert(ftruncate(fd, 0) == 0);
	while (off < size) {
		w = pwrite(fd, data + off, size - off, (off_t)off);
		assert(w > 0);
		off += (size_t)w;
	}
	assert(lseek(fd, 0, SEEK_SET) == 0);
	memset(&e, 0, sizeof(e));
	why[0] = '\0';
	if (spool_read_envelope(fd, &e, 100, why, sizeof(why)) == 0) {
		assert(e.nrcpt >= 1 && e.nrcpt <= 100);
		assert(e.size >= 0 && e.body_offset >= 0);
		assert((long long)e.body_offset + e.size == (long long)size);
	} else {
		assert(memchr(why, '\0', sizeof(why)) != NULL);
	}
	spool_free_envelope(&e);
	return 0;
}
