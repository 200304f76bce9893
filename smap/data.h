/*
 * data.h - the store: the text of one message, from the connection into
 * its spool file, and what became of it. It sends no reply and decides
 * nothing about the session: cmd_data (session.c) does, from the result,
 * as qmail-smtpd's smtp_data does over qmail_*.
 */
#ifndef SMAP_DATA_H
#define SMAP_DATA_H

#include "conf.h"
#include "io.h"
#include "spool.h"

enum stored {
	STORED,		/* durable in new/: 250 */
	STORE_READY,	/* complete and fsync'd, e->size set: commit it */
	STORE_BARE,	/* a bare CR or LF in the data */
	STORE_TOOBIG,	/* over message_size_limit */
	STORE_HOPS,	/* more Received: headers than hopcount_limit */
	STORE_FAILED,	/* a write, fsync or rename failed: store_errno() */
	STORE_LOST,	/* the client went away */
	STORE_TIMEOUT	/* the client was too slow */
};

/* Create the spool file for e (a new id when e->id is empty) with its
 * envelope and smap's Received: header: 0, or an errno (nothing left). */
int store_open(const struct conf *cf, struct envelope *e);

/* Read the text up to CRLF.CRLF into it, always to the end (the session
 * stays in step), and judge it: STORE_READY, or gone. */
enum stored store_data(struct io *io);

/* Commit what is ready into new/: STORED, or STORE_FAILED (gone). */
enum stored store_commit(void);

/* The errno of STORE_FAILED. */
int store_errno(void);

#endif
