"""The binding cannot drift from include/chordsip.h.

* every function declared in the header has a prototype in the binding, and
  the loaded library's function objects carry exactly those argtypes/restype;
* each prototype matches the header's C types, parameter by parameter;
* the mirrored structs have the C layout (compiled with cc when available);
* result codes, enums and limits match.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest

import chordsip
from chordsip import _lib
from conftest import HEADER


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _header() -> str:
    if not HEADER.is_file():
        pytest.skip("include/chordsip.h not found (not run from a checkout)")
    return HEADER.read_text()


def _declarations() -> Dict[str, Tuple[str, List[str]]]:
    """name -> (return type, [parameter types]) of every declared function."""
    code = _strip_comments(_header())
    code = "\n".join(l for l in code.splitlines() if not l.lstrip().startswith("#"))
    code = code.replace('extern "C" {', ";")
    out: Dict[str, Tuple[str, List[str]]] = {}
    for stmt in code.split(";"):
        stmt = " ".join(stmt.split())
        m = re.fullmatch(r"(?:.*[{}] )?([A-Za-z_][\w *]*?)\s*\b(chordsip_\w+)\s*\(([^()]*)\)", stmt)
        if not m or "typedef" in m.group(1):
            continue
        ret, name, params = m.group(1), m.group(2), m.group(3)
        ptypes = []
        for p in params.split(","):
            p = p.strip()
            if p in ("void", ""):
                continue
            # Drop the parameter name: the last identifier.
            ptypes.append(re.sub(r"\s*\b\w+$", "", p).replace(" *", "*").strip())
        out[name] = (ret.replace(" *", "*").strip(), ptypes)
    return out


def test_every_header_function_is_declared():
    names = set(re.findall(r"\b(chordsip_\w+)\(", _strip_comments(_header())))
    declared = _declarations()
    assert names == set(declared), "the declaration parser missed some functions"
    assert len(declared) >= 46
    assert set(declared) == set(_lib.PROTOTYPES), (
        "header and binding differ: only in header %s, only in binding %s"
        % (sorted(set(declared) - set(_lib.PROTOTYPES)), sorted(set(_lib.PROTOTYPES) - set(declared)))
    )
    lib = _lib.get()
    for name, (restype, argtypes) in _lib.PROTOTYPES.items():
        fn = getattr(lib, name)
        assert fn.argtypes is not None, "%s has no argtypes" % name
        assert list(fn.argtypes) == list(argtypes), name
        assert fn.restype is restype, name


# How each C type of the header is spelled in the binding's prototypes.
_C_TO_CTYPES = {
    "chordsip_result": ctypes.c_int,
    "int": ctypes.c_int,
    "void": None,
    "void*": ctypes.c_void_p,
    "const char*": ctypes.c_char_p,
    "const char**": ctypes.POINTER(ctypes.c_char_p),
    "char*": ctypes.POINTER(ctypes.c_char),
    "const uint8_t*": ctypes.c_char_p,
    "size_t": ctypes.c_size_t,
    "uint32_t": ctypes.c_uint32,
    "uint16_t": ctypes.c_uint16,
    "size_t*": ctypes.POINTER(ctypes.c_size_t),
    "uint32_t*": ctypes.POINTER(ctypes.c_uint32),
    "uint64_t*": ctypes.POINTER(ctypes.c_uint64),
    "int*": ctypes.POINTER(ctypes.c_int),
}


def _expected(ctype: str):
    if ctype in _C_TO_CTYPES:
        return _C_TO_CTYPES[ctype]
    if ctype in _lib.CALLBACK_TYPES:
        return _lib.CALLBACK_TYPES[ctype]
    bare = ctype.replace("const ", "")
    if bare.endswith("**"):
        return ctypes.POINTER(ctypes.c_void_p)  # handle out-parameter
    if bare.endswith("*") and bare[:-1] in _lib.STRUCTS:
        return ctypes.POINTER(_lib.STRUCTS[bare[:-1]])
    if bare.endswith("*") and bare[:-1] in (
        "chordsip_node",
        "chordsip_client",
        "chordsip_config",
        "chordsip_peers",
        "chordsip_ability_peers",
        "chordsip_values",
        "chordsip_bindings",
    ):
        return ctypes.c_void_p  # opaque handle
    raise AssertionError("no ctypes mapping for C type %r: extend the binding" % ctype)


def test_prototypes_match_header_types():
    for name, (ret, params) in _declarations().items():
        restype, argtypes = _lib.PROTOTYPES[name]
        assert restype is _expected(ret), "%s returns %s" % (name, ret)
        assert len(argtypes) == len(params), "%s takes %d parameters" % (name, len(params))
        for i, (have, c) in enumerate(zip(argtypes, params)):
            assert have is _expected(c), "%s parameter %d is %s" % (name, i, c)


def _enum(name: str) -> Dict[str, int]:
    code = _strip_comments(_header())
    m = re.search(r"typedef enum \{([^{}]*)\}\s*%s;" % name, code, re.S)
    assert m, name
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", m.group(1))}


def test_result_codes_and_enums_match():
    assert _enum("chordsip_result") == {v: k for k, v in chordsip.RESULT_NAMES.items()}
    assert {k: v for k, v in _enum("chordsip_event_kind").items()} == {
        "CHORDSIP_EVENT_" + e.name: e.value for e in chordsip.EventKind
    }
    assert _enum("chordsip_neighbours") == {"CHORDSIP_" + e.name: e.value for e in chordsip.Neighbours}
    assert _enum("chordsip_hop") == {"CHORDSIP_HOP_" + e.name: e.value for e in chordsip.Hop}
    assert _enum("chordsip_auth_verdict") == {"CHORDSIP_AUTH_" + e.name: e.value for e in chordsip.AuthVerdict}
    assert _enum("chordsip_digest_algorithm") == {
        "CHORDSIP_DIGEST_MD5": _lib.CHORDSIP_DIGEST_MD5,
        "CHORDSIP_DIGEST_SHA256": _lib.CHORDSIP_DIGEST_SHA256,
    }
    assert "#define CHORDSIP_MAX_CHALLENGE_LEN %d" % _lib.CHORDSIP_MAX_CHALLENGE_LEN in _header()
    assert _enum("chordsip_delivery") == {
        "CHORDSIP_DELIVER_THREAD": _lib.CHORDSIP_DELIVER_THREAD,
        "CHORDSIP_DELIVER_FD": _lib.CHORDSIP_DELIVER_FD,
    }
    text = _header()
    assert "#define CHORDSIP_MAX_KEY_LEN %d" % chordsip.MAX_KEY_LEN in text
    assert "#define CHORDSIP_MAX_WRITER_LEN %d" % chordsip.MAX_WRITER_LEN in text
    assert "#define CHORDSIP_OWNER_LEN %d" % _lib.CHORDSIP_OWNER_LEN in text
    assert "#define CHORDSIP_MIN_EXPIRES %d" % chordsip.min_expires() in text
    version = re.search(r'#define CHORDSIP_VERSION "([^"]+)"', text).group(1)
    assert chordsip.version() == version == chordsip.__version__


def test_struct_fields_match_header():
    code = _strip_comments(_header())
    for name, cls in _lib.STRUCTS.items():
        m = re.search(r"typedef struct \{([^{}]*)\}\s*%s;" % name, code, re.S)
        assert m, name
        fields = re.findall(r"(\w+)(?:\[\w+\])?\s*;", m.group(1))
        assert fields == [f for f, _ in cls._fields_], name


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_struct_layout_matches_c(tmp_path):
    lines = ['#include "chordsip.h"', "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    for name, cls in _lib.STRUCTS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (name, name))
        lines.append('printf("%s alignof %%zu\\n", _Alignof(%s));' % (name, name))
        for field, _ in cls._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (name, field, name, field))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(
        ["cc", "-std=c11", "-I", str(HEADER.parent), str(src), "-o", str(exe)], check=True, timeout=60
    )
    got = dict(line.rsplit(" ", 1) for line in subprocess.check_output([str(exe)], text=True).splitlines())
    for name, cls in _lib.STRUCTS.items():
        assert int(got["%s sizeof" % name]) == ctypes.sizeof(cls), name
        assert int(got["%s alignof" % name]) == ctypes.alignment(cls), name
        for field, _ in cls._fields_:
            assert int(got["%s.%s" % (name, field)]) == getattr(cls, field).offset, (name, field)


def test_callback_types_match_header():
    code = " ".join(_strip_comments(_header()).split())
    found = re.findall(r"typedef (\w+) \(\*(chordsip_\w+_cb)\)\(([^()]*)\);", code)
    assert {name for _, name, _ in found} == set(_lib.CALLBACK_TYPES)
    for ret, name, params in found:
        cb = _lib.CALLBACK_TYPES[name]
        assert cb._restype_ is _expected(ret), name
        ptypes = [re.sub(r"\s*\b\w+$", "", p.strip()).replace(" *", "*") for p in params.split(",")]
        assert len(cb._argtypes_) == len(ptypes), name
        for have, c in zip(cb._argtypes_, ptypes):
            assert have is _expected(c), "%s: %s" % (name, c)
