"""ddctl's command line: argument parsing and rendering only.

Each subcommand lives in ddctl/commands/<name>.py with `add_parser(subparsers)` and
`run(args, ui) -> int`; the work itself is done by ddctl's other modules, which raise.
`perform_command()` is the one error boundary: Docker SDK errors become one sentence
there (client.handle_connection_errors), and every DdctlError is printed on stderr as
one line with its exit code; a traceback only with --debug.
"""

import argparse
import contextlib
import signal
import sys

from rich.console import Console

from ddctl import __version__
from ddctl.client import handle_connection_errors
from ddctl.commands import build, doctor, layers, models, run, sheet, swarm, zoom
from ddctl.errors import DdctlError

COMMANDS = (doctor, build, run, zoom, sheet, layers, models, swarm)


class UI:
    """The two consoles, kept apart (httpie style): results on stdout, the rest on stderr."""

    def __init__(self, debug=False):
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        self.debug = debug

    def fail(self, message):
        self.err.print(f"[bold red]ddctl:[/] {message}", markup=True, soft_wrap=True)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ddctl",
        description="DeepDream pictures with Docker: get Docker working, build the dream image, dream.",
    )
    parser.add_argument("--version", action="version", version=f"ddctl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the command line, options allowed between the positionals.

    `ddctl run photo.jpg --seed 7 inception_4b/output 20` means what it says: argparse alone
    stops at the first option after SOURCE and refuses the positionals after it, so the
    subcommand's words are parsed again with parse_intermixed_args when anything is left over.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    command = getattr(args, "command", None)
    if extra and command and command in argv:
        subparser = _subparsers(parser).get(command)
        rest = argv[argv.index(command) + 1 :]
        if subparser is not None and "--" not in rest:
            try:
                namespace = argparse.Namespace(**{k: getattr(args, k) for k in ("debug", "command")})
                return subparser.parse_intermixed_args(rest, namespace=namespace)
            except TypeError:  # a command with subcommands of its own (swarm)
                pass
    if extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    return args


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def perform_command(args, ui):
    """Run the parsed command; Docker's errors become one DockerUnavailable sentence here."""
    with handle_connection_errors():
        return args.func(args, ui) or 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def signals_like_ctrl_c() -> None:
    """SIGTERM and SIGHUP (a closed terminal, `kill`) do what Ctrl-C does: the dream
    container is stopped and removed, what was written stays."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                signal.signal(sig, _interrupt)


def main(argv=None):
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    ui = UI(debug=args.debug)
    signals_like_ctrl_c()
    try:
        return perform_command(args, ui)
    except DdctlError as exc:
        if args.debug:
            ui.err.print_exception()
        ui.fail(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.fail("interrupted.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
