"""archcalc.core.expr: spec expressions, evaluated exactly, refused in one line when wrong.

Expected values come from Python's own Fraction arithmetic written out in the test, from
torchvision's ``_make_divisible`` copied verbatim (floats) as the oracle, and from hand
arithmetic in comments; never from the evaluator's output.
"""
import math
import time
from fractions import Fraction as F

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.core.expr import evaluate, exact, is_expression
from archcalc.core.ops.base import ArgError, padding, pair, positive_int, positive_number, probability
from archcalc.errors import Position, SpecError

POS = Position("net.yaml", 7, 12)
NAMES = {"cin": 64, "hin": 28, "win": 28, "k": 3, "expand": 6, "width": 0.75, "depth": F(6, 5),
         "act": "relu", "flag": True}


def ev(text, names=NAMES):
    return evaluate(text, names, POS)


def error(text, names=NAMES):
    with pytest.raises(SpecError) as info:
        ev(text, names)
    assert info.value.pos == POS
    assert "\n" not in str(info.value)
    return info.value.message


# --- exactness -----------------------------------------------------------------------------

def test_decimals_are_exact_rationals_read_from_their_text():
    assert ev("0.1 + 0.2") == F(3, 10)        # not 0.30000000000000004
    assert ev("0.1 + 0.2 - 0.3") == 0
    assert ev("1e-3") == F(1, 1000) and ev("1E3") == 1000
    assert ev(".5") == F(1, 2) and ev("1.") == 1 and ev("2.50") == F(5, 2)
    # more digits than a float holds: every one counts
    assert ev("0.12345678901234567890123") == F(12345678901234567890123, 10**23)
    assert ev("10000000000000000000001 - 1e22") == 1


def test_integral_results_are_plain_ints():
    for text, expected in [("0.75 * 32", 24), ("32 * width", 24), ("cin / 2", 32),
                           ("depth * 5", 6), ("0.5 + 0.5", 1), ("ceil(7 / 2)", 4)]:
        value = ev(text)
        assert value == expected and type(value) is int, text


@pytest.mark.parametrize("text,expected", [
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("10 - 2 - 3", 5), ("2 / 4 / 2", F(1, 4)),
    ("-2 * -3", 6), ("+5", 5), ("--5", 5), ("-cin", -64), ("cin * expand", 384),
    ("-7 // 2", -4), ("7 // 2", 3), ("7 % 3", 1), ("-7 % 3", 2), ("7 % -3", -2),
    ("7.5 // 2", 3), ("7.5 % 2", F(3, 2)), ("cin / 3", F(64, 3)), ("(cin)", 64),
    ("min(3, 1/2, 2)", F(1, 2)), ("max(1, 2.5)", F(5, 2)), ("min(7)", 7), ("max(hin, win, k)", 28),
    # round is Python's: half to even, exact (2.675 is 107/40 exactly, so it rounds up)
    ("round(2.5)", 2), ("round(3.5)", 4), ("round(-2.5)", -2), ("round(2.675)", 3),
    ("round(5 / 2 + 1e-90)", 3), ("round(cin / 3)", 21),
    ("ceil(cin / 3)", 22), ("floor(cin / 3)", 21), ("ceil(-7 / 2)", -3), ("floor(-7 / 2)", -4),
    ("ceil(3 * depth)", 4), ("floor(3 * depth)", 3), ("ceil(6)", 6),
    ("cin\n  * 2", 128), ("  cin * 2  ", 128), ("\tcin", 64),
])
def test_arithmetic_matches_python_on_exact_numbers(text, expected):
    value = ev(text)
    assert value == expected and type(value) is type(expected)


def test_name_values_go_through_exact():
    names = {"f": 0.1, "g": 1e-05, "q": F(6, 3), "i": 5}
    assert ev("f * 3", names) == F(3, 10)
    assert ev("g", names) == F(1, 100000)
    assert type(ev("q", names)) is int and ev("q", names) == 2


