/*
 * notify.h - the sd_notify protocol: one datagram to $NOTIFY_SOCKET.
 */
#ifndef SMAPD_NOTIFY_H
#define SMAPD_NOTIFY_H

/* Send "READY=1", "STATUS=...", "RELOADING=1" ... when systemd asked for
 * it (NOTIFY_SOCKET set); a no-op otherwise. Returns 0 or -1. */
int notify(const char *msg);

#endif
