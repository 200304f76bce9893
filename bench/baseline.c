/*
 * bench/baseline.c - the minimal fork-exec SMTP receiver smap is compared
 * with. One connection on fd 0/1 (inetd model). It answers a fixed
 * dialogue (220, then 250/354/221 by the first letter of each command),
 * writes the message data into DIR/tmp/NAME, fsyncs it, renames it into
 * DIR/new/NAME, fsyncs DIR/new, and only then answers 250: the same
 * durability as smap, none of its checks, jail or logging.
 *
 *   baseline DIR      (built and run by bench/run.py only)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void say(const char *s)
{
	size_t n = strlen(s);
	if (write(1, s, n) != (ssize_t)n)
		_exit(1);
}

int main(int argc, char **argv)
{
	char line[4096], tmp[1024], dst[1024], newdir[512];
	struct timespec ts;
	FILE *in;
	int seq = 0;

	if (argc != 2)
		return 64;
	alarm(60);
	in = fdopen(0, "r");
	if (!in)
		return 1;
	snprintf(newdir, sizeof newdir, "%s/new", argv[1]);
	say("220 baseline ESMTP\r\n");
	while (fgets(line, sizeof line, in)) {
		switch (line[0] | 0x20) {
		case 'q':
			say("221 bye\r\n");
			return 0;
		case 'd': {
			int fd, dfd;
			say("354 go\r\n");
			clock_gettime(CLOCK_REALTIME, &ts);
			snprintf(tmp, sizeof tmp, "%s/tmp/%lld.%09ld.%d.%d", argv[1],
				 (long long)ts.tv_sec, ts.tv_nsec, (int)getpid(), seq);
			snprintf(dst, sizeof dst, "%s/%lld.%09ld.%d.%d", newdir,
				 (long long)ts.tv_sec, ts.tv_nsec, (int)getpid(), seq++);
			fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0)
				return 1;
			FILE *out = fdopen(fd, "w");
			if (!out)
				return 1;
			while (fgets(line, sizeof line, in)) {
				if (strcmp(line, ".\r\n") == 0 || strcmp(line, ".\n") == 0)
					break;
				fputs(line[0] == '.' ? line + 1 : line, out);
			}
			if (fflush(out) || fsync(fd) || rename(tmp, dst))
				return 1;
			fclose(out);
			dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0 || fsync(dfd))
				return 1;
			close(dfd);
			say("250 ok\r\n");
			break;
		}
		case 'e':
		case 'h':
			say("250 baseline\r\n");
			break;
		default:
			say("250 ok\r\n");
			break;
		}
	}
	return 0;
}
