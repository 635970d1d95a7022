"""The `gradtrace` command line: `gradtrace report` and `gradtrace demo`.

Exit status (API.md §6): 0 when the run has no error-severity finding, 1 when
it has one, 2 on bad usage or an unreadable logdir. The library raises typed
errors (`gradtrace.errors.GradtraceError` and subclasses, each with an
``exit_code``); this module turns them into one line on stderr and that exit
status, never a traceback.

Example:

```
gradtrace report runs/a          # text, worst finding first
gradtrace report runs/a --json   # the JSON document of gradtrace.report
gradtrace demo --scenario dead_relu
```
"""

from __future__ import annotations

import argparse
import os
import sys
import types

from .errors import GradtraceError

PROG = "gradtrace"

# Up to this many bytes of event files, TensorBoard's pure-Python record reader
# (~3 MB/s here) is faster than importing TensorFlow (~3 s) for its C++ reader.
_PURE_PYTHON_READER_MAX_BYTES = 8 << 20


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse exits 2 on bad usage already; keep its usage line, add the hint.
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog=PROG,
        description="Diagnose why Keras training is slow, stuck or broken.",
        epilog="Exit status: 0 no error finding, 1 an error finding, 2 bad usage "
        "or unreadable logdir.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    r = sub.add_parser(
        "report",
        help="print a run's findings, per-layer table and timing summary",
        description="Read a finished or running gradtrace logdir (findings.jsonl, "
        "gradtrace.json and the TensorBoard event files) and print its findings "
        "worst first, the last per-layer statistics and a step-timing summary.",
        epilog="Exit status: 0 no error finding, 1 an error-severity finding, "
        "2 bad usage or unreadable logdir.",
    )
    r.add_argument(
        "logdir",
        metavar="LOGDIR",
        help="the folder given to gradtrace.fit(..., logdir=...)",
    )
    r.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (schema: the gradtrace.report docstring)",
    )
    sub.add_parser(
        "demo",
        add_help=False,
        help="train healthy and broken models and show what gradtrace finds "
        "(see 'gradtrace demo --help')",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the `gradtrace` command; returns the exit status.

    Args:
        argv: the arguments after the program name; `None` means `sys.argv[1:]`.

    Returns:
        The exit status (see the module docstring).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        # The demo owns its options (and its --help).
        return _demo(argv[1:])
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        _parser().print_usage(sys.stderr)
        print(
            f"{PROG}: error: a command is required (report or demo). "
            f"Try '{PROG} --help'.",
            file=sys.stderr,
        )
        return 2
    return _report(args.logdir, args.json)


def _report(logdir: str, as_json: bool) -> int:
    from . import report

    _prefer_pure_python_reader(logdir)
    try:
        rep = report.load(logdir)
    except GradtraceError as e:
        print(f"{PROG} report: error: {e}", file=sys.stderr)
        return e.exit_code
    try:
        print(rep.to_json() if as_json else rep.format_text())
        sys.stdout.flush()
    except BrokenPipeError:
        # `gradtrace report ... | head`: the reader left; stop quietly, as
        # the Python docs recommend (redirect the rest of stdout to devnull).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return rep.exit_code


def _demo(argv: list[str]) -> int:
    try:
        from . import demo
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.demo":
            raise
        print(
            f"{PROG} demo: error: the demo is not available in this installation "
            "(module gradtrace.demo is missing). Reinstall gradtrace, or use "
            f"'{PROG} report LOGDIR' on a run of your own.",
            file=sys.stderr,
        )
        return 1
    try:
        code = demo.main(argv)
    except GradtraceError as e:
        print(f"{PROG} demo: error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:  # a demo built on argparse exits on --help / bad usage
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0 if code is None else int(code)


def _prefer_pure_python_reader(logdir: str) -> None:
    """Lets TensorBoard read small logdirs without importing TensorFlow.

    TensorBoard picks TensorFlow's record reader when TensorFlow is
    importable; the marker module `tensorboard.compat.notf` makes it use its
    own stub instead. Only done by the command (its own process), never by
    the library, and only when TensorFlow is not loaded already.
    """
    if "tensorflow" in sys.modules or "tensorboard.compat.notf" in sys.modules:
        return
    total = 0
    for sub in ("train", "validation"):
        d = os.path.join(logdir, sub)
        try:
            total += sum(e.stat().st_size for e in os.scandir(d) if e.is_file())
        except OSError:
            continue
    if total <= _PURE_PYTHON_READER_MAX_BYTES:
        sys.modules["tensorboard.compat.notf"] = types.ModuleType(
            "tensorboard.compat.notf"
        )
