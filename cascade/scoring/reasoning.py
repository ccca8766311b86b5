"""What a reasoning text says about its own answer: arithmetic that checks out, hedging, a marked answer.

Read from the response alone, so free at run time; the scorer uses these as features and the
offline `heuristic` confidence combines them by hand.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable

_CALC = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
_EQUATION = re.compile(r"(\d[\d,]*(?:\.\d+)?(?:\s*[-+*/x×]\s*\d[\d,]*(?:\.\d+)?)+)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")
_HEDGE = re.compile(
    r"\b(however|assum\w*|approximately|round\w*|cannot|can't|not possible|not enough|unclear)\b", re.IGNORECASE
)
_MARKED = re.compile(r"####|\\boxed\{|\banswer is\b|\banswer:", re.IGNORECASE)


def hedged(text: str) -> bool:
    """Whether the text hedges (assumptions, approximations, 'cannot', 'unclear')."""
    return _HEDGE.search(text) is not None


def marks_answer(text: str) -> bool:
    """Whether the text marks its final answer ('#### n', a \\boxed{}, 'the answer is')."""
    return _MARKED.search(text) is not None


def arithmetic_checks(text: str) -> list[bool]:
    """Whether each calculator annotation or 'a op b = c' step in the text is right."""
    results = []
    for expr, value in _CALC.findall(text) + _EQUATION.findall(text):
        computed = _evaluate(expr)
        try:
            stated = float(value.replace(",", "").replace("$", "").strip())
        except ValueError:
            continue
        if computed is not None:
            results.append(abs(computed - stated) <= 1e-6 * max(1.0, abs(stated)) or round(computed, 2) == stated)
    return results


def _evaluate(expr: str) -> float | None:
    """Plain arithmetic only (numbers, + - * / and parentheses), walked by hand: no eval, no powers."""
    try:
        tree = ast.parse(expr.replace(",", "").replace("x", "*").replace("×", "*").strip(), mode="eval")
        return _walk(tree.body)
    except (SyntaxError, ZeroDivisionError, ValueError, OverflowError):
        return None


def _walk(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_walk(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_walk(node.left), _walk(node.right))
    raise ValueError("not plain arithmetic")


_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
