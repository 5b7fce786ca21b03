"""Numeric expressions in specs (``out: "cin * expand"``), evaluated exactly in rationals.

A spec may write a numeric argument as an expression over names: block arguments, spec
settings, and ``cin``, ``hin``, ``win`` (the channels, height and width of the input at that
point). The language is small on purpose: decimal numbers, names, ``+ - * / // %``, unary
``+ -``, parentheses, and calls of ``min``, ``max``, ``round``, ``ceil``, ``floor`` and
``make_divisible``. Everything else is refused with a line that names what is not allowed.

Why rationals: a width multiplier of 0.75 must give 24 channels from 32, not 23.999999999999996;
``0.1 + 0.2`` is exactly 3/10. A decimal is read from its text (``0.75`` is 3/4), never through
a float, and an integral result is a plain int, so ``out: "32 * 0.75"`` is ``out: 24``. A result
that is not whole stays a Fraction, and the argument checkers refuse it where a whole number is
needed, asking for an explicit ``round``, ``ceil``, ``floor`` or ``//``.

Why Python's own parser (``ast.parse(text, mode="eval")``) and not a hand-written one: it gives
precedence, associativity and the column of a syntax error for free, and each node carries its
source span, so an error can quote the sub-expression that failed. It is used only to *parse*:
nothing is compiled or run. The tree is then checked against a whitelist (node types, operators,
the six functions, plain decimal literals) before anything is evaluated, and evaluated by a
walk over that whitelist. What Python's parser does beyond this language is kept out before it
runs: the text is at most 1,000 printable ASCII characters (no unicode look-alike names that
Python would normalize, no comments, no line continuations); nesting beyond 100 levels is
refused (and the parser's own RecursionError or MemoryError with it; ``1+1+...+1``
counts every ``+``, since the tree nests left); and every value, literals
included, must fit in 100 digits of numerator and denominator, so ``9*9*9*...`` or ``1e999999``
are refused at once instead of growing without bound.
"""
from __future__ import annotations

import ast
import math
import re
import warnings
from fractions import Fraction
from typing import Callable, Dict, List, Mapping, Tuple, Union

from archcalc.errors import Position, SpecError, did_you_mean

Value = Union[int, Fraction]

MAX_TEXT = 1_000        # characters of an expression
MAX_DEPTH = 100         # operators and calls inside one another (a + b + c is two deep)
MAX_DIGITS = 100        # of any value's numerator and denominator
_BOUND = 10 ** MAX_DIGITS
_FEW_NAMES = 12         # an unknown name's message lists the names when there are at most this many

# What stays text or a plain name lookup: one bare identifier ('same', 'relu', 'width').
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PRINTABLE = re.compile(r"[ -~\t\n\r]")
# printable, but not this language: Python would read a comment or a line continuation
_REFUSED_CHARS = {"#": " (no comments)", "\\": ""}
_DECIMAL = re.compile(r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?:[eE](?P<exp>[+-]?[0-9]+))?")
# Python's syntax messages worth passing on: they say which bracket is wrong.
_USEFUL_SYNTAX = ("never closed", "unmatched", "does not match", "too many nested")


def is_expression(text: str) -> bool:
    """True when a YAML string is meant as an expression: anything that is not a single bare
    identifier (identifiers stay text or name lookups: 'same', 'relu', 'width'). '0.75',
    'cin*2', '(a)', 'max(a, 1)' are expressions."""
    return IDENTIFIER.fullmatch(text) is None


