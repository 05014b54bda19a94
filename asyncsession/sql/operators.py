"""Operator identities, their precedence and their negations.

Operators are plain strings naming them (arithmetic ones are their symbols,
which is also what the types module expects); the compiler maps each to SQL
text per dialect. Precedence decides where parentheses go: an element is grouped
when its operator binds no tighter than the operator it sits under.
"""

from __future__ import annotations

EQ = "eq"
NE = "ne"
LT = "lt"
LE = "le"
GT = "gt"
GE = "ge"
ADD = "+"
SUB = "-"
MUL = "*"
TRUEDIV = "/"
FLOORDIV = "//"
MOD = "%"
NEG = "neg"
CONCAT = "||"
LIKE = "like"
NOT_LIKE = "not_like"
ILIKE = "ilike"
NOT_ILIKE = "not_ilike"
IN = "in"
NOT_IN = "not_in"
IS = "is"
IS_NOT = "is_not"
IS_DISTINCT_FROM = "is_distinct_from"
IS_NOT_DISTINCT_FROM = "is_not_distinct_from"
BETWEEN = "between"
BETWEEN_SYMMETRIC = "between_symmetric"
AND = "and"
OR = "or"
NOT = "not"
COMMA = "comma"
DISTINCT = "distinct"
ASC = "asc"
DESC = "desc"
NULLS_FIRST = "nulls_first"
NULLS_LAST = "nulls_last"
COLLATE = "collate"
EXISTS = "exists"
ANY = "any"
ALL = "all"
GETITEM = "getitem"
JSON_GETITEM = "json_getitem"
ARRAY_CONTAINS = "array_contains"

CUSTOM_PREFIX = "custom:"

COMPARISON = frozenset(
    {
        EQ,
        NE,
        LT,
        LE,
        GT,
        GE,
        LIKE,
        NOT_LIKE,
        ILIKE,
        NOT_ILIKE,
        IN,
        NOT_IN,
        IS,
        IS_NOT,
        IS_DISTINCT_FROM,
        IS_NOT_DISTINCT_FROM,
        BETWEEN,
        BETWEEN_SYMMETRIC,
        ARRAY_CONTAINS,
    }
)

NEGATIONS = {
    EQ: NE,
    NE: EQ,
    LT: GE,
    GE: LT,
    GT: LE,
    LE: GT,
    LIKE: NOT_LIKE,
    NOT_LIKE: LIKE,
    ILIKE: NOT_ILIKE,
    NOT_ILIKE: ILIKE,
    IN: NOT_IN,
    NOT_IN: IN,
    IS: IS_NOT,
    IS_NOT: IS,
    IS_DISTINCT_FROM: IS_NOT_DISTINCT_FROM,
    IS_NOT_DISTINCT_FROM: IS_DISTINCT_FROM,
}

# Higher binds tighter.
_PRECEDENCE = {
    GETITEM: 15,
    JSON_GETITEM: 15,
    COLLATE: 14,
    NEG: 13,
    MUL: 12,
    TRUEDIV: 12,
    FLOORDIV: 12,
    MOD: 12,
    ADD: 11,
    SUB: 11,
    CONCAT: 10,
    ARRAY_CONTAINS: 9,
    EQ: 5,
    NE: 5,
    LT: 5,
    LE: 5,
    GT: 5,
    GE: 5,
    LIKE: 5,
    NOT_LIKE: 5,
    ILIKE: 5,
    NOT_ILIKE: 5,
    IN: 5,
    NOT_IN: 5,
    IS: 5,
    IS_NOT: 5,
    IS_DISTINCT_FROM: 5,
    IS_NOT_DISTINCT_FROM: 5,
    BETWEEN: 5,
    BETWEEN_SYMMETRIC: 5,
    NOT: 4,
    AND: 3,
    OR: 2,
    COMMA: 0,
}


def custom(opstring: str, precedence: int = 0) -> str:
    """An operator given as SQL text, e.g. ``"->>"``; precedence kept in the name."""
    return f"{CUSTOM_PREFIX}{precedence}:{opstring}"


def custom_sql(operator: str) -> str:
    return operator.split(":", 2)[2]


def precedence(operator: str) -> int:
    found = _PRECEDENCE.get(operator)
    if found is not None:
        return found
    if operator.startswith(CUSTOM_PREFIX):
        return int(operator.split(":", 2)[1])
    return 0


def is_precedent(operator: str, against: str) -> bool:
    """True when an element built with ``operator`` needs parentheses under ``against``.

    Equal precedence groups too (``a - (b - c)``), except for the associative
    AND, OR, + and * chains which read the same either way.
    """
    if operator == against and operator in (AND, OR, ADD, MUL, CONCAT):
        return False
    return precedence(operator) <= precedence(against)
