#!/bin/sh
# jail_user() reads /etc/passwd itself only where getpwnam() would give
# the same answer (tests/unit/t_jail.c says how that is checked).
exec ${SMAPTEST_VALGRIND:+valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite} "$(dirname "$0")/unit/t_jail"
