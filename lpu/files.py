"""Reading inputs and writing outputs the way every tool does: outputs appear whole or not at all."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

from lpu.diagnostics import DiagnosticError, SourceLoc, error, printable

_NUL = "a file name holds no NUL"  # what open() refuses with ValueError, before any file system


def _fail(verb: str, path: str, why: str) -> DiagnosticError:
    return DiagnosticError(error(f"cannot {verb} '{printable(path)}': {why}", SourceLoc(path)))


def read_text(path: str) -> str:
    """The text of ``path`` (``-`` is standard input); a missing file is a diagnostic."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DiagnosticError(error(f"'{printable(path)}' is not UTF-8 text ({e.reason} at byte {e.start})",
                                    SourceLoc(path))) from None
    except OSError as e:
        raise _fail("read", path, e.strerror) from None
    except ValueError:
        raise _fail("read", path, _NUL) from None


def read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _fail("read", path, e.strerror) from None
    except ValueError:
        raise _fail("read", path, _NUL) from None


def write_atomic(path: str, data: bytes | str) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    ``-`` writes to standard output. Whatever stood at ``path`` before is untouched on failure.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if "\0" in path:
        raise _fail("write", path, _NUL)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except OSError as e:
        raise _fail("write", path, e.strerror) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _fail("write", path, e.strerror) from None


# --- .npy arrays -----------------------------------------------------------------------------
# np.load trusts a file's header: it evaluates the header text as Python (a header cut short
# escapes as a tokenizer error, a malformed one as SyntaxError), multiplies out any shape (10**20
# elements: OverflowError) and unpickles object arrays. Inputs are read here instead, every
# field checked against the bytes that are really there.
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_MAX = 10000  # numpy's own limit for headers it reads without being told to trust them
_NPY_KEYS = {"descr", "fortran_order", "shape"}
_NPY_MAX_DIMS = 64  # numpy's


class NpyError(ValueError):
    """The bytes are not a .npy array this project reads (the message says why)."""


def parse_npy(data: bytes):
    """The array a .npy file's bytes hold (a copy, writable), or ``NpyError``."""
    import ast

    import numpy as np

    if not data.startswith(_NPY_MAGIC):
        if data.startswith(b"PK\x03\x04"):
            raise NpyError("not a .npy file (an .npz archive holds several arrays)")
        raise NpyError("not a .npy file (it does not start with \\x93NUMPY)")
    if len(data) < 10:
        raise NpyError("its header is cut short")
    major, minor = data[6], data[7]
    if major not in (1, 2, 3) or minor != 0:
        raise NpyError(f"format version {major}.{minor} (this tool reads 1.0, 2.0 and 3.0)")
    start = 10 if major == 1 else 12
    if len(data) < start:
        raise NpyError("its header is cut short")
    size = int.from_bytes(data[8:start], "little")
    if size > _NPY_HEADER_MAX:
        raise NpyError(f"its header is {size} bytes long (at most {_NPY_HEADER_MAX})")
    if start + size > len(data):
        raise NpyError(f"its header is cut short ({len(data) - start} of {size} bytes)")
    try:
        text = data[start: start + size].decode("utf-8" if major == 3 else "latin-1")
        with warnings.catch_warnings():  # an invalid escape in a string: a warning on stderr otherwise
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval").body
    except (UnicodeDecodeError, SyntaxError, ValueError, MemoryError, RecursionError):
        raise NpyError("its header is not a dictionary") from None
    if not isinstance(tree, ast.Dict) or not all(isinstance(k, ast.Constant) for k in tree.keys):
        raise NpyError("its header is not a dictionary")
    header = {k.value: v for k, v in zip(tree.keys, tree.values)}
    if set(header) != _NPY_KEYS or len(tree.keys) != len(_NPY_KEYS):
        raise NpyError(f"its header has the keys {sorted(map(str, header))}, not {sorted(_NPY_KEYS)}")
    descr, order, shape = header["descr"], header["fortran_order"], header["shape"]
    if not (isinstance(descr, ast.Constant) and isinstance(descr.value, str)):
        raise NpyError("its header's 'descr' is not a plain element type (structured arrays are not read)")
    if not (isinstance(order, ast.Constant) and isinstance(order.value, bool)):
        raise NpyError("its header's 'fortran_order' is not True or False")
    if not (isinstance(shape, ast.Tuple) and all(isinstance(d, ast.Constant) and type(d.value) is int
                                                 and d.value >= 0 for d in shape.elts)):
        raise NpyError("its header's 'shape' is not a tuple of sizes")
    dims = tuple(d.value for d in shape.elts)
    if len(dims) > _NPY_MAX_DIMS:
        raise NpyError(f"its shape has {len(dims)} dimensions (numpy holds at most {_NPY_MAX_DIMS})")
    try:
        dtype = np.dtype(descr.value)
    except (TypeError, ValueError, SyntaxError):
        raise NpyError(f"its header's 'descr' {descr.value!r} is not a numpy element type") from None
    if dtype.hasobject:
        raise NpyError("it holds Python objects (a pickle), which are refused")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise NpyError(f"its element type {descr.value!r} is not a plain one")
    count = 1
    for d in dims:
        count *= d
    need = count * dtype.itemsize
    have = len(data) - start - size
    if need != have:
        raise NpyError(f"its header announces {count} elements of {descr.value} ({need} bytes), but the file "
                       f"holds {have} bytes of data")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start + size)
    return flat.reshape(dims, order="F" if order.value else "C").copy()


def read_npy(path: str):
    """The array of a .npy file (``-``: standard input); anything else is a diagnostic."""
    try:
        return parse_npy(read_bytes(path))
    except NpyError as e:
        raise _fail("load", path, str(e)) from None
