# Skips, one rule for every suite (sourced by scripts/test.sh and the suites it runs).
#
# A suite or test that cannot run here calls `skip_suite NAME REASON`: the skip is
# printed and appended to $CHORDSIP_SKIP_LOG (scripts/test.sh makes that file fresh
# per run and lists its lines at the end). Under CI=true a skip is a failure (the
# function returns 1), unless NAME is in CHORDSIP_ALLOW_SKIP (names separated by
# spaces or commas): a CI that skips a suite must say so on purpose, not pass quietly.

# skip_allowed NAME: is NAME in CHORDSIP_ALLOW_SKIP?
skip_allowed() {
    local n names=()
    IFS=', ' read -ra names <<<"${CHORDSIP_ALLOW_SKIP:-}"
    for n in "${names[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# skip_suite NAME REASON: 0 when the skip is acceptable (not CI, or allowed),
# else 1 after saying why; the caller exits or records a failure.
skip_suite() {
    local name=$1 reason=$2
    [ -n "${CHORDSIP_SKIP_LOG:-}" ] && printf '%s: %s\n' "$name" "$reason" >>"$CHORDSIP_SKIP_LOG"
    printf 'SKIP  %-22s %s\n' "$name" "$reason"
    if [ "${CI:-}" = true ] && ! skip_allowed "$name"; then
        printf 'FAIL  %-22s skipped under CI=true (add %s to CHORDSIP_ALLOW_SKIP to allow it)\n' "$name" "$name"
        return 1
    fi
    return 0
}

# skip_summary: one line, what $CHORDSIP_SKIP_LOG holds ("skipped: none" when nothing).
skip_summary() {
    if [ -s "${CHORDSIP_SKIP_LOG:-}" ]; then
        echo "skipped ($(wc -l <"$CHORDSIP_SKIP_LOG")): $(awk 'NR > 1 { printf "; " } { printf "%s", $0 }' "$CHORDSIP_SKIP_LOG")"
    else
        echo "skipped: none"
    fi
}
