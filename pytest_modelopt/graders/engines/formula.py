"""``calculate_output``: the ``multi`` grader's arithmetic, parsed and whitelisted, never eval-ed.

OpenAI's ``multi`` grader combines its sub-graders' scores with a formula such as
``(name + email) / 2``. The documented language is ``+ - * / ^`` (``^`` is power, not xor), numbers,
the sub-graders' names, and ``min max abs floor ceil exp sqrt log``. Formulas come from config
files and test code, so they are never handed to ``eval``: the source is parsed with :mod:`ast`,
every node is checked against a whitelist when the :class:`Formula` is built (a bad formula fails
at definition time, not halfway through an eval run), and a tiny interpreter computes the result.

Decisions, so local results match what OpenAI would compute and nothing can run away:

* ``^`` is rewritten to ``**`` token by token (never inside a literal), so it gets Python's power
  precedence and right associativity: ``2 + 3 * 4 ^ 2 == 50``, ``2 ^ 3 ^ 2 == 512``,
  ``-2 ^ 2 == -4``.
* ``**`` written by the user is refused: OpenAI documents only ``^`` and the formula is sent to
  OpenAI verbatim, so accepting it here would pass locally and fail there.
* ``log`` is the natural logarithm of one argument; ``log(x, base)`` is refused because OpenAI
  documents no base argument (write ``log(x) / log(b)``). ``min``/``max`` take one or more
  arguments; the others exactly one.
* All arithmetic is on floats (no unbounded integer powers), and every intermediate result must be
  finite: overflow, division by zero and domain errors raise :class:`FormulaError`.
* The source length, node count and nesting depth are capped, so parsing and evaluation are
  bounded and never hit the recursion limit.
* Line breaks are whitespace (a formula may span lines in a YAML block); ``#`` comments are
  refused, like anything else OpenAI does not document.
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import numbers
import token
import tokenize
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SOURCE_LENGTH",
    "Formula",
    "FormulaError",
    "evaluate",
]

MAX_SOURCE_LENGTH = 1000
"""Longest accepted formula, in characters: real formulas are a line long."""
MAX_NODES = 500
"""Most expression nodes: above what fits in MAX_SOURCE_LENGTH for realistic formulas."""
MAX_DEPTH = 200
"""Deepest nesting: keeps the recursive checker and interpreter well inside the recursion limit."""


class FormulaError(ValueError):
    """A formula that cannot be parsed, is not allowed, or cannot be computed.

    A ``ValueError`` so pydantic validators turn it into a ``ValidationError`` on their own.
    ``source`` and ``reason`` are kept apart so callers can reword the message.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)  # both in args, so the error pickles (xdist workers)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return f"calculate_output {_clip(self.source)}: {self.reason}"


def _clip(text: str, limit: int = 80) -> str:
    """``repr`` of text, shortened so a huge formula does not flood the message."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _num(x: float) -> str:
    """A number as a person would write it: ``2`` not ``2.0``."""
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _operand(x: float) -> str:
    """``_num`` with negatives parenthesised, for messages such as ``(-8) ^ 0.5``."""
    return f"({_num(x)})" if x < 0 else _num(x)


# --- the functions ------------------------------------------------------------------------------
# Each raises ValueError / OverflowError with a message naming the call; Formula.evaluate turns
# that into a FormulaError naming the formula.


def _min(*args: float) -> float:
    if not args:
        raise TypeError("min() takes at least 1 argument (0 given)")
    return float(min(args))


def _max(*args: float) -> float:
    if not args:
        raise TypeError("max() takes at least 1 argument (0 given)")
    return float(max(args))


def _abs(x: float) -> float:
    return float(abs(x))


def _floor(x: float) -> float:
    return float(math.floor(x))


def _ceil(x: float) -> float:
    return float(math.ceil(x))


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise OverflowError(f"overflow: exp({_num(x)}) is too large") from None


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError(f"sqrt({_num(x)}) is undefined: sqrt needs a number >= 0")
    return math.sqrt(x)


def _log(x: float) -> float:
    if x <= 0:
        raise ValueError(f"log({_num(x)}) is undefined: log needs a number > 0")
    return math.log(x)


FUNCTIONS: Mapping[str, Callable[..., float]] = MappingProxyType(
    {
        "min": _min,
        "max": _max,
        "abs": _abs,
        "floor": _floor,
        "ceil": _ceil,
        "exp": _exp,
        "sqrt": _sqrt,
        "log": _log,
    }
)
"""OpenAI's documented functions. ``log`` is the natural log; min/max take 1+ arguments."""

