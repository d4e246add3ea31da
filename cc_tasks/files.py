"""Reading inputs and writing outputs safely: one implementation for every tool.

- :func:`open_input` opens an input file or raises one line that says why not
  (no such file, is a directory, permission denied).
- :func:`iter_jsonl` streams a JSONL file one bounded line at a time, so a huge
  or wrong file (``truncate -s 2G x.jsonl``) fails on its first bad line within
  milliseconds and a few MB of memory instead of being read whole first.
- :func:`atomic_write_text` / :func:`atomic_path` write beside the target and
  rename into place, so an output either exists complete or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cc_tasks.errors import UsageError, message

READ_CHUNK = 1 << 16  # bytes read at a time while looking for the end of a line
MAX_LINE_BYTES = 16 << 20  # a JSONL line longer than this is refused (rows are KBs)
_JSON_START = frozenset(b'{["-0123456789tfn')


def open_input(path: str | os.PathLike, error: type[Exception] = UsageError) -> IO[bytes]:
    """``path`` opened for binary reading, or ``error("<path>: <why>")`` in one line."""
    p = Path(path)
    try:
        return p.open("rb")
    except IsADirectoryError:
        raise error(f"{p}: is a directory, expected a file") from None
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except PermissionError:
        raise error(f"{p}: cannot read (permission denied)") from None
    except OSError as err:
        raise error(f"{p}: cannot read ({err.strerror or err})") from None


def _read_line(handle: IO[bytes], where: str, error: type[Exception], not_json: str) -> bytes:
    """The next line (b"" at the end), read in bounded pieces; refuses runaway lines early."""
    piece = handle.readline(READ_CHUNK)
    if piece.endswith(b"\n") or len(piece) < READ_CHUNK:
        return piece
    head = piece.lstrip()[:1]
    if head and head[0] not in _JSON_START:  # decided from the first bytes: read no further
        raise error(
            f"{where}: {not_json} (it starts with {head.decode('latin-1')!r}; is this a JSONL file?)"
        )
    parts, size = [piece], len(piece)
    while not piece.endswith(b"\n") and len(piece) == READ_CHUNK:
        if size > MAX_LINE_BYTES:
            raise error(
                f"{where}: longer than {MAX_LINE_BYTES >> 20} MiB without a line break "
                "(is this a JSONL file?)"
            )
        piece = handle.readline(READ_CHUNK)
        parts.append(piece)
        size += len(piece)
    return b"".join(parts)


def iter_jsonl(
    path: str | os.PathLike,
    *,
    unit: str = "row",
    error: type[Exception] = UsageError,
    not_json: str = "not valid JSON",
) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` for each non-blank line, streamed.

    Errors are ``error("<path>: <unit> <n>: ...")``, raised when that line is
    reached (a generator): callers validate each value as it comes.
    """
    with open_input(path, error) as handle:
        number = 0
        while True:
            where = f"{path}: {unit} {number + 1}"
            line = _read_line(handle, where, error, not_json)
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise error(f"{where}: {not_json} ({err.msg})") from None
            yield number, value


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(err: OSError, target: Path) -> OSError:
    """``err`` naming ``target``: a full disk or an I/O error reports no file (or only the
    temporary one), so the one line the user sees would not say which output failed."""
    temporary = f".{target.name}."  # mkstemp's names: see atomic_path
    if err.filename is not None and not Path(os.fsdecode(err.filename)).name.startswith(temporary):
        return err
    named = OSError(
        err.errno, err.strerror or message(err), str(target)
    )  # errno picks the subclass
    return named.with_traceback(err.__traceback__)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` only if the block succeeds.

    For writers that want a file name (``pyarrow.parquet.write_table``, ``savefig``).
    The file gets the usual permissions (umask), not ``mkstemp``'s private ones. An
    ``OSError`` that names no file (disk full) or only the temporary one is raised
    naming ``path``.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as err:
        raise _naming(err, target) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) beside ``path``, fsync it, then rename it into place."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


__all__ = ["MAX_LINE_BYTES", "atomic_path", "atomic_write_text", "iter_jsonl", "open_input"]
