#!/bin/sh
exec "$(dirname "$0")/unit/t_sendmail" "$(dirname "$0")/golden"
