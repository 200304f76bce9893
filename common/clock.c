/*
 * clock.c - the monotonic clock in milliseconds (see clock.h).
 *
 * Trusts the kernel's clock and nothing else; reads no input.
 */
#include <time.h>

#include "clock.h"

/* now_ms - the monotonic clock in milliseconds */
long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}
