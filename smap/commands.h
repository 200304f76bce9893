/*
 * commands.h - the command table: each SMTP verb, where it may run,
 * what it answers when it may not, and its name in the disconnect line.
 */
#ifndef SMAP_COMMANDS_H
#define SMAP_COMMANDS_H

#include <stddef.h>
#include "session.h"

struct cmd {
	const char *verb;	/* NULL: the last row, any unknown verb */
	void (*fn)(struct session *, char *);	/* NULL: just the reply */
	unsigned states;	/* where it may run: 1 << enum state */
	unsigned flags;
#define JUNK 1			/* counts toward smtpd_junk_command_limit */
#define GROUP_END 2		/* ends a pipelined group, text may follow */
	const char *counter;	/* its name in the disconnect line */
	const char *reply;	/* fn == NULL: the reply */
	const char *before;	/* 503 text when sent too early */
	const char *after;	/* ... and when sent too late */
};

extern const struct cmd smtp_cmds[];
extern const size_t smtp_ncmds;

#endif
