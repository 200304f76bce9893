#!/bin/sh
exec "$(dirname "$0")/unit/t_net" "$(dirname "$0")/golden"
