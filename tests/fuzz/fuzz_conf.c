/*
 * fuzz_conf - libFuzzer harness for common/conf*.c: conf_load on a memfd
 * holding the input (via /proc/self/fd/N), then conf_warnings and
 * conf_free. LeakSanitizer reports anything conf_free leaves behind.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[4096];
	struct conf c;
	FILE *fp;
	size_t off = 0;
	ssize_t w;

	if (fd < 0) {
		fd = memfd_create("fuzz_conf", MFD_CLOEXEC);
		assert(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	assert(ftruncate(fd, 0) == 0);
	while (off < size) {
		w = pwrite(fd, data + off, size - off, (off_t)off);
		assert(w > 0);
		off += (size_t)w;
	}
	memset(&c, 0, sizeof(c));
	err[0] = 'x';
	if (conf_load(&c, path, err, sizeof(err)) == 0) {
		(void)conf_warnings(&c, path, err, sizeof(err));
		if ((fp = fopen("/dev/null", "w")) != NULL) {
			conf_print(fp, &c, 0);
			fclose(fp);
		}
	} else {
		assert(memchr(err, '\0', sizeof(err)) != NULL);
	}
	conf_free(&c);
	return 0;
}
