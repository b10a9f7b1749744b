"""The exception of a missing library, on its own so that the loader
(``_lib``) needs nothing from ``errors``, which uses the loader for the
library's texts: the package's modules import each other one way only."""

from __future__ import annotations

__all__ = ["LibraryNotFound"]


class LibraryNotFound(ImportError):
    """libchordsip.so could not be found or loaded.

    Raised on first use (never at import). Set ``CHORDSIP_LIBRARY`` to the
    full path of libchordsip.so, install the library (``make install``), or
    build it in the checkout (``cargo build --release --lib``).
    """

    # Shown as chordsip.LibraryNotFound (it is re-exported there and in errors).
    __module__ = "chordsip.errors"
