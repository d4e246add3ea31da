"""The project's one error base class and its exit codes.

Every command-line tool (``c2-eval``, ``c2-judge``, ``c2-report``, ``c2-syn``,
``recipes/dpo.py``) maps errors the same way, so scripts can rely on the code:

====  ==================================================================
code  meaning
====  ==================================================================
0     success
1     the work ran but failed (judge errors, too many invalid verdicts,
      a training or generation failure, an upload the network refused,
      a disk full); the message says which
2     bad input or configuration: a file, row, field, flag or setting is
      unusable (missing, unreadable, a directory, malformed); nothing
      expensive has run yet
====  ==================================================================

Raise a subclass of :class:`CCError` with one line that names the file, row
and field (or the flag); each tool's ``main`` catches :class:`CCError` and
:class:`OSError` at the top and returns :func:`cli_exit`, which prints
``<prog>: error: <line>`` (no traceback) and returns the code. An ``OSError``
about the input (no such file, permission denied, is a directory) is exit 2;
any other ``OSError`` (disk full, I/O error) is exit 1.

Each error class lives beside its concept (``DataError`` in ``pku.py``,
``JudgeConfigError`` in ``judges/base.py``, ...) and subclasses
:class:`UsageError` or :class:`RunFailure` here.
"""

from __future__ import annotations

import errno
import sys
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# OSErrors that mean "this path cannot be used as given" rather than "the machine failed".
_INPUT_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EROFS,
        errno.ELOOP,
    }
)


class CCError(Exception):
    """Base of every error the project reports as one line (never a traceback)."""

    exit_code: int = EXIT_USAGE


class UsageError(CCError, ValueError):
    """Bad input or configuration (exit 2): names the file/row/field or flag."""

    exit_code = EXIT_USAGE


class RunFailure(CCError, RuntimeError):
    """The work ran and failed in a way the user must see (exit 1)."""

    exit_code = EXIT_FAILED


def exit_code(err: BaseException) -> int:
    """The exit code of ``err`` by the table above."""
    if isinstance(err, CCError):
        return err.exit_code
    if isinstance(err, OSError):
        return EXIT_USAGE if err.errno in _INPUT_ERRNOS or err.errno is None else EXIT_FAILED
    return EXIT_USAGE


def message(err: BaseException, limit: int | None = None) -> str:
    """``err`` as one line; an ``OSError`` as ``<file>: <reason>`` (no ``[Errno N]``).

    The project's way to show an exception inside another message: line breaks
    are folded into spaces, an empty text becomes the exception's class name, and
    ``limit`` cuts the line to that many characters (for third-party errors that
    run on for pages).
    """
    if isinstance(err, OSError) and not isinstance(err, CCError) and err.strerror:
        where = ": ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        text = f"{where}: {err.strerror.lower()}" if where else err.strerror
    else:
        text = str(err)
    line = " ".join(text.split()) or type(err).__name__
    return line if limit is None else line[:limit]


def cli_exit(prog: str, err: BaseException, stream: TextIO | None = None) -> int:
    """Print ``err`` as one line for ``prog`` and return its exit code."""
    print(f"{prog}: error: {message(err)}", file=stream or sys.stderr)
    return exit_code(err)


__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CCError",
    "RunFailure",
    "UsageError",
    "cli_exit",
    "exit_code",
    "message",
]
