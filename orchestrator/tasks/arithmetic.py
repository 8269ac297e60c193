"""Arithmetic problems in the zoo's compact text format: "123+456=" -> "579".

One function formats problems for both the zoo's training corpus and the
synthetic evaluation tasks, so what a model was trained on and what it is
asked are the same format by construction.
"""

from __future__ import annotations

import random

OPERATIONS = {"addition": "+", "subtraction": "-", "multiplication": "*"}


def operand(rng: random.Random, digits: int) -> int:
    """A uniformly drawn number with exactly `digits` digits (1 digit: 0..9)."""
    if digits <= 1:
        return rng.randrange(10)
    return rng.randrange(10 ** (digits - 1), 10**digits)


def solve(a: int, b: int, operation: str, offset: int = 0) -> int:
    """The answer; `offset` gives BIG-bench's "modified arithmetic" (e.g. plus one)."""
    if operation == "addition":
        return a + b + offset
    if operation == "subtraction":
        return a - b + offset
    if operation == "multiplication":
        return a * b + offset
    raise ValueError(f"unknown arithmetic operation {operation!r}; use one of {sorted(OPERATIONS)}")


def problem(rng: random.Random, operation: str, digits: int, offset: int = 0) -> tuple[str, str]:
    """Draw one problem: (input, target), e.g. ("123+456=", "579")."""
    a, b = operand(rng, digits), operand(rng, digits)
    return f"{a}{OPERATIONS[operation]}{b}=", str(solve(a, b, operation, offset))
