#!/bin/sh
exec "$(dirname "$0")/unit/t_spool" "$(dirname "$0")/golden"
