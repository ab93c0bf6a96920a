"""``calculate_output`` formulas: OpenAI's arithmetic, evaluated safely, with clear errors."""

from __future__ import annotations

import math
import pickle
import time

import pytest

from pytest_modelopt.graders.engines.formula import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    Formula,
    FormulaError,
    evaluate,
)


def test_openais_documented_example() -> None:
    formula = Formula("(name + email) / 2", allowed_names=["name", "email"])
    assert formula.names == frozenset({"name", "email"})
    assert formula.source == "(name + email) / 2"
    assert formula.evaluate({"name": 1.0, "email": 0.5}) == 0.75
    assert formula.evaluate({"name": 0, "email": 0, "unused": 7}) == 0.0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2 + 3 * 4 ^ 2", 2 + 3 * 16),  # ^ binds tighter than * and +
        ("(2 + 3) * 4", 20),
        ("2 ^ 3 ^ 2", 512),  # right associative
        ("(2 ^ 3) ^ 2", 64),
        ("-2 ^ 2", -4),  # as in maths: -(2^2)
        ("(-2) ^ 2", 4),
        ("2 ^ -1", 0.5),
        ("- -3", 3),
        ("-a + +b", 1),
        ("10 - 4 - 3", 3),  # left associative
        ("8 / 4 / 2", 1),
        ("7 / 2", 3.5),  # true division, even of ints
        ("1 + 0.5", 1.5),
        ("1_000 * 1e-3", 1.0),
        ("(-8) ^ 2.0", 64),  # negative base, integral exponent
        ("  a +\n  b  ", 3),  # leading whitespace and newlines inside the formula
    ],
)
def test_arithmetic_and_precedence(source: str, expected: float) -> None:
    result = evaluate(source, {"a": 1, "b": 2})
    assert result == pytest.approx(expected)
    assert type(result) is float


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("min(a, b, 0.25)", 0.25),
        ("min(b)", 2),
        ("max(a, b)", 2),
        ("max(-a)", -1),
        ("abs(a - b)", 1),
        ("floor(2.7)", 2),
        ("floor(-2.5)", -3),
        ("ceil(2.1)", 3),
        ("ceil(-2.5)", -2),
        ("exp(0)", 1),
        ("exp(1)", math.e),
        ("sqrt(16)", 4),
        ("sqrt(0)", 0),
        ("log(1)", 0),
        ("log(exp(2))", 2),  # natural log
        ("log(8) / log(2)", 3),  # another base, the documented way
        ("max(min(a, b), sqrt(abs(-9)) / 3, floor(ceil(0.2)))", 1),
        ("0.7 * max(a, b) ^ 2 + 0.3 * min(a, b)", 0.7 * 4 + 0.3),
    ],
)
def test_functions(source: str, expected: float) -> None:
    assert evaluate(source, {"a": 1, "b": 2}) == pytest.approx(expected)


def test_functions_are_the_documented_ones() -> None:
    assert set(FUNCTIONS) == {"min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log"}
    assert FUNCTIONS["max"](1, 3.5, 2) == 3.5
    assert FUNCTIONS["floor"](2.5) == 2.0
    with pytest.raises(TypeError, match="at least 1 argument"):
        FUNCTIONS["min"]()
    with pytest.raises(TypeError):
        FUNCTIONS["pow"] = pow  # type: ignore[index] # read-only: no adding functions at runtime


def test_names_are_the_variables_not_the_functions() -> None:
    formula = Formula("max(a, b) + log(a) + a")
    assert formula.names == frozenset({"a", "b"})
    assert repr(formula) == "Formula('max(a, b) + log(a) + a')"
    # A grader may be called like a function: as a bare name it is a variable.
    assert evaluate("max + 1", {"max": 2}) == 3


def test_values_may_be_ints_or_other_real_numbers() -> None:
    from fractions import Fraction

    assert evaluate("a / b", {"a": 1, "b": 4}) == 0.25
    assert evaluate("a * 2", {"a": Fraction(1, 4)}) == 0.5  # type: ignore[dict-item]


def assert_error(source: str, message: str, values: dict[str, float] | None = None) -> None:
    """The formula fails (when defined, or with ``values`` when evaluated) with ``message``."""
    with pytest.raises(FormulaError) as info:
        Formula(source).evaluate(values or {"a": 1.0, "b": 2.0})
    assert message in str(info.value)
    assert str(info.value).startswith("calculate_output ")


def test_unknown_name_fails_at_definition_with_allowed_names() -> None:
    with pytest.raises(FormulaError) as info:
        Formula("(a + b) / 2", allowed_names=["a", "c"])
    assert str(info.value) == "calculate_output '(a + b) / 2': unknown name 'b' (defined: a, c)"
    assert info.value.source == "(a + b) / 2"
    assert info.value.reason == "unknown name 'b' (defined: a, c)"


