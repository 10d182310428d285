"""``transfer-lab``: the same engine as the app, without the app.

One module per command (validate, demo_data, run, runs, compare, split, evaluate,
curve), each with ``add_parser(subparsers)`` and its ``cmd_*`` function; what they share
(flags, progress bar, error printing, reading the settings) is in :mod:`.common`, the
TOML config's checks in :mod:`.config`, the flags generated from config dataclasses
in :mod:`.fields`, and where the fits run (``--executor``, ``--seeds``) in
:mod:`.executing`. Command modules import only those, never each other.

Errors in the user's data or settings print one clear paragraph and exit 2; nothing
prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
import typing

from recsys_core.allocator import tune_allocator
from recsys_core.cli import (
    compare,
    curve,
    demo_data,
    evaluate,
    run,
    runs,
    split,
    validate,
)
from recsys_core.cli.common import EXIT_USAGE, build_request, print_error
from recsys_core.errors import DataError

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "build_request", "main"]

COMMANDS = (validate, demo_data, run, runs, compare, split, evaluate, curve)
"""The command modules, in the order ``transfer-lab --help`` lists them."""

EXIT_BROKEN_PIPE = 141
"""What a shell reports for a process killed by SIGPIPE (128 + 13): the reader of our
output (``| head``) stopped reading, which is not an error worth a message."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the flag and what is wrong, not 30 lines of usage
    before it (subcommand parsers are of this class too)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


REGISTRY_COMMANDS = {"run": run, "curve": curve}
"""Commands whose flags are generated from the strategy registry, which imports torch
(about 1.7 s): built only when one of them, or the overall help, is asked for, so that
``validate`` or ``runs`` start in a fraction of a second."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``transfer-lab`` parser: every command's subparser, or, when ``command`` is
    a command that does not need the registry, all but the registry's commands."""
    p = _Parser(prog="transfer-lab", description="Does transfer learning help a thin domain?")
    sub = p.add_subparsers(dest="command", required=True)
    light = command is not None and command not in REGISTRY_COMMANDS
    for module in COMMANDS:
        if light and module in REGISTRY_COMMANDS.values():
            continue
        module.add_parser(sub)
    return p


def _command(argv: list[str]) -> str | None:
    """The command word of ``argv`` (None for ``--help`` alone or nothing)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """What ``transfer-lab`` does, as a function that returns its exit status (the script
    itself is :func:`console`; tests call this)."""
    tune_allocator()  # before the data are read: the thresholds apply to later blocks
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    known = {"validate", "demo-data", "runs", "compare", "split", "evaluate"}
    args = build_parser(command if command in known else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except DataError as exc:
        return print_error(str(exc))
    except ValueError as exc:
        return print_error(str(exc))
    except KeyError as exc:  # RunNotFoundError and its kind carry a message, not a key
        return print_error(str(exc.args[0]) if exc.args else "not found")
    except KeyboardInterrupt:
        return print_error("interrupted")


def console() -> typing.NoReturn:
    """The process entry point (the ``transfer-lab`` script and ``python -m``): ``main``,
    then out without the interpreter's teardown.

    Freeing every object of a process that trained (torch's, the scenario's strings)
    took about 1 s after the demo's last line was printed (issue 13). The exit handlers
    still run and the standard streams are flushed; nothing else is left to write: the
    run store commits each write and every file is closed by its ``with``. Tests call
    :func:`main`, which returns.
    """
    import atexit
    import os

    code = main()
    atexit._run_exitfuncs()  # logging's flush, temporary folders, Ray's shutdown...
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(code)


def _quiet_broken_pipe() -> int:
    """The reader closed the pipe: no traceback, and none at exit either (Python flushes
    stdout at exit, which would fail again), as the Python docs advise for SIGPIPE."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass
    return EXIT_BROKEN_PIPE
