"""The ``chatdesign`` command line: ``python -m chatdesign --help``.

Each subcommand lives next to the model it runs; this module only collects them. A module in
:data:`SUBCOMMAND_MODULES` provides ``add_subcommand(subparsers)``, which adds one parser and
sets its ``handler`` default to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from chatdesign import __version__
from chatdesign.checks import check_number

SUBCOMMAND_MODULES: tuple[str, ...] = ("chatdesign.estimation_cli", "chatdesign.live.cli",
                                       "chatdesign.chat.serve_cli", "chatdesign.chat.token_cli")
"""Modules that each add one subcommand, in the order ``--help`` lists them."""


def argument_type(parse: Callable[[str], float]) -> Callable[[str], float]:
    """Wrap a ``chatdesign.units`` parser so argparse shows its error message, not a generic one."""

    def convert(text: str) -> float:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("the value ")) from None

    convert.__name__ = parse.__name__
    return convert


def number_type(
    *, minimum: float | None = None, maximum: float | None = None, positive: bool = False, example: str = "40"
) -> Callable[[str], float]:
    """An argparse ``type`` for a plain number within limits, checked by :func:`chatdesign.checks.check_number`.

    argparse prefixes the message with the flag (``argument --receivers: must be at least 1,
    got 0``), so the reader sees which flag was wrong, not an internal parameter name.
    """

    def parse(text: str) -> float:
        try:
            value = float(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise ValueError(f"cannot read {text!r} as a number, e.g. {example!r}") from None
        shown = int(value) if value.is_integer() else value  # "got 0", as typed, not "got 0.0"
        return check_number(shown, "the value", minimum=minimum, maximum=maximum, positive=positive)

    convert = argument_type(parse)
    convert.__name__ = "number"
    return convert


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m chatdesign",
        description="chatdesign: system-design calculators and simulations from the book.",
    )
    parser.add_argument("--version", action="version", version=f"chatdesign {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2 for usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return code
