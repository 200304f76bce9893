#!/bin/sh
exec ${SMAPTEST_VALGRIND:+valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite} "$(dirname "$0")/unit/t_state"
