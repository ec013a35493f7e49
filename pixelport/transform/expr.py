"""Arithmetic expressions in parameter values: `iw_div_2`, `ch_mul_0.5_add_10`, `N20`.

Operands are numbers (an `N` prefix negates) or variables: `iw ih iar` (input), `cw ch car`
(current), `bw bh bar` (base, inside layers), `idu bdu` (video durations). Operators are
written between underscores. ImageKit documents the precedence as mul/div, then add/sub, then
mod, then pow (pow binds loosest), which is what `evaluate` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pixelport.errors import InvalidRequest

VARIABLES = frozenset({"iw", "ih", "iar", "cw", "ch", "car", "bw", "bh", "bar", "idu", "bdu"})
OPERATORS = ("add", "sub", "mul", "div", "mod", "pow")
# Loosest first: an expression is split on the loosest operator, then recursively.
_LEVELS = (("pow",), ("mod",), ("add", "sub"), ("mul", "div"))
_NUMBER = re.compile(r"^N?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class Expr:
    """A parsed expression: alternating operands and operators."""

    tokens: tuple[str, ...]
    text: str

    @property
    def constant(self) -> float | None:
        """The value when the expression is a plain number."""
        if len(self.tokens) == 1 and self.tokens[0] not in VARIABLES:
            return _number(self.tokens[0])
        return None

    @property
    def variables(self) -> frozenset[str]:
        """The variables it reads."""
        return frozenset(t for t in self.tokens[::2] if t in VARIABLES)

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The value with `values` bound to the variables."""
        result = _evaluate(list(self.tokens), values, self.text)
        if math.isnan(result) or math.isinf(result):
            raise InvalidRequest(f"The expression {self.text!r} has no finite value")
        return result

    def __str__(self) -> str:
        return self.text


def parse(text: str, what: str) -> Expr:
    """Parse an expression; `what` names the parameter for error messages."""
    tokens = tuple(text.split("_"))
    if len(tokens) % 2 == 0 or len(tokens) > 41:
        raise InvalidRequest(f"Invalid expression {text!r} in {what}")
    for index, token in enumerate(tokens):
        if index % 2:
            if token not in OPERATORS:
                raise InvalidRequest(f"Unknown operator {token!r} in {what}")
        elif token not in VARIABLES and not _NUMBER.match(token):
            raise InvalidRequest(f"Invalid operand {token!r} in {what}")
    return Expr(tokens, text)


def _number(token: str) -> float:
    return -float(token[1:]) if token.startswith("N") else float(token)


def _evaluate(tokens: list[str], values: Mapping[str, float], text: str) -> float:
    if len(tokens) == 1:
        token = tokens[0]
        if token in VARIABLES:
            if token not in values:
                raise InvalidRequest(f"{token!r} is not available in {text!r}")
            return float(values[token])
        return _number(token)
    for level in _LEVELS:
        # The rightmost operator of the loosest level splits; left-associative within it.
        for index in range(len(tokens) - 2, 0, -2):
            if tokens[index] in level:
                left = _evaluate(tokens[:index], values, text)
                right = _evaluate(tokens[index + 1:], values, text)
                return _apply(tokens[index], left, right, text)
    raise InvalidRequest(f"Invalid expression {text!r}")


def _apply(operator: str, left: float, right: float, text: str) -> float:
    try:
        if operator == "add":
            return left + right
        if operator == "sub":
            return left - right
        if operator == "mul":
            return left * right
        if operator == "div":
            return left / right
        if operator == "mod":
            return math.fmod(left, right)
        return float(math.pow(left, right))
    except (ZeroDivisionError, ValueError, OverflowError):
        raise InvalidRequest(f"The expression {text!r} cannot be evaluated") from None