def test_several_unknown_names_and_names_no_formula_can_spell() -> None:
    with pytest.raises(FormulaError) as info:
        Formula("exact-match + b", allowed_names=["exact-match", "b"])
    assert "unknown names 'exact', 'match' (defined: b, exact-match)" in str(info.value)
    assert "'exact-match' cannot appear in a formula: a name must be a valid identifier" in str(
        info.value
    )
    with pytest.raises(FormulaError, match=r"unknown name 'a' \(defined: none\)"):
        Formula("a", allowed_names=[])


def test_missing_value_fails_at_evaluation() -> None:
    formula = Formula("(a + b) / 2")  # no allowed_names: nothing to check against yet
    with pytest.raises(FormulaError) as info:
        formula.evaluate({"a": 1.0, "c": 0.0})
    assert str(info.value) == "calculate_output '(a + b) / 2': missing value for 'b' (given: a, c)"
    with pytest.raises(FormulaError, match=r"missing values for 'a', 'b' \(given: none\)"):
        formula.evaluate({})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.5", "value for 'a' is not a number: '0.5'"),
        (True, "value for 'a' is not a number: True"),
        (None, "value for 'a' is not a number: None"),
        (math.nan, "value for 'a' is not finite: nan"),
        (math.inf, "value for 'a' is not finite: inf"),
    ],
)
def test_bad_values(value: object, message: str) -> None:
    assert_error("a + 1", message, {"a": value})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a.__class__", "attribute access is not allowed"),
        ("os.system", "calculate_output 'os.system': attribute access is not allowed"),
        ("os.system('ls')", "attribute access is not allowed: 'os.system'"),
        ("a + b.real", "attribute access is not allowed: 'b.real'"),
        ("a[0]", "subscripts are not allowed"),
        ("a[1:2]", "subscripts are not allowed"),
        ("__import__('os')", "unknown function '__import__' (available: abs, ceil, exp, floor"),
        ("eval(a)", "unknown function 'eval'"),
        ("a(1)", "unknown function 'a'"),
        ("2(3)", "only these functions can be called: abs, ceil, exp, floor, log, max, min"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("(lambda: 1)()", "lambda expressions are not allowed: 'lambda: 1'"),
        ("a < b", "comparisons are not allowed"),
        ("a == b", "comparisons are not allowed"),
        ("a and b", "boolean operators (and/or) are not allowed"),
        ("not a", "operator 'not' is not supported"),
        ("~a", "operator '~' is not supported"),
        ("a if b else 0", "conditional expressions (x if c else y) are not allowed"),
        ("'text'", "string literals are not allowed"),
        ("max(a, '^')", "string literals are not allowed: \"'^'\""),
        ("b'x'", "bytes literals are not allowed"),
        ("f'{a}'", "f-strings are not allowed"),
        ("True", "booleans are not allowed"),
        ("None", "None is not allowed"),
        ("2j", "complex numbers are not allowed"),
        ("1e999", "number is too large"),
        ("[a]", "lists are not allowed"),
        ("(a, b)", "tuples are not allowed"),
        ("{a}", "sets are not allowed"),
        ("{a: b}", "dicts are not allowed"),
        ("[x for x in a]", "comprehensions are not allowed"),
        ("max(x for x in a)", "comprehensions are not allowed"),
        ("(x := 1) + x", "assignment expressions (:=) are not allowed: 'x := 1'"),
        ("max(a, key=b)", "keyword arguments are not allowed in max()"),
        ("max(*a)", "argument unpacking (*x) is not allowed"),
        ("a // b", "operator '//' is not supported (use + - * / ^)"),
        ("a % b", "operator '%' is not supported"),
        ("a | b", "operator '|' is not supported"),
        ("a ** 2", "'**' at column 3 is not supported: use '^' for powers"),
        ("min()", "min() takes at least 1 argument (0 given)"),
        ("abs(a, b)", "abs() takes exactly 1 argument (2 given)"),
        ("exp()", "exp() takes exactly 1 argument (0 given)"),
        ("log(a, 2)", "log is the natural log: for base b write log(x) / log(b)"),
    ],
)
def test_not_allowed(source: str, message: str) -> None:
    with pytest.raises(FormulaError) as info:
        Formula(source)  # refused when defined, before any evaluation
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("(a + b) * (a ^ ", "syntax error at column 11 ('(' was never closed)"),
        ("a b", "syntax error at column 3"),
        ("(a + b) x", "syntax error at column 9"),
        ("a ^ b $ 2", "syntax error at column 7"),  # columns are the user's, though ^ became **
        ("  a ^ ^ b", "syntax error at column 7"),
        ("a ^= 2", "syntax error at column 3"),
        ("(a ^\n b ^ $)", "syntax error at line 2, column 6"),
        ("\n\n  a $", "syntax error at line 3, column 5"),
        ("a # weights", "comments are not allowed ('#' at column 3)"),
        ("(a + b) /", "syntax error: the formula ends too early"),
        ("a = 1", "syntax error"),
        ("import os", "syntax error"),
        ("a; b", "syntax error"),
        ("a\x00", "syntax error"),
        ("", "empty formula"),
        (" \n ", "empty formula"),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(FormulaError) as info:
        Formula(source)
    assert message in str(info.value)


