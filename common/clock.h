/*
 * clock.h - the monotonic clock that every timeout and deadline of
 * smap and smapd is measured on.
 */
#ifndef SMAP_CLOCK_H
#define SMAP_CLOCK_H

/* CLOCK_MONOTONIC in milliseconds: never goes back, not the time of
 * day. */
long long now_ms(void);

#endif