def exact(value) -> Value:
    """``value`` as an exact number: an int stays an int, a float is read from its shortest
    text (0.75 -> 3/4, as written, not the binary float's 0.75000000000000000001...), a
    Fraction is an int when it is whole. TypeError for anything else (booleans included),
    ValueError for a float that is not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        value = Fraction(str(value))
    return value.numerator if value.denominator == 1 else value


def evaluate(text: str, names: Mapping[str, Union[int, Fraction, float, str]],
             pos: Position) -> Value:
    """The exact value of expression ``text`` over ``names``. Raises SpecError(message, pos)
    on any problem, the message naming the expression and what failed."""
    return _Expression(text, names, pos).value()


# --- functions ---------------------------------------------------------------------------

def _make_divisible(ev: "_Expression", node: ast.Call, args: List[Value]) -> Value:
    """torchvision's ``_make_divisible`` (MobileNetV2, EfficientNet), in exact arithmetic:
    ``v`` rounded to the nearest multiple of ``divisor`` (half up; ``int`` truncates toward
    zero), at least ``min_value``, and one divisor more if that lost more than 10% of ``v``."""
    v, divisor = args[0], args[1]
    if not isinstance(divisor, int) or divisor <= 0:
        ev.fail(f"make_divisible's divisor must be a positive whole number, got "
                f"{_shown(divisor)} in '{ev.segment(node)}'")
    min_value = args[2] if len(args) == 3 else divisor
    if not isinstance(min_value, int):
        ev.fail(f"make_divisible's min_value must be a whole number, got "
                f"{_shown(min_value)} in '{ev.segment(node)}'")
    new_v = max(min_value, int(v + Fraction(divisor, 2)) // divisor * divisor)
    if new_v < Fraction(9, 10) * v:
        new_v += divisor
    return new_v


# name -> (fewest arguments, most arguments or None, how to call it, implementation)
_FUNCTIONS: Dict[str, Tuple[int, Union[int, None], str, Callable]] = {
    "min": (1, None, "min(a, b, ...)", lambda ev, node, args: min(args)),
    "max": (1, None, "max(a, b, ...)", lambda ev, node, args: max(args)),
    "round": (1, 1, "round(x)", lambda ev, node, args: round(args[0])),
    "ceil": (1, 1, "ceil(x)", lambda ev, node, args: math.ceil(args[0])),
    "floor": (1, 1, "floor(x)", lambda ev, node, args: math.floor(args[0])),
    "make_divisible": (2, 3, "make_divisible(value, divisor[, min_value])", _make_divisible),
}

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%"}
_REFUSED_BINARY = {ast.Pow: "the power operator '**'", ast.MatMult: "the operator '@'",
                   ast.LShift: "the operator '<<'", ast.RShift: "the operator '>>'",
                   ast.BitAnd: "the operator '&'", ast.BitOr: "the operator '|'",
                   ast.BitXor: "the operator '^'"}
_REFUSED_UNARY = {ast.Not: "'not'", ast.Invert: "the operator '~'"}
# node type -> the refusal
_REFUSED_NODES = {
    ast.Compare: "comparisons are", ast.BoolOp: "'and' and 'or' are",  # one node type for both
    ast.IfExp: "conditional expressions ('if ... else') are",
    ast.Attribute: "attributes ('.name') are", ast.Subscript: "subscripts ('[...]') are",
    ast.Lambda: "lambda is", ast.List: "lists are",
    ast.Tuple: "tuples (values separated by commas) are", ast.Set: "sets are",
    ast.Dict: "dicts are", ast.ListComp: "comprehensions are", ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are", ast.GeneratorExp: "comprehensions are",
    ast.JoinedStr: "text (f-strings) is", ast.NamedExpr: "assignments (':=') are",
    ast.Starred: "unpacking ('*') is", ast.Await: "'await' is", ast.Slice: "slices are",
}


def _shown(value) -> str:
    """A number as a message shows it: 75/2 (= 37.5)."""
    if isinstance(value, Fraction):
        return f"{value} (= {float(value):.6g})"
    return str(value)


def _quoted(text: str, most: int = 80) -> str:
    """``text`` for a message: a whole expression of up to 1,000 characters would drown the
    line; the message's position points at it in the spec."""
    return text if len(text) <= most else text[:most] + "..."


