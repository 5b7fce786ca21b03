"""Errors that archcalc raises for bad input.

Library code raises these; only the CLI prints them (one line each) and picks the exit code.
A message reads like a compiler's: ``FILE:LINE:COL: message``, with line and column where the
problem has a place in a file.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Position:
    """A place in a file: 1-based line and column; either may be unknown."""

    file: str
    line: Optional[int] = None
    col: Optional[int] = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class ArchcalcError(Exception):
    """Bad input from the user: a spec, an option, a data file. Exit code 2 at the CLI."""

    def __init__(self, message: str, pos: Optional[Position] = None):
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        """One line, whatever the message quotes: a user's key may hold a newline or a
        terminal escape, shown as ``\\n`` or ``\\x1b`` (:func:`printable`)."""
        return printable(f"{self.pos}: {self.message}" if self.pos else self.message)


class SpecError(ArchcalcError):
    """A spec that cannot be read, parsed or built."""


class DataError(ArchcalcError):
    """A data set that is missing, truncated, foreign or unsafe."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` — did you mean 'x'?`` for the nearest choice, or an empty string."""
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{near[0]}'?" if near else ""


# C0 controls, DEL, C1 controls, and the bidirectional overrides that reorder what a terminal
# shows: in a user's text (a key, a name, a description) they would act on the terminal (a
# key "\x1b[2J" clears the screen) or break a line-based format, so they are shown instead.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(match: "re.Match[str]") -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``,
    ``\\n``, ``\\u202e``): what a renderer or an error line does with text a user wrote."""
    return _CONTROLS.sub(_shown, text)
