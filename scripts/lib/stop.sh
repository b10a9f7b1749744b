# Bounded stops (sourced by tests/sip/lib.sh and scripts/netns-tests.sh).

# stop_within SECONDS PID [SIGNAL]: sends SIGNAL (TERM; "none": already sent,
# e.g. to several servers at once) to PID, a child of this shell, and waits
# for it at most SECONDS; one still running then gets SIGKILL,
# to its process group as well when it leads one (start_kamailio's servers do,
# so their workers go too). A shutdown that hangs thus fails its test (exit
# 137) instead of hanging the run. Returns PID's exit status.
stop_within() {
    local secs=$1 pid=$2 sig=${3:-TERM} i
    [ "$sig" = none ] || kill -"$sig" "$pid" 2>/dev/null
    # (bash reaps its exited children as they go, so kill -0 fails once PID is done)
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "pid $pid still ran $secs s after it was signalled to stop: SIGKILL" >&2
        kill -KILL -- "-$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
}
