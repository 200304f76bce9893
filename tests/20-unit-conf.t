#!/bin/sh
exec "$(dirname "$0")/unit/t_conf" "$(dirname "$0")/golden" "$(dirname "$0")/../conf/smap.conf"