_ARITY: Mapping[str, tuple[int, int | None]] = {
    name: (1, None) if name in ("min", "max") else (1, 1) for name in FUNCTIONS
}

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "^",
}
_OTHER_BINOPS: dict[type[ast.operator], str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Slice: "slices are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators (and/or) are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Starred: "starred expressions (*x) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}
# Nodes that carry no expression of their own: not counted against MAX_NODES.
_UNCOUNTED = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


class _Parser:
    """Turns source into a validated ``ast.Expression`` and reports errors in the user's columns.

    Line breaks are plain whitespace (a formula may span lines in a YAML block), so the text is
    flattened to one line, stripped, and ``^`` rewritten as ``**``; every position is mapped back
    to the text the user wrote before it appears in a message.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._text = source.replace("\r\n", "\n").replace("\r", "\n")
        flat = self._text.replace("\n", " ")
        self._body = flat.strip()
        self._lead = len(flat) - len(flat.lstrip())  # index of the body in the user's text
        self._translated = ""
        self._origin: list[int] = []  # translated index -> body index
        self.names: list[str] = []  # variable names, in source order, repeated

    def error(self, reason: str) -> FormulaError:
        return FormulaError(self.source, reason)

    def parse(self) -> ast.Expression:
        if not self._body:
            raise self.error("empty formula")
        self._translate()
        try:
            tree = ast.parse(self._translated, mode="eval")
        except SyntaxError as exc:
            raise self._syntax_error(exc, mapped=True) from None
        except (ValueError, RecursionError, MemoryError):  # null bytes; absurd nesting
            raise self.error("syntax error") from None
        self._check_size(tree)
        self._check(tree.body)
        return tree

    # -- ^ -> ** ---------------------------------------------------------------------------------

    def _translate(self) -> None:
        """Rewrite each ``^`` operator token (not a ``^`` in a literal) as ``**``."""
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(self._body).readline))
        except (tokenize.TokenError, SyntaxError, ValueError):
            # The tokenizer gave up (unclosed bracket, stray quote ...): let the parser report the
            # error on the untranslated body, whose columns need no mapping.
            try:
                ast.parse(self._body, mode="eval")
            except SyntaxError as exc:
                raise self._syntax_error(exc, mapped=False) from None
            except (ValueError, RecursionError, MemoryError):
                pass
            raise self.error("syntax error") from None
        carets: list[int] = []
        for tok in tokens:
            col = tok.start[1]  # one line, so the column is the index in the body
            if tok.type == tokenize.COMMENT:
                raise self.error(f"comments are not allowed ('#' {self._where(col)})")
            if tok.type == token.OP and tok.string == "^":
                carets.append(col)
            elif tok.type == token.OP and tok.string == "**":
                raise self.error(f"'**' {self._where(col)} is not supported: use '^' for powers")
        parts: list[str] = []
        start = 0
        for col in carets:
            parts += [self._body[start:col], "**"]
            self._origin += [*range(start, col), col, col]
            start = col + 1
        parts.append(self._body[start:])
        self._origin += range(start, len(self._body) + 1)  # one past the end, for end positions
        self._translated = "".join(parts)

    # -- positions -------------------------------------------------------------------------------

    def _where(self, index: int) -> str:
        """``at column C`` (``at line L, column C`` for a multi-line formula) of a body index."""
        index += self._lead
        column = index - (self._text.rfind("\n", 0, index) + 1) + 1
        if "\n" not in self._text.rstrip():
            return f"at column {column}"
        line = self._text.count("\n", 0, index) + 1
        return f"at line {line}, column {column}"

    def _body_index(self, translated_index: int) -> int:
        return self._origin[min(max(translated_index, 0), len(self._origin) - 1)]

    def _char_index(self, byte_offset: int) -> int:
        """AST offsets count UTF-8 bytes; messages count characters."""
        return len(self._translated.encode()[:byte_offset].decode(errors="ignore"))

    def _syntax_error(self, exc: SyntaxError, *, mapped: bool) -> FormulaError:
        detail = "" if exc.msg in ("invalid syntax", "") else f" ({exc.msg})"
        line = self._translated if mapped else self._body
        if exc.lineno != 1 or exc.offset is None:
            return self.error(f"syntax error{detail}")
        if not 1 <= exc.offset <= len(line):
            return self.error(f"syntax error: the formula ends too early{detail}")
        index = self._body_index(exc.offset - 1) if mapped else exc.offset - 1
        return self.error(f"syntax error {self._where(index)}{detail}")

    def _not_allowed(self, reason: str, node: ast.expr) -> FormulaError:
        """An error naming the offending part of the formula, unless that part is all of it."""
        if node.end_col_offset is not None:
            start = self._body_index(self._char_index(node.col_offset))
            end = self._body_index(self._char_index(node.end_col_offset))
            segment = self._body[start:end]
            if segment != self._body:
                reason = f"{reason}: {_clip(segment, 60)}"
        return self.error(reason)

    # -- validation ------------------------------------------------------------------------------

    def _check_size(self, tree: ast.Expression) -> None:
        """Count nodes and measure depth without recursion, before anything recursive runs."""
        count = deepest = 0
        stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
        while stack:  # bounded: a MAX_SOURCE_LENGTH source has at most a few thousand nodes
            node, depth = stack.pop()
            count += 1
            deepest = max(deepest, depth)
            stack += [
                (child, depth + 1)
                for child in ast.iter_child_nodes(node)
                if not isinstance(child, _UNCOUNTED)
            ]
        if count > MAX_NODES:
            raise self.error(f"too complex ({count} parts; the limit is {MAX_NODES})")
        if deepest > MAX_DEPTH:
            raise self.error(f"too deeply nested ({deepest} levels; the limit is {MAX_DEPTH})")

    def _check(self, node: ast.expr) -> None:
        """Accept only the whitelist; the first thing outside it is the error."""
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                symbol = _OTHER_BINOPS.get(type(node.op), type(node.op).__name__)
                raise self._not_allowed(
                    f"operator {symbol!r} is not supported (use + - * / ^)", node
                )
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                symbol = "not" if isinstance(node.op, ast.Not) else "~"
                raise self._not_allowed(f"operator {symbol!r} is not supported", node)
            self._check(node.operand)
        elif isinstance(node, ast.Constant):
            self._check_constant(node)
        elif isinstance(node, ast.Name):
            self.names.append(node.id)
        elif isinstance(node, ast.Call):
            self._check_call(node)
        else:
            reason = _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
            raise self._not_allowed(reason, node)

    def _check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            raise self._not_allowed("booleans are not allowed", node)
        if isinstance(value, (int, float)):
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                raise self._not_allowed("number is too large", node)
            return
        kinds = {
            str: "string literals are",
            bytes: "bytes literals are",
            complex: "complex numbers are",
        }
        what = kinds.get(type(value), f"{value!r} is")
        raise self._not_allowed(f"{what} not allowed", node)

    def _check_call(self, node: ast.Call) -> None:
        available = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            self._check(node.func)  # names what is wrong: attribute access, lambda ...
            raise self._not_allowed(f"only these functions can be called: {available}", node)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {name!r} (available: {available})")
        if node.keywords:
            raise self._not_allowed(f"keyword arguments are not allowed in {name}()", node)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self._not_allowed("argument unpacking (*x) is not allowed", node)
        low, high = _ARITY[name]
        given = len(node.args)
        if given < low or (high is not None and given > high):
            plural = "" if low == 1 else "s"
            amount = f"exactly {low}" if high == low else f"at least {low}"
            reason = f"{name}() takes {amount} argument{plural} ({given} given)"
            if name == "log" and given == 2:
                reason += "; log is the natural log: for base b write log(x) / log(b)"
            raise self._not_allowed(reason, node)
        for arg in node.args:
            self._check(arg)


def _unknown_names(unknown: list[str], allowed: frozenset[str]) -> str:
    """Name the unknown names and the defined ones, and flag names no formula can spell."""
    quoted = ", ".join(repr(name) for name in unknown)
    noun = "name" if len(unknown) == 1 else "names"
    defined = ", ".join(sorted(allowed)) or "none"
    reason = f"unknown {noun} {quoted} (defined: {defined})"
    unusable = sorted(n for n in allowed if not n.isidentifier() or keyword.iskeyword(n))
    if unusable:
        listed = ", ".join(repr(name) for name in unusable)
        reason += f"; {listed} cannot appear in a formula: a name must be a valid identifier"
    return reason


class Formula:
    """A parsed, validated ``calculate_output``; build once, evaluate per sample."""

    __slots__ = ("_tree", "names", "source")

    source: str
    names: frozenset[str]

    def __init__(self, source: str, *, allowed_names: Iterable[str] | None = None) -> None:
        """Parse and validate now, so a bad formula fails where it is defined.

        With ``allowed_names`` (the sub-graders' names) an unknown name is an error here too;
        without it, a missing name is only found by :meth:`evaluate`.
        """
        if not isinstance(source, str):
            raise FormulaError(repr(source), f"must be a string, not {type(source).__name__}")
        if isinstance(allowed_names, str):
            raise TypeError("allowed_names must be an iterable of names, not a single string")
        self.source = source
        if len(source) > MAX_SOURCE_LENGTH:
            raise FormulaError(
                source, f"too long ({len(source)} characters; the limit is {MAX_SOURCE_LENGTH})"
            )
        parser = _Parser(source)
        self._tree = parser.parse()
        self.names = frozenset(parser.names)
        if allowed_names is not None:
            allowed = frozenset(allowed_names)
            unknown = [n for n in dict.fromkeys(parser.names) if n not in allowed]
            if unknown:
                raise FormulaError(source, _unknown_names(unknown, allowed))

    def __repr__(self) -> str:
        return f"Formula({self.source!r})"

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The formula's value for these scores: always a finite float, or a FormulaError."""
        missing = [name for name in sorted(self.names) if name not in values]
        if missing:
            given = ", ".join(sorted(map(str, values))) or "none"
            quoted = ", ".join(repr(name) for name in missing)
            noun = "value" if len(missing) == 1 else "values"
            raise FormulaError(self.source, f"missing {noun} for {quoted} (given: {given})")
        scores: dict[str, float] = {}
        for name in sorted(self.names):
            raw: object = values[name]
            if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
                raise FormulaError(self.source, f"value for {name!r} is not a number: {raw!r}")
            number = float(raw)
            if not math.isfinite(number):
                raise FormulaError(self.source, f"value for {name!r} is not finite: {number!r}")
            scores[name] = number
        try:
            return _evaluate(self._tree.body, scores)
        except (ArithmeticError, ValueError) as exc:
            raise FormulaError(self.source, str(exc)) from exc


def _evaluate(node: ast.expr, scores: Mapping[str, float]) -> float:
    """Interpret a tree that ``_Parser`` has already validated."""
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _evaluate(node.left, scores), _evaluate(node.right, scores))
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, scores)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant):
        return float(cast("float", node.value))  # validated: int or float
    if isinstance(node, ast.Name):
        return scores[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_evaluate(arg, scores) for arg in node.args]
        return FUNCTIONS[node.func.id](*args)
    raise AssertionError(f"unvalidated node {type(node).__name__}")  # pragma: no cover


