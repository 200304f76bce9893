/*
 * bench/flood.c - a connection flood, what spam bots do most: N sessions,
 * C at a time, each: connect, greeting, EHLO, its reply, QUIT, 221,
 * close. No mail. Prints "sessions N seconds S failed F"; exit 1 if any
 * session failed (a refused connection, a timeout, an unexpected code).
 *
 *   flood HOST PORT N C   (built and run by bench/run.py only)
 *
 * Trusts its arguments; reads at most 4 KiB per reply, each read bounded
 * by a 20 s receive timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in to;
static atomic_int left, failed;

/* reply - read one SMTP reply (its last line); 0 when its code is want */
static int
reply(int fd, const char *want)
{
	char buf[4096];
	size_t n = 0;
	ssize_t r;
	char *line;

	for (;;) {
		if (n == sizeof(buf) - 1 ||
		    (r = read(fd, buf + n, sizeof(buf) - 1 - n)) <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		if (n < 2 || memcmp(buf + n - 2, "\r\n", 2) != 0)
			continue;
		/* the last line: after the last CRLF before the end */
		buf[n - 2] = '\0';
		line = strrchr(buf, '\n');
		line = line ? line + 1 : buf;
		if (strlen(line) >= 4 && line[3] == '-')
			continue;
		return strncmp(line, want, 3) == 0 ? 0 : -1;
	}
}

/* say - write all of s */
static int
say(int fd, const char *s)
{
	size_t n = strlen(s);

	return write(fd, s, n) == (ssize_t)n ? 0 : -1;
}

/* session - one connect, EHLO, QUIT; 0 when every reply was right */
static int
session(void)
{
	struct timeval tv = { 20, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0 &&
	    reply(fd, "220") == 0 && say(fd, "EHLO flood.example\r\n") == 0 &&
	    reply(fd, "250") == 0 && say(fd, "QUIT\r\n") == 0 &&
	    reply(fd, "221") == 0)
		rc = 0;
	close(fd);
	return rc;
}

/* worker - sessions until none are left */
static void *
worker(void *arg)
{
	(void)arg;
	while (atomic_fetch_sub(&left, 1) > 0)
		if (session() < 0)
			atomic_fetch_add(&failed, 1);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	pthread_t th[1000];
	int n, c, i;

	if (argc != 5 || (n = atoi(argv[3])) < 1 || (c = atoi(argv[4])) < 1 ||
	    c > 1000 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1)
		return fprintf(stderr, "usage: flood HOST PORT N C\n"), 64;
	to.sin_family = AF_INET;
	to.sin_port = htons((unsigned short)atoi(argv[2]));
	atomic_store(&left, n);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < c; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0)
			return perror("pthread_create"), 1;
	for (i = 0; i < c; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("sessions %d seconds %.6f failed %d\n", n, (double)(t1.tv_sec -
	    t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	    atomic_load(&failed));
	return atomic_load(&failed) ? 1 : 0;
}
