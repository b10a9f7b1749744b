"""A C handle shared by threads, freed exactly once when no call uses it.

The C contract of ``chordsip_node_free`` / ``chordsip_client_free`` is "no
other thread uses it during or after the call". Every call of the binding
therefore holds a *use* of the handle while it is inside C; :meth:`close`
marks the handle closed (later calls raise :class:`~chordsip.errors.Closed`)
and frees it once the uses of other threads have ended.

No Python lock is held while C runs: the library may need a callback (which
needs the GIL and possibly this handle's lock) to finish before a C call returns.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Dict, Optional

from .errors import Closed


class Handle:
    __slots__ = (
        "_ptr",
        "_free",
        "_after_free",
        "_what",
        "_cond",
        "_uses",
        "_per_thread",
        "_closed",
        "_deferred",
        "_pid",
    )

    def __init__(
        self,
        ptr: int,
        free: Callable[[int], None],
        what: str,
        after_free: Optional[Callable[[bool], None]] = None,
    ) -> None:
        self._ptr: Optional[int] = ptr
        self._free = free
        self._after_free = after_free
        self._what = what
        # Reentrant: a __del__ run by the garbage collector may close another
        # handle while this thread is inside one of these methods.
        self._cond = threading.Condition(threading.RLock())
        self._uses = 0
        self._per_thread: Dict[int, int] = {}
        self._closed = False
        self._deferred = False
        self._pid = os.getpid()

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self) -> int:
        """The pointer, counted as in use until :meth:`release`."""
        with self._cond:
            if self._closed or self._ptr is None:
                raise Closed(detail="%s is closed" % self._what)
            self._uses += 1
            tid = threading.get_ident()
            self._per_thread[tid] = self._per_thread.get(tid, 0) + 1
            return self._ptr

    def release(self) -> None:
        ptr = None
        with self._cond:
            self._uses -= 1
            tid = threading.get_ident()
            n = self._per_thread.get(tid, 0) - 1
            if n > 0:
                self._per_thread[tid] = n
            else:
                self._per_thread.pop(tid, None)
            if self._closed:
                if self._deferred and self._uses == 0:
                    ptr, self._ptr = self._ptr, None
                self._cond.notify_all()
        if ptr is not None:
            self._do_free(ptr, True)

    def __enter__(self) -> int:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self, defer: bool = False) -> None:
        """Frees the handle once; idempotent.

        Waits for calls of other threads to return, then frees it here. With
        ``defer`` (used on library threads, which must not block) the free is
        left to the last of those calls if there are any.
        """
        if os.getpid() != self._pid:
            # A forked child: the parent's threads (and maybe a lock holder)
            # do not exist here; the C free only releases memory.
            if self._closed:
                return
            self._closed = True
            ptr, self._ptr = self._ptr, None
            if ptr is not None:
                self._do_free(ptr, False)
            return
        with self._cond:
            if self._closed:
                return
            self._closed = True
            tid = threading.get_ident()

            def others() -> int:
                return self._uses - self._per_thread.get(tid, 0)

            if defer and others() > 0:
                self._deferred = True
                return
            while others() > 0:
                self._cond.wait()
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._do_free(ptr, True)

    def _do_free(self, ptr: int, same_process: bool) -> None:
        try:
            self._free(ptr)
        finally:
            if self._after_free is not None:
                self._after_free(same_process)