def _binop(op: ast.operator, a: float, b: float) -> float:
    symbol = _BINOPS[type(op)]
    if isinstance(op, ast.Add):
        result = a + b
    elif isinstance(op, ast.Sub):
        result = a - b
    elif isinstance(op, ast.Mult):
        result = a * b
    elif isinstance(op, ast.Div):
        if b == 0:
            raise ZeroDivisionError(f"division by zero: {_num(a)} / 0")
        result = a / b
    else:
        result = _pow(a, b)
    if not math.isfinite(result):
        raise OverflowError(f"overflow: {_operand(a)} {symbol} {_operand(b)} is too large")
    return result


def _pow(a: float, b: float) -> float:
    """``a ^ b`` on floats: bounded time, and no complex results or silent infinities."""
    if a == 0 and b < 0:
        raise ZeroDivisionError(f"division by zero: 0 ^ {_operand(b)}")
    if a < 0 and not b.is_integer():
        raise ValueError(
            f"{_operand(a)} ^ {_operand(b)} is undefined: a negative number to a fractional power"
        )
    try:
        return math.pow(a, b)
    except OverflowError:
        raise OverflowError(f"overflow: {_operand(a)} ^ {_operand(b)} is too large") from None


def evaluate(source: str, values: Mapping[str, float]) -> float:
    """Parse and evaluate in one go; build a :class:`Formula` to reuse one across samples."""
    return Formula(source).evaluate(values)
