"""ddctl's command line: argument parsing and rendering only.

Each subcommand lives in ddctl/commands/<name>.py with `add_parser(subparsers)` and
`run(args, ui) -> int`; the work itself is done by ddctl's other modules, which raise.
`perform_command()` is the one error boundary: Docker SDK errors become one sentence
there (client.handle_connection_errors), and every DdctlError is printed on stderr as
one line with its exit code; a traceback only with --debug.
"""

import argparse
import sys

from rich.console import Console

from ddctl import __version__
from ddctl.client import handle_connection_errors
from ddctl.commands import build, doctor, layers, run, sheet, swarm, zoom
from ddctl.errors import DdctlError

COMMANDS = (doctor, build, run, zoom, sheet, layers, swarm)


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


def perform_command(args, ui):
    """Run the parsed command; Docker's errors become one DockerUnavailable sentence here."""
    with handle_connection_errors():
        return args.func(args, ui) or 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    ui = UI(debug=args.debug)
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