class _Expression:
    """One expression being checked and evaluated: its text, the names it may use, where the
    spec wrote it."""

    def __init__(self, text: str, names: Mapping[str, object], pos: Position):
        self.text, self.names, self.pos = text, names, pos
        # Whitespace is whitespace (YAML may fold a long expression over lines): one space
        # each, so that columns stay the text's; leading spaces would be an "indent" to Python.
        spaced = re.sub(r"[\t\n\r]", " ", text)
        self.source = spaced.lstrip()
        self.lead = len(spaced) - len(self.source)

    def fail(self, what: str) -> None:
        raise SpecError(f"expression '{_quoted(self.text)}': {what}", self.pos)

    def span(self, node: ast.AST) -> str:
        """The text of ``node``: one line of ASCII, so columns are character offsets."""
        return self.source[node.col_offset:node.end_col_offset]

    def segment(self, node: ast.AST) -> str:
        """The text of ``node`` as a message quotes it."""
        return _quoted(self.span(node))

    # --- reading ------------------------------------------------------------------------
    def value(self) -> Value:
        if not isinstance(self.text, str):
            raise SpecError(f"an expression must be text, got {self.text!r}", self.pos)
        if len(self.text) > MAX_TEXT:
            raise SpecError(f"expression '{_quoted(self.text)}': longer than {MAX_TEXT:,} "
                            f"characters ({len(self.text):,})", self.pos)
        for i, ch in enumerate(self.text):
            if not _PRINTABLE.match(ch) or ch in _REFUSED_CHARS:
                self.fail(f"the character '{ch}' at column {i + 1} is not allowed"
                          f"{_REFUSED_CHARS.get(ch, '')}")
        if not self.source.strip():
            self.fail("empty")
        tree = self._parse()
        self._check(tree.body)
        return exact(self._eval(tree.body))

    def _parse(self) -> ast.Expression:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # Python's own warnings about its literals
                return ast.parse(self.source, mode="eval")
        except SyntaxError as e:
            offset = e.offset if e.lineno == 1 and e.offset else len(self.source) + 1
            why = f": {e.msg}" if any(m in e.msg for m in _USEFUL_SYNTAX) else ""
            self.fail(f"not a valid expression at column {offset + self.lead}{why}")
        except (RecursionError, MemoryError):
            self.fail(f"more than {MAX_DEPTH} operations deep")
        raise AssertionError("unreachable")

    # --- the whitelist, checked before anything is evaluated -----------------------------
    def _check(self, root: ast.AST) -> None:
        """Refuse the first (leftmost, outermost) node outside the language. Iterative, so
        that a deep tree cannot exhaust the stack here; the walk in _eval is then at most
        MAX_DEPTH deep."""
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(f"more than {MAX_DEPTH} operations deep")
            children = self._children(node)
            stack.extend((child, depth + 1) for child in reversed(children))

    def _children(self, node: ast.AST) -> List[ast.AST]:
        seg = self.segment(node) if hasattr(node, "col_offset") else ""
        if isinstance(node, ast.Constant):
            self._literal(node)
            return []
        if isinstance(node, ast.Name):
            return []
        if isinstance(node, ast.UnaryOp):
            if type(node.op) in _REFUSED_UNARY:
                self.fail(f"{_REFUSED_UNARY[type(node.op)]} is not allowed in '{seg}'")
            return [node.operand]
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                what = _REFUSED_BINARY.get(type(node.op), "this operator")
                self.fail(f"{what} is not allowed in '{seg}'")
            return [node.left, node.right]
        if isinstance(node, ast.Call):
            self._call_shape(node, seg)
            return list(node.args)
        if type(node) in _REFUSED_NODES:
            self.fail(f"{_REFUSED_NODES[type(node)]} not allowed in '{seg}'")
        self.fail(f"'{seg or type(node).__name__}' is not allowed")
        return []

    def _call_shape(self, node: ast.Call, seg: str) -> None:
        functions = ", ".join(_FUNCTIONS)
        if not isinstance(node.func, ast.Name):
            self.fail(f"only the functions {functions} can be called, not "
                      f"'{self.segment(node.func)}' in '{seg}'")
        name = node.func.id
        if name not in _FUNCTIONS:
            hint = (f"'{name}' is a name, not a function: write '*' to multiply"
                    if name in self.names else f"the functions are {functions}")
            self.fail(f"unknown function '{name}'{did_you_mean(name, _FUNCTIONS)} ({hint})")
        if any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            self.fail(f"unpacking ('*') is not allowed in '{seg}'")
        if node.keywords:
            self.fail(f"keyword arguments are not allowed in '{seg}': write "
                      f"{_FUNCTIONS[name][2]}")
        least, most, usage, _ = _FUNCTIONS[name]
        if not least <= len(node.args) <= (most if most is not None else len(node.args)):
            self.fail(f"'{seg}' has {len(node.args)} argument"
                      f"{'' if len(node.args) == 1 else 's'}: write {usage}")

    def _literal(self, node: ast.Constant) -> None:
        seg, value = self.segment(node), node.value
        if isinstance(value, bool):
            self.fail(f"booleans are not allowed in '{seg}'")
        if isinstance(value, str):
            self.fail(f"text ({seg}) is not allowed: names are written without quotes")
        if value is None or value is Ellipsis:
            self.fail(f"'{seg}' is not allowed")
        if not isinstance(value, (int, float)) or not _DECIMAL.fullmatch(self.span(node)):
            self.fail(f"the number '{seg}' is not allowed: write decimal digits with an "
                      "optional '.' and exponent ('32', '0.75', '1e-3')")

    # --- evaluation ---------------------------------------------------------------------
    def _eval(self, node: ast.AST) -> Value:
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand)
            return self._fit(-v if isinstance(node.op, ast.USub) else v, node)
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left), self._eval(node.right)
            return self._fit(self._binary(node, left, right), node)
        if isinstance(node, ast.Call):
            args = [self._eval(a) for a in node.args]
            return self._fit(_FUNCTIONS[node.func.id][3](self, node, args), node)
        raise AssertionError(f"unchecked node {type(node).__name__}")  # _check refused it

    def _binary(self, node: ast.BinOp, left: Value, right: Value) -> Value:
        op = type(node.op)
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if right == 0:
            self.fail(f"division by zero in '{self.segment(node)}'")
        if op is ast.Div:
            return Fraction(left) / right
        if op is ast.FloorDiv:
            return left // right
        return left % right

    def _number(self, node: ast.Constant) -> Value:
        """A decimal literal from its text: '0.75' is 3/4, never the float 0.75."""
        seg = self.segment(node)
        m = _DECIMAL.fullmatch(self.span(node))
        digits = (m["int"] or "") + (m["frac"] or "")
        mantissa = int(digits) if digits else 0
        if mantissa == 0:
            return 0
        scale = int(m["exp"] or 0) - len(m["frac"] or "")
        # refuse before computing 10**scale: the mantissa has at most MAX_TEXT digits
        if scale >= MAX_DIGITS:
            self.fail(f"'{seg}' is too large (more than {MAX_DIGITS} digits)")
        if scale < -(MAX_DIGITS + MAX_TEXT):
            self.fail(f"'{seg}' is too precise (more than {MAX_DIGITS} digits)")
        value = mantissa * 10 ** scale if scale >= 0 else Fraction(mantissa, 10 ** -scale)
        return self._fit(value, node)

    def _name(self, name: str) -> Value:
        if name not in self.names:
            hint = did_you_mean(name, self.names)
            if name in _FUNCTIONS:
                hint = f" ('{name}' is a function: write {_FUNCTIONS[name][2]})"
            elif not self.names:
                hint += " (no names are defined here)"
            elif len(self.names) <= _FEW_NAMES:
                hint += f" (the names here are {', '.join(sorted(self.names))})"
            self.fail(f"unknown name '{name}'{hint}")
        value = self.names[name]
        if isinstance(value, str):
            self.fail(f"'{name}' is text ('{_quoted(value)}'), not a number")
        if isinstance(value, bool):
            self.fail(f"'{name}' is a boolean ({str(value).lower()}), not a number")
        try:
            number = exact(value)
        except (TypeError, ValueError):
            self.fail(f"'{name}' is not a finite number ({_quoted(repr(value))})")
        if abs(number.numerator) >= _BOUND or number.denominator >= _BOUND:
            self.fail(f"'{name}' is too large (more than {MAX_DIGITS} digits)")
        return number

    def _fit(self, value, node: ast.AST) -> Value:
        """``value`` as an exact number, refused when its numerator or denominator is beyond
        MAX_DIGITS digits: every step is bounded, so no expression grows without limit."""
        value = exact(value)
        if abs(value.numerator) >= _BOUND:
            self.fail(f"'{self.segment(node)}' is too large (more than {MAX_DIGITS} digits)")
        if value.denominator >= _BOUND:
            self.fail(f"'{self.segment(node)}' is too precise (more than {MAX_DIGITS} digits)")
        return value
