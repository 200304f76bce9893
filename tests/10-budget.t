#!/bin/sh
# smap's own code must stay small enough to audit in one sitting:
# at most 1,800 non-blank lines of C in smap/, every function short,
# and no smapd code included from smap (nor the other way round), and
# smap/smap links neither OpenSSL (smap-tls.so brings it when TLS is on)
# nor libseccomp (its filter is compiled in when it is built); the static
# smap (the default build) links nothing at all. smap(8) lists every common/
# file smap and smap-tls.so link (from their debugging information) with
# its line count, each within a tenth, so that a small change elsewhere
# does not fail here (SMAP_MAN_WRITE=1 rewrites the list).
cd "$(dirname "$0")/.." || exit 1
echo "1..6"
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
	interp=$(readelf -l smap/smap | grep -c 'Requesting program interpreter')
	case "$libs" in
	*libssl*|*libcrypto*|*libseccomp*) echo "not ok 5 - smap/smap links $libs";;
	"") if [ "$interp" = 0 ]; then
		echo "ok 5 - smap/smap is linked statically: links nothing"
	    else echo "not ok 5 - smap/smap names a loader but no library"; fi;;
	*) echo "ok 5 - smap/smap links only $libs";;
	esac
else echo "not ok 5 - smap/smap is not built"; fi

# linked - "common/FILE.c<TAB>lines[<TAB>(smap-tls.so)]" for each linked file:
# those of smap-dynamic (smap with the module loader, the same in every
# build flavour) and the module, and the static smap's stand-in for the
# loader, common/static/notls.c, and common/static/cdb_musl.c
linked() {
	for b in smap/smap-dynamic smap/smap-tls.so; do
		readelf --debug-dump=info "$b" 2>/dev/null | awk '/DW_TAG_compile_unit/ { cu = 1 }
		    cu && /DW_AT_name/ { print $NF; cu = 0 }' | grep '^common/.*\.c$' | sort -u |
		while read -r f; do
			printf '%s\t%s%s\n' "$f" "$(wc -l <"$f")" \
			    "$([ "$b" = smap/smap-tls.so ] && printf '\t(smap-tls.so)')"
		done
	done
	printf 'common/static/notls.c\t%s\t(static smap)\n' "$(wc -l <common/static/notls.c)"
	printf 'common/static/cdb_musl.c\t%s\t(static smap, musl)\n' "$(wc -l <common/static/cdb_musl.c)"
}
# near - $have names the files of $want, each count within a tenth of it
near() {
	printf '%s\n' "$have" | awk -F'\t' -v want="$want" 'BEGIN { n = split(want, w, "\n") }
	    { split(w[NR], f, "\t"); d = $2 - f[2]; if (d < 0) d = -d
	      if ($1 != f[1] || $3 != f[3] || d * 10 > f[2]) bad = 1 }
	    END { exit bad || NR != n }'
}
want=$(linked)
have=$(sed -n '/^\.\\" linked: begin/,/^\.\\" linked: end/p' smap/smap.8 | sed '1d;$d')
if [ -z "$want" ]; then
	echo "ok 6 # SKIP smap/smap has no debugging information (CFLAGS without -g)"
elif [ "$want" = "$have" ]; then
	echo "ok 6 - smap(8) lists the $(echo "$want" | wc -l) common/ files smap links, with their lines"
elif [ -z "${SMAP_MAN_WRITE:-}" ] && near; then
	echo "ok 6 - smap(8) lists the $(echo "$want" | wc -l) common/ files smap links, their lines within a tenth"
elif [ -n "${SMAP_MAN_WRITE:-}" ]; then
	printf '%s\n' "$want" >smap/smap.8.list
	awk '/^\.\\" linked: begin/ { print; while ((getline l <"smap/smap.8.list") > 0) print l; skip = 1; next }
	    /^\.\\" linked: end/ { skip = 0 } !skip' smap/smap.8 >smap/smap.8.new &&
	    mv smap/smap.8.new smap/smap.8 && rm -f smap/smap.8.list
	echo "ok 6 - smap(8): the list of linked common/ files rewritten"
else
	echo "not ok 6 - smap(8) does not list the common/ files smap links as they are"
	echo "$want" >/tmp/smap-linked.$$; echo "$have" | diff - /tmp/smap-linked.$$ | sed 's/^/#   /'
	rm -f /tmp/smap-linked.$$
	echo "#   (SMAP_MAN_WRITE=1 tests/10-budget.t rewrites it)"
fi
