#!/usr/bin/env python3
"""Two chordsip nodes on loopback: register a contact on one, find it from the other.

CHORDSIP_LIBRARY=target/release/libchordsip.so python3 bindings/python/examples/two_nodes.py
"""

import time

import chordsip

AOR = "sip:alice@example.org"

print("libchordsip", chordsip.version())
with (
    chordsip.Node({"listen": "127.0.0.1:0", "stabilize_ms": 50}) as a,
    chordsip.Node({"stabilize_ms": 50}) as b,
):
    a.join()  # a new ring
    b.join(a.addr)  # b joins through a
    print("node a", a.addr, a.id[:8], "| node b", b.addr, b.id[:8])

    copies = a.put(AOR, "alice-phone", b"sip:alice@192.0.2.10:5060", lifetime_s=300)
    print("registered %s (%d copies)" % (AOR, copies))

    for value in b.get(AOR):
        print(
            "b sees %s -> %s (expires in %d s)"
            % (value.writer, value.data.decode(), value.expires_in_ms // 1000)
        )

    info = b.lookup(AOR)
    print("responsible node %s, %d hops, %d us" % (info.addr, info.hops, info.latency_us))

    # Asynchronous get: the callback gets the result or an exception.
    done = []
    b.get_async(AOR, done.append)
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    print("async get:", done[0])

    # Only the writer removes its entry: the slot is a's (its writer key's).
    # A remove through b would name b's own, empty slot and change nothing.
    a.remove(AOR, "alice-phone")
    print("after remove:", b.get(AOR))
    b.leave(2000)
print("done")
