#!/usr/bin/env bash
# C API tests (tests/c) against the staged install:
#   1. make install PREFIX=target/stage
#   2. checks that the C tests call every function chordsip.h declares
#   3. builds the tests with -fsanitize=address,undefined and runs each
#   4. builds them plainly and runs each under valgrind (tests/c/valgrind.supp)
#   5. test_ring linked statically (libchordsip.a and pkg-config --static's
#      libraries): no libchordsip.so needed, and it passes
#   6. scripts/c-examples.sh: the C examples, plainly and under valgrind
# Every step runs even after a failure; the exit status is non-zero if any failed.
# Build products and logs go to target/c-tests/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STAGE=$ROOT/target/stage
OUT=$ROOT/target/c-tests
TESTS=(test_api test_abilities test_ring test_addresses test_registrar test_publish test_callbacks test_hooks test_concurrency test_free test_fork test_regressions)
failed=()
T_START=$(date +%s.%N)

elapsed() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

echo "== staging the install in $STAGE"
make install PREFIX="$STAGE" || { echo "make install failed"; exit 1; }
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig

echo "== every function of chordsip.h is exercised by a C test (tests/c/test_*.c)"
missing=0
for f in $(grep -oE '\bchordsip_[a-z0-9_]+\(' include/chordsip.h | tr -d '(' | sort -u); do
    if ! grep -q "\b$f(" tests/c/test_*.c; then
        echo "  not called in any tests/c/test_*.c: $f"
        missing=1
    fi
done
if [ $missing -eq 0 ]; then
    echo "  $(grep -oE '\bchordsip_[a-z0-9_]+\(' include/chordsip.h | sort -u | wc -l) functions, all covered"
else
    failed+=("header-coverage")
fi

# run LABEL CMD...: one test run, logged to $OUT/logs/LABEL.log.
run() {
    local label=$1; shift
    local start rc
    start=$(date +%s.%N)
    "$@" >"$OUT/logs/$label.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        printf 'PASS  %-28s %6.2f s\n' "$label" "$(elapsed "$start")"
    else
        printf 'FAIL  %-28s exit %d after %.2f s (log: %s)\n' "$label" $rc "$(elapsed "$start")" \
            "$OUT/logs/$label.log"
        grep -v '^key ' "$OUT/logs/$label.log" | tail -n 40 | sed 's/^/      /'
        failed+=("$label")
    fi
}

rm -rf "$OUT"
mkdir -p "$OUT/logs"

echo "== build with ASan + UBSan"
if make -s -C tests/c BUILD="$OUT/asan" SANITIZE=1; then
    echo "== run with ASan + UBSan"
    for t in "${TESTS[@]}"; do
        # CHORDSIP_CTEST_SLOW=asan: the tests' time bounds, three times wider.
        run "asan-$t" env CHORDSIP_CTEST_SLOW=asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$OUT/asan/$t"
    done
else
    failed+=("asan-build")
fi

echo "== plain build"
if make -s -C tests/c BUILD="$OUT/plain"; then
    echo "== run under valgrind"
    for t in "${TESTS[@]}"; do
        # CHORDSIP_CTEST_SLOW widens the tests' time bounds for valgrind's pace.
        run "valgrind-$t" env CHORDSIP_CTEST_SLOW=1 valgrind -q --error-exitcode=9 \
            --leak-check=full --errors-for-leak-kinds=definite,possible \
            --suppressions="$ROOT/tests/c/valgrind.supp" "$OUT/plain/$t"
    done
else
    failed+=("plain-build")
fi

echo "== static linking: test_ring against libchordsip.a (pkg-config --static), no libchordsip.so"
mkdir -p "$OUT/static"
# shellcheck disable=SC2046 # pkg-config's words are separate arguments
if cc -std=c11 -D_GNU_SOURCE -O1 -pthread $(pkg-config --cflags chordsip) tests/c/test_ring.c \
    -o "$OUT/static/test_ring" "$STAGE/lib/libchordsip.a" \
    $(pkg-config --libs-only-l --static chordsip | sed 's/-lchordsip\b//') >"$OUT/logs/static-build.log" 2>&1; then
    if ldd "$OUT/static/test_ring" | grep -q libchordsip; then
        echo "FAIL  static-link                  the binary still needs libchordsip.so: $(ldd "$OUT/static/test_ring" | grep libchordsip)"
        failed+=("static-link")
    else
        run static-test_ring "$OUT/static/test_ring"
    fi
else
    echo "FAIL  static-link                  (log: $OUT/logs/static-build.log)"
    tail -n 20 "$OUT/logs/static-build.log" | sed 's/^/      /'
    failed+=("static-link")
fi

echo "== C examples"
CHORDSIP_STAGED=1 "$ROOT/scripts/c-examples.sh" || failed+=("c-examples")

printf '== total %.1f s\n' "$(elapsed "$T_START")"
if [ ${#failed[@]} -gt 0 ]; then
    echo "C tests FAILED: ${failed[*]}"
    exit 1
fi
echo "C tests: all passed"
