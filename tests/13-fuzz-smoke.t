#!/bin/sh
# The libFuzzer harnesses of tests/fuzz build and run clean over their
# committed corpora (make fuzz-smoke). Skipped without clang's libFuzzer.
cd "$(dirname "$0")/.." || exit 1
echo "1..1"
if [ "$(cat build.flavour 2>/dev/null)" = san ]; then
	echo "ok 1 # skip the harnesses build with their own sanitizers: tools/check runs them in the hardened pass"
	exit 0
fi
cc=${FUZZ_CC:-clang}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
    '{ (void)d; (void)n; return 0; }' >"$tmp/t.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
    ! "$cc" -fsanitize=fuzzer,address,undefined -o "$tmp/t" "$tmp/t.c" \
	>/dev/null 2>&1; then
	echo "ok 1 # SKIP no libFuzzer runtime for $cc"
	exit 0
fi
if out=$(make -s fuzz-smoke FUZZ_CC="$cc" 2>&1); then
	echo "ok 1 - make fuzz-smoke: every corpus input runs clean"
else
	echo "not ok 1 - make fuzz-smoke found a problem (tests/fuzz/build/crash-*)"
	printf '%s\n' "$out" | tail -40 | sed 's/^/# /'
fi
