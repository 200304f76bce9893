#!/bin/sh
exec "$(dirname "$0")/unit/t_maildir" "$(dirname "$0")/golden"
