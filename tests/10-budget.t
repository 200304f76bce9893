#!/bin/sh
# smap's own code must stay small enough to audit in one sitting:
# at most 1,800 non-blank lines of C in smap/, every function short,
# and no smapd code included from smap (nor the other way round), and
# smap/smap links neither OpenSSL (smap-tls.so brings it when TLS is on)
# nor libseccomp (its filter is compiled in when it is built).
cd "$(dirname "$0")/.." || exit 1
echo "1..5"
n=$(cat smap/*.c smap/*.h | grep -cv '^[[:space:]]*$')
if [ "$n" -le 1800 ]; then echo "ok 1 - smap/ has $n non-blank lines of C (<= 1800)"
else echo "not ok 1 - smap/ has $n non-blank lines of C (budget 1800)"; fi

# Longest function body: lines from a line "{" at column 0 to "}" at column 0.
long=$(awk 'FNR==1{inf=0} /^\{/{inf=1; start=FNR; next} /^\}/{ if (inf && FNR-start > max) { max=FNR-start; where=FILENAME":"start } inf=0 } END{print max" "where}' smap/*.c)
set -- $long
if [ "$1" -le 60 ]; then echo "ok 2 - longest smap function is $1 lines ($2)"
else echo "not ok 2 - longest smap function is $1 lines ($2), limit 60"; fi

if grep -l '#include "\.\./smapd\|#include "smapd' smap/*.[ch] >/dev/null 2>&1; then
	echo "not ok 3 - smap includes smapd code"
else echo "ok 3 - smap includes no smapd code"; fi
if ls smapd/*.[ch] >/dev/null 2>&1 && grep -l '#include "\.\./smap/' smapd/*.[ch] >/dev/null 2>&1; then
	echo "not ok 4 - smapd includes smap code"
else echo "ok 4 - smapd includes no smap code"; fi

if [ -x smap/smap ]; then
	libs=$(readelf -d smap/smap | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
	case "$libs" in
	*libssl*|*libcrypto*|*libseccomp*) echo "not ok 5 - smap/smap links $libs";;
	*) echo "ok 5 - smap/smap links only $libs";;
	esac
else echo "not ok 5 - smap/smap is not built"; fi
