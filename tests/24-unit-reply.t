#!/bin/sh
exec "$(dirname "$0")/unit/t_reply" "$(dirname "$0")/golden"