def test_exact():
    assert exact(3) == 3 and type(exact(3)) is int
    assert exact(0.75) == F(3, 4)
    assert exact(0.1) == F(1, 10)              # as written, not the binary float's value
    assert exact(2.0) == 2 and type(exact(2.0)) is int
    assert exact(F(8, 4)) == 2 and type(exact(F(8, 4))) is int
    assert exact(F(1, 3)) == F(1, 3)
    for bad in (True, "1", None, [1]):
        with pytest.raises(TypeError):
            exact(bad)
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            exact(bad)


# --- make_divisible against torchvision --------------------------------------------------------

def torchvision_make_divisible(v, divisor, min_value=None):
    """torchvision.models._utils._make_divisible, verbatim: the oracle, in floats."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("text,expected", [
    ("make_divisible(32 * 0.75, 8)", 24),    # 24 + 4 = 28 -> 24; 24 >= 21.6
    ("make_divisible(16 * 0.35, 8)", 8),     # 5.6 + 4 = 9.6 -> 9 // 8 * 8 = 8; 8 >= 5.04
    ("make_divisible(32 * 0.35, 8)", 16),    # 11.2 + 4 -> 15 -> 8; 8 < 10.08, so 8 + 8
    ("make_divisible(1280 * 1.4, 8)", 1792),  # 1792 + 4 -> 1792: MobileNetV2 1.4's last layer
    ("make_divisible(96 * 0.35, 8)", 32),    # 33.6 + 4 -> 37 -> 32; 32 >= 30.24
    ("make_divisible(320 * 0.35, 8)", 112),  # 112 + 4 -> 116 -> 112
    ("make_divisible(160 * 0.75, 8)", 120),  # 120 + 4 -> 124 -> 120
    ("make_divisible(3, 8)", 8),             # 3 + 4 -> 7 -> 0; at least the divisor
    ("make_divisible(3, 8, 1)", 9),          # 7 -> 0 -> max(1, 0) = 1; 1 < 2.7, so 1 + 8
    ("make_divisible(-20, 8)", 8),           # int() truncates: -16 -> -16 -> max(8, -16)
])
def test_make_divisible_hand_worked(text, expected):
    assert ev(text) == expected


def test_make_divisible_matches_torchvision_over_mobilenet_widths():
    channels = [3, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 112, 160, 192, 320, 576, 960, 1280]
    multipliers = [0.1, 0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 1.5, 2.0]
    for c in channels:
        for m in multipliers:
            for d in (4, 8, 16):
                got = ev(f"make_divisible({c} * {m}, {d})")
                assert got == torchvision_make_divisible(c * m, d), (c, m, d)
                assert type(got) is int
            assert ev(f"make_divisible(c * m, 8, 16)", {"c": c, "m": m}) == \
                torchvision_make_divisible(c * m, 8, 16)


def test_make_divisible_is_exact_where_torchvision_floats_fall_short():
    # 100 * 1.16 is 116 exactly: 116 + 4 = 120, 120 // 8 * 8 = 120, 120 >= 104.4.
    # In floats it is 115.99999999999999, which truncates to 119 and rounds down to 112.
    assert ev("make_divisible(100 * 1.16, 8)") == 120
    assert torchvision_make_divisible(100 * 1.16, 8) == 112


# --- is_expression ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["same", "relu", "width", "cin", "_x", "n3x3_reduce", "True",
                                  "None", "lambda", "A1"])
def test_identifiers_are_not_expressions(text):
    assert not is_expression(text)


@pytest.mark.parametrize("text", ["0.75", "32", "cin*2", "(a)", "max(a, 1)", " width", "width ",
                                  "a-b", "3x3", "", "-1", "a.b", "é"])
def test_everything_else_is_an_expression(text):
    assert is_expression(text)


# --- error messages, exact text --------------------------------------------------------------

FUNCS = "min, max, round, ceil, floor, make_divisible"


@pytest.mark.parametrize("text,message", [
    ("cin / (k - 3)", "expression 'cin / (k - 3)': division by zero in 'cin / (k - 3)'"),
    ("1 + cin // (k - 3)", "expression '1 + cin // (k - 3)': division by zero in 'cin // (k - 3)'"),
    ("cin % 0", "expression 'cin % 0': division by zero in 'cin % 0'"),
    ("widht * 2", "expression 'widht * 2': unknown name 'widht' — did you mean 'width'? "
                  "(the names here are act, cin, depth, expand, flag, hin, k, width, win)"),
    ("cin *", "expression 'cin *': not a valid expression at column 6"),
    ("  cin *", "expression '  cin *': not a valid expression at column 8"),
    ("1 +* 2", "expression '1 +* 2': not a valid expression at column 4"),
    ("max(1, 2", "expression 'max(1, 2': not a valid expression at column 4: '(' was never closed"),
    ("(1]", "expression '(1]': not a valid expression at column 3: "
            "closing parenthesis ']' does not match opening parenthesis '('"),
    ("", "expression '': empty"),
    ("act * 2", "expression 'act * 2': 'act' is text ('relu'), not a number"),
    ("flag + 1", "expression 'flag + 1': 'flag' is a boolean (true), not a number"),
    ("min + 1", "expression 'min + 1': unknown name 'min' ('min' is a function: write "
                "min(a, b, ...))"),
    ("pow(2, 3)", f"expression 'pow(2, 3)': unknown function 'pow' (the functions are {FUNCS})"),
    ("cin(2)", "expression 'cin(2)': unknown function 'cin' — did you mean 'min'? ('cin' is a "
               "name, not a function: write '*' to multiply)"),
    ("round(7, 2)", "expression 'round(7, 2)': 'round(7, 2)' has 2 arguments: write round(x)"),
    ("min()", "expression 'min()': 'min()' has 0 arguments: write min(a, b, ...)"),
    ("make_divisible(1)", "expression 'make_divisible(1)': 'make_divisible(1)' has 1 argument: "
                          "write make_divisible(value, divisor[, min_value])"),
    ("make_divisible(cin, 2.5)", "expression 'make_divisible(cin, 2.5)': make_divisible's "
     "divisor must be a positive whole number, got 5/2 (= 2.5) in 'make_divisible(cin, 2.5)'"),
    ("make_divisible(cin, 0)", "expression 'make_divisible(cin, 0)': make_divisible's divisor "
     "must be a positive whole number, got 0 in 'make_divisible(cin, 0)'"),
    ("make_divisible(cin, 8, 1/2)", "expression 'make_divisible(cin, 8, 1/2)': make_divisible's "
     "min_value must be a whole number, got 1/2 (= 0.5) in 'make_divisible(cin, 8, 1/2)'"),
    ("max(cin=1)", "expression 'max(cin=1)': keyword arguments are not allowed in 'max(cin=1)': "
                   "write max(a, b, ...)"),
    ("1e100", "expression '1e100': '1e100' is too large (more than 100 digits)"),
    ("1e-100", "expression '1e-100': '1e-100' is too precise (more than 100 digits)"),
    ("a # b", "expression 'a # b': the character '#' at column 3 is not allowed (no comments)"),
    ("cin ** 2", "expression 'cin ** 2': the power operator '**' is not allowed in 'cin ** 2'"),
])
def test_error_messages(text, message):
    assert error(text) == message


def test_unknown_name_without_names_or_with_many():
    assert error("x", {}) == "expression 'x': unknown name 'x' (no names are defined here)"
    many = {f"n{i}": i for i in range(13)}
    assert error("n00", many) == "expression 'n00': unknown name 'n00' — did you mean 'n0'?"
    assert error("zzz", many) == "expression 'zzz': unknown name 'zzz'"


def test_names_that_are_not_finite_numbers_or_too_large():
    assert error("a", {"a": math.nan}) == "expression 'a': 'a' is not a finite number (nan)"
    assert error("a", {"a": [3, 5]}) == "expression 'a': 'a' is not a finite number ([3, 5])"
    assert error("a", {"a": 10**100}) == \
        "expression 'a': 'a' is too large (more than 100 digits)"


def test_values_grow_only_to_100_digits():
    assert ev("1e99") == 10**99
    assert ev("1e99 * 9") == 9 * 10**99
    assert error("1e99 * 10") == "expression '1e99 * 10': '1e99 * 10' is too large " \
                                 "(more than 100 digits)"
    assert error("1 / 1e99 / 10") == "expression '1 / 1e99 / 10': '1 / 1e99 / 10' is too " \
                                     "precise (more than 100 digits)"
    assert error("1e999999999") == "expression '1e999999999': '1e999999999' is too large " \
                                   "(more than 100 digits)"
    assert ev("0e999999999") == 0


def test_long_texts_are_quoted_shortened():
    text = "1 + " * 250
    assert error(text + "x") == f"expression '{text[:80]}...': longer than 1,000 characters (1,001)"
    deep = "1+" * 101 + "1"
    assert error(deep) == f"expression '{deep[:80]}...': more than 100 operations deep"


def test_the_error_line_has_the_values_position_and_shows_controls_escaped():
    with pytest.raises(SpecError) as info:
        ev("a\x1b[2J")
    assert str(info.value) == "net.yaml:7:12: expression 'a\\x1b[2J': the character '\\x1b' " \
                              "at column 2 is not allowed"


# --- every construct outside the language is refused, naming it ----------------------------

@pytest.mark.parametrize("text,fragment", [
    ("cin ** 2", "the power operator '**' is not allowed in 'cin ** 2'"),
    ("cin << 1", "the operator '<<' is not allowed"),
    ("cin >> 1", "the operator '>>' is not allowed"),
    ("cin & 1", "the operator '&' is not allowed"),
    ("cin | 1", "the operator '|' is not allowed"),
    ("cin ^ 1", "the operator '^' is not allowed"),
    ("cin @ k", "the operator '@' is not allowed"),
    ("~cin", "the operator '~' is not allowed in '~cin'"),
    ("not cin", "'not' is not allowed in 'not cin'"),
    ("cin < 3", "comparisons are not allowed in 'cin < 3'"),
    ("cin and k", "'and' and 'or' are not allowed in 'cin and k'"),
    ("cin or k", "'and' and 'or' are not allowed in 'cin or k'"),
    ("cin if k else 1", "conditional expressions ('if ... else') are not allowed"),
    ("cin.real", "attributes ('.name') are not allowed in 'cin.real'"),
    ("cin.bit_length()", "only the functions"),
    ("cin[0]", "subscripts ('[...]') are not allowed in 'cin[0]'"),
    ("lambda: 1", "lambda is not allowed"),
    ("[1, 2]", "lists are not allowed"),
    ("1, 2", "tuples (values separated by commas) are not allowed"),
    ("{1}", "sets are not allowed"),
    ("{1: 2}", "dicts are not allowed"),
    ("[x for x in k]", "comprehensions are not allowed"),
    ("max(x for x in k)", "comprehensions are not allowed"),
    ("(x := 3)", "assignments (':=') are not allowed"),
    ("max(*k)", "unpacking ('*') is not allowed"),
    ("max(**k)", "unpacking ('*') is not allowed"),
    ("min(k, key=1)", "keyword arguments are not allowed"),
    ("'relu'", "text ('relu') is not allowed: names are written without quotes"),
    ('f"{cin}"', "text (f-strings) is not allowed"),
    ("b'1'", "the number"),
    ("True + 1", "booleans are not allowed in 'True'"),
    ("None", "'None' is not allowed"),
    ("...", "'...' is not allowed"),
    ("1j", "the number '1j' is not allowed: write decimal digits"),
    ("0x1f", "the number '0x1f' is not allowed"),
    ("0o17", "the number '0o17' is not allowed"),
    ("1_000", "the number '1_000' is not allowed"),
    ("010", "not a valid expression at column 1"),
    ("__import__('os')", "unknown function '__import__'"),
    ("eval('1')", "unknown function 'eval'"),
    ("(lambda: 1)()", "only the functions"),
    ("cin = 3", "not a valid expression"),
    ("yield 1", "not a valid expression"),
    ("await k", "'await' is not allowed"),
    ("a\\\n+ 1", "the character '\\' at column 2 is not allowed"),
    ("c\u0131n", "the character '\u0131' at column 2 is not allowed"),   # no look-alike names
    ("ｃin", "the character 'ｃ' at column 1 is not allowed"),   # Python would read 'cin'
])
def test_refused_constructs(text, fragment):
    message = error(text)
    assert message.startswith(f"expression '{text}': ") and fragment in message, message


# --- safety: nothing hangs, nothing raises but SpecError ---------------------------------------

@pytest.mark.parametrize("text", [
    "9*" * 499 + "9", "1e99*" * 99 + "1", "-" * 999 + "1", "(" * 250 + "1" + ")" * 250,
    "1+" * 499 + "1", "max(" * 150 + "1" + ")" * 150,
    "1" * 1000, "1e" + "9" * 998, "1e-" + "9" * 997, "0." + "0" * 997 + "1", "1/3*" * 199 + "1",
    "make_divisible(" * 60 + "1" + ", 8)" * 60, "[" * 500, "lambda " * 140 + ": 1", "x" * 10**6,
], ids=lambda text: f"{text[:10]}...({len(text)})")
def test_pathological_inputs_are_refused_quickly(text):
    start = time.perf_counter()
    with pytest.raises(SpecError):
        ev(text)
    assert time.perf_counter() - start < 0.5


def test_deep_parentheses_alone_are_no_operations():
    assert ev("(" * 150 + "cin" + ")" * 150) == 64
    assert ev("9*" * 60 + "9") == 9**61


# Text built from the language's own pieces reaches deeper than arbitrary characters do.
TOKENS = st.sampled_from(["cin", "k", "width", "act", "flag", "x", "0", "1", "3", "0.75", "1e99",
                          "1e-60", "+", "-", "*", "/", "//", "%", "**", "(", ")", ",", " ",
                          "min(", "max(", "round(", "ceil(", "floor(", "make_divisible(", "=",
                          "<", ".", "[", "]", "'", "lambda", "if", "not"])


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.lists(TOKENS, max_size=120).map("".join)))
def test_fuzz_only_spec_errors_and_quickly(text):
    try:
        value = ev(text)
    except SpecError as e:
        assert "\n" not in str(e) and e.pos == POS
        return
    assert type(value) is int or (type(value) is F and value.denominator != 1)
    assert abs(value.numerator) < 10**100 and value.denominator < 10**100


# --- the argument checkers take an expression's Fractions --------------------------------

ROUND_IT = "round it explicitly with round(), ceil(), floor() or //"


def test_whole_fractions_are_their_ints():
    assert positive_int(F(48, 2)) == 24 and type(positive_int(F(48, 2))) is int
    assert pair(F(3)) == (3, 3) and pair([F(6, 2), 2]) == (3, 2)
    assert padding(F(1)) == (1, 1) and padding([F(0), F(4, 2)]) == (0, 2)
    assert all(type(x) is int for x in pair([F(6, 2), F(2)]) + padding([F(0), F(4, 2)]))


@pytest.mark.parametrize("check,value,shown", [
    (positive_int, F(75, 2), "75/2 (= 37.5)"),
    (pair, F(3, 2), "3/2 (= 1.5)"),
    (pair, [3, F(1, 3)], "1/3 (= 0.333333)"),
    (padding, F(-1, 2), "-1/2 (= -0.5)"),
    (padding, [F(5, 4), 1], "5/4 (= 1.25)"),
])
def test_fractions_that_are_not_whole_are_refused_with_how_to_round(check, value, shown):
    with pytest.raises(ArgError) as info:
        check(value)
    assert str(info.value) == f"must be a whole number, got {shown}; {ROUND_IT}"


def test_number_checkers_take_fractions_as_floats():
    assert probability(F(1, 2)) == 0.5 and type(probability(F(1, 2))) is float
    assert probability(F(0)) == 0.0
    assert positive_number(F(3, 4)) == 0.75 and type(positive_number(F(3, 4))) is float
    with pytest.raises(ArgError, match=r"got 3/2 \(= 1\.5\)$"):
        probability(F(3, 2))
    with pytest.raises(ArgError, match=r"got -1/3 \(= -0\.333333\)$"):
        positive_number(F(-1, 3))
    with pytest.raises(ArgError, match="must be a positive number"):
        positive_number(F(10**400))


def test_checkers_still_refuse_booleans_and_negative_whole_fractions():
    for check in (positive_int, pair, padding, probability, positive_number):
        with pytest.raises(ArgError):
            check(True)
    with pytest.raises(ArgError, match=r"must be a positive integer, got -3$"):
        positive_int(F(-3))