def test_caret_in_a_string_is_not_an_operator() -> None:
    with pytest.raises(FormulaError, match="string literals are not allowed"):
        Formula("'a ^ b'")


def test_source_must_be_a_string() -> None:
    with pytest.raises(FormulaError, match="must be a string, not int"):
        Formula(2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        Formula("a", allowed_names="a")


def test_too_long_source() -> None:
    source = " + ".join(["a"] * 400)  # 1,597 characters
    with pytest.raises(FormulaError) as info:
        Formula(source)
    assert f"too long ({len(source)} characters; the limit is {MAX_SOURCE_LENGTH})" in str(
        info.value
    )
    assert len(str(info.value)) < 200  # the formula is clipped in the message
    Formula(" + ".join(["a"] * 100))  # a 100-grader sum is fine


def test_too_complex_and_too_deep() -> None:
    weighted = " + ".join(f"0.02 * g{i}" for i in range(50))  # 50 graders, 199 nodes
    assert evaluate(weighted, {f"g{i}": 1.0 for i in range(50)}) == pytest.approx(1.0)
    with pytest.raises(FormulaError, match=rf"too complex \(\d+ parts; the limit is {MAX_NODES}\)"):
        Formula("+".join(["-a"] * 300))
    with pytest.raises(
        FormulaError, match=rf"too deeply nested \(301 levels; the limit is {MAX_DEPTH}\)"
    ):
        Formula("-" * 300 + "a")
    with pytest.raises(FormulaError, match="syntax error"):
        Formula("(" * 300 + "a" + ")" * 300)  # Python's own parser refuses this depth


def test_deepest_allowed_nesting_evaluates() -> None:
    """At the depth limit the recursive checker and interpreter stay inside the stack."""
    assert evaluate("abs(" * 198 + "-a" + ")" * 198, {"a": 2}) == 2  # 200 levels
    assert evaluate("-" * (MAX_DEPTH - 1) + "a", {"a": 2}) == -2  # 199 minuses: an odd count
    assert evaluate("+".join(["a"] * MAX_DEPTH), {"a": 1}) == MAX_DEPTH


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("10 ^ 10 ^ 10", "overflow: 10 ^ 10000000000 is too large"),
        ("9 ^ 9 ^ 9 ^ 9", "overflow: 9 ^ "),
        ("2 ^ 5000", "overflow: 2 ^ 5000 is too large"),
        ("(-2) ^ 5001", "overflow: (-2) ^ 5001 is too large"),
        ("1e308 * 10", "overflow: 1e+308 * 10 is too large"),
        ("1e308 + 1e308", "overflow: 1e+308 + 1e+308 is too large"),
        ("1e300 / 1e-300", "overflow: 1e+300 / 1e-300 is too large"),
        ("exp(1000)", "overflow: exp(1000) is too large"),
        ("a ^ b", "overflow: 10 ^ 400 is too large"),
    ],
)
def test_overflow_is_an_error_and_fast(source: str, message: str) -> None:
    started = time.perf_counter()
    assert_error(source, message, {"a": 10, "b": 400})
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("source", "values", "message"),
    [
        ("a / b", {"a": 1, "b": 0}, "division by zero: 1 / 0"),
        ("(a + b) / (a - b)", {"a": 0.5, "b": 0.5}, "division by zero: 1 / 0"),
        ("0 ^ -1", {}, "division by zero: 0 ^ (-1)"),
        ("log(a)", {"a": 0}, "log(0) is undefined: log needs a number > 0"),
        ("log(-a)", {"a": 2}, "log(-2) is undefined: log needs a number > 0"),
        ("sqrt(-1)", {}, "sqrt(-1) is undefined: sqrt needs a number >= 0"),
        ("sqrt(a - 1)", {"a": 0.5}, "sqrt(-0.5) is undefined"),
        ("(-8) ^ (1 / 3)", {}, "is undefined: a negative number to a fractional power"),
    ],
)
def test_math_errors(source: str, values: dict[str, float], message: str) -> None:
    formula = Formula(source)  # fine to define: the problem depends on the values
    with pytest.raises(FormulaError) as info:
        formula.evaluate(values)
    assert message in str(info.value)
    assert str(info.value).startswith(f"calculate_output {source!r}: ")


def test_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError, match="unknown name") as info:
        Formula("a + b", allowed_names=["a"])
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, FormulaError)
    assert str(copy) == str(info.value)
    assert (copy.source, copy.reason) == ("a + b", "unknown name 'b' (defined: a)")


def test_formula_module_imports_nothing_from_the_package() -> None:
    import ast
    from pathlib import Path

    import pytest_modelopt.graders.engines.formula as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert "pytest" not in imported
    assert "pytest_modelopt" not in imported
    assert "eval" not in {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
