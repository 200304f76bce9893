#!/bin/sh
exec "$(dirname "$0")/unit/t_addr" "$(dirname "$0")/golden"
