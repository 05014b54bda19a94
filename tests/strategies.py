"""Hypothesis strategies for the whole suite (the one module that defines them).

SQL expression trees
--------------------
A tree is drawn as a *description*: nested tuples in a small language, not
library objects, so one description can be built into asyncsession and into
SQLAlchemy (the oracle) and the two compared. Every node is typed by *kind*
(``"int"``, ``"float"``, ``"str"``; predicates are ``"bool"``), and only
well-typed trees are drawn::

    value := ("col", name)                       a column of THINGS (below)
           | ("lit", kind, python_value)          a bound literal, never None
           | ("neg", value)                       -value (numbers)
           | ("arith", "+" | "-" | "*", value, value)
           | ("concat", value, value)             strings
           | ("fn", name, value, ...)             lower upper length coalesce abs
           | ("case", ((pred, value), ...), value)
    pred  := ("cmp", "eq" | "ne" | "lt" | "le" | "gt" | "ge", value, value)
           | ("in", value, (literal, ...), negated)   the list may be empty
           | ("between", value, literal, literal)
           | ("is_null", value, negated)
           | ("like", value, "startswith" | "endswith" | "contains", str, autoescape)
           | ("and", (pred, ...)) | ("or", (pred, ...)) | ("not", pred)

Literals are ``("lit", kind, value)`` everywhere, the items of an IN list too,
so :func:`revalue` can swap every value for another of the same kind without
changing the shape (the compiled SQL must then be the same).

The table they range over, ``THINGS``, has a non-null integer key ``id`` and
nullable ``i`` (integer), ``f`` (float) and ``s`` (string) columns; rows are
drawn by :func:`thing_rows`, with NULLs.
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

THINGS_COLUMNS = {"id": "int", "i": "int", "f": "float", "s": "str"}
"""Column name -> kind, for the table every expression tree ranges over."""

COLUMNS_OF_KIND = {
    kind: tuple(name for name, k in THINGS_COLUMNS.items() if k == kind)
    for kind in ("int", "float", "str")
}

Tree = tuple[Any, ...]

# Small ranges, so that comparisons against the drawn rows go both ways.
ints = st.integers(min_value=-6, max_value=6)
floats = st.floats(min_value=-6, max_value=6, allow_nan=False, allow_infinity=False).map(
    lambda x: round(x, 2)
)
# "%", "_" and "/" exercise LIKE wildcards and autoescape.
texts = st.text(alphabet="abAB%_/ ", max_size=4)

LITERALS = {"int": ints, "float": floats, "str": texts}


def literals(kind: str) -> st.SearchStrategy[Tree]:
    return LITERALS[kind].map(lambda value: ("lit", kind, value))


def columns(kind: str) -> st.SearchStrategy[Tree]:
    return st.sampled_from(COLUMNS_OF_KIND[kind]).map(lambda name: ("col", name))


@functools.cache
def values(kind: str, depth: int = 2) -> st.SearchStrategy[Tree]:
    """A value expression of ``kind``, at most ``depth`` operators deep."""
    leaves = st.one_of(columns(kind), columns(kind), literals(kind))
    if depth <= 0:
        return leaves
    sub = values(kind, depth - 1)
    options: list[st.SearchStrategy[Tree]] = [leaves, leaves]
    if kind in ("int", "float"):
        options += [
            st.tuples(st.just("neg"), sub),
            st.tuples(st.just("arith"), st.sampled_from(["+", "-", "*"]), sub, sub),
            st.tuples(st.just("fn"), st.just("abs"), sub),
            st.tuples(st.just("fn"), st.just("coalesce"), sub, literals(kind)),
        ]
    if kind == "int":
        options.append(st.tuples(st.just("fn"), st.just("length"), values("str", depth - 1)))
    if kind == "str":
        options += [
            st.tuples(st.just("concat"), sub, sub),
            st.tuples(st.just("fn"), st.sampled_from(["lower", "upper"]), sub),
            st.tuples(st.just("fn"), st.just("coalesce"), sub, literals(kind)),
        ]
    options.append(
        st.tuples(
            st.just("case"),
            st.lists(st.tuples(predicates(depth - 1), sub), min_size=1, max_size=2).map(tuple),
            sub,
        )
    )
    return st.one_of(*options)


kinds = st.sampled_from(["int", "int", "float", "str"])


def _comparison(depth: int) -> st.SearchStrategy[Tree]:
    ops = st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"])
    return kinds.flatmap(
        lambda kind: st.tuples(st.just("cmp"), ops, values(kind, depth), values(kind, depth))
    )


def _in(depth: int) -> st.SearchStrategy[Tree]:
    return kinds.flatmap(
        lambda kind: st.tuples(
            st.just("in"),
            values(kind, depth),
            st.lists(literals(kind), max_size=3).map(tuple),
            st.booleans(),
        )
    )


def _between(depth: int) -> st.SearchStrategy[Tree]:
    return kinds.flatmap(
        lambda kind: st.tuples(
            st.just("between"), values(kind, depth), literals(kind), literals(kind)
        )
    )


def _is_null(depth: int) -> st.SearchStrategy[Tree]:
    return kinds.flatmap(
        lambda kind: st.tuples(st.just("is_null"), values(kind, depth), st.booleans())
    )


def _like(depth: int) -> st.SearchStrategy[Tree]:
    return st.tuples(
        st.just("like"),
        values("str", depth),
        st.sampled_from(["startswith", "endswith", "contains"]),
        texts,
        st.booleans(),
    )


@functools.cache
def predicates(depth: int = 2) -> st.SearchStrategy[Tree]:
    """A boolean expression: comparisons and friends combined with AND/OR/NOT."""
    operand_depth = min(depth, 1)
    atoms = st.one_of(
        _comparison(operand_depth),
        _comparison(operand_depth),
        _in(operand_depth),
        _between(operand_depth),
        _is_null(operand_depth),
        _like(operand_depth),
    )
    if depth <= 0:
        return atoms
    sub = predicates(depth - 1)
    return st.one_of(
        atoms,
        atoms,
        st.tuples(st.just("and"), st.lists(sub, min_size=2, max_size=3).map(tuple)),
        st.tuples(st.just("or"), st.lists(sub, min_size=2, max_size=3).map(tuple)),
        st.tuples(st.just("not"), sub),
    )


def thing_rows(min_size: int = 0, max_size: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Rows for THINGS (without ``id``; the database numbers them from 1), NULLs included."""
    row = st.fixed_dictionaries(
        {"i": st.none() | ints, "f": st.none() | floats, "s": st.none() | texts}
    )
    return st.lists(row, min_size=min_size, max_size=max_size)


def literal_count(tree: Tree) -> int:
    """How many ``("lit", ...)`` nodes the description holds."""
    if not isinstance(tree, tuple):
        return 0
    if tree and tree[0] == "lit":
        return 1
    return sum(literal_count(item) for item in tree)


def revalue(tree: Tree, draw: Any) -> Tree:
    """The same tree with every literal's value drawn afresh (same kind, same shape).

    ``draw`` is a Hypothesis ``data.draw`` (or the ``draw`` of a composite).
    """
    if not isinstance(tree, tuple):
        return tree
    if tree and tree[0] == "lit":
        return ("lit", tree[1], draw(LITERALS[tree[1]]))
    return tuple(revalue(item, draw) for item in tree)


# -- Session state machine (tests/orm/test_stateful.py) ------------------------------------------
# Values for the parent/child schema of the stateful session test. Small
# alphabets and ranges, so equal values (and setting an attribute back to what
# it was) come up often.

session_names = st.text(alphabet="abc", min_size=1, max_size=3)
session_labels = st.text(alphabet="xyz", min_size=1, max_size=3)
session_scores = st.none() | st.integers(min_value=0, max_value=3)


# -- Flush dependency graphs (tests/orm/test_unitofwork.py) --------------------------------------
# A description of tables t0..t(n-1) whose foreign keys point at each other, and
# of pending rows with explicit keys whose foreign key values point at other
# pending rows, at a row outside the flush (OUTSIDE_ROW) or nowhere (None).

OUTSIDE_ROW = 10_000  # a key no drawn row has: a row already in the database


@st.composite
def flush_graphs(draw: st.DrawFn, acyclic: bool = True) -> dict[str, Any]:
    """``{"refs": ((j, ...) per table), "rows": ((table, id, {j: value}), ...)}``.

    ``refs[i]`` lists the tables table i has a foreign key to (itself
    included). Row ids are unique across tables; ``rows`` is in a random
    (add) order. With ``acyclic``, table i refers only to tables <= i and a
    row only to rows of its own table with smaller ids, so no order is
    impossible; without it, anything goes (cycles included).
    """
    n_tables = draw(st.integers(1, 5))
    refs = []
    for i in range(n_tables):
        candidates = range(i + 1) if acyclic else range(n_tables)
        refs.append(tuple(sorted(draw(st.sets(st.sampled_from(list(candidates)), max_size=3)))))
    counts = [draw(st.integers(0, 6)) for _ in range(n_tables)]
    ids_of: list[list[int]] = []
    next_id = 1
    for count in counts:
        ids_of.append(list(range(next_id, next_id + count)))
        next_id += count
    rows = []
    for table, ids in enumerate(ids_of):
        for rid in ids:
            values: dict[int, int | None] = {}
            for j in refs[table]:
                targets = [t for t in ids_of[j] if t < rid] if acyclic and j == table else ids_of[j]
                choice = draw(st.sampled_from(["row", "none", "outside"]))
                if choice == "row" and targets:
                    values[j] = draw(st.sampled_from(targets))
                elif choice == "outside":
                    values[j] = OUTSIDE_ROW
                else:
                    values[j] = None
            rows.append((table, rid, values))
    return {"refs": tuple(refs), "rows": tuple(draw(st.permutations(rows)))}


# -- queries across relationships ----------------------------------------------------------

RELATED = {
    "User": ("name", {"addresses": "Address", "orders": "Order"}),
    "Address": ("email", {"user": "User"}),
    "Order": ("description", {"user": "User", "items": "Item"}),
    "Item": ("description", {"orders": "Order", "keywords": "Keyword"}),
    "Keyword": ("name", {"items": "Item"}),
    "Node": ("name", {"children": "Node", "parent": "Node"}),
}
"""Entity -> (its text column, {relationship: target entity}) for relationship filters."""

RELATED_TEXT = ("a", "b", "c")


def relationship_predicates(entity: str, depth: int = 2) -> st.SearchStrategy[Tree]:
    """Filters on ``entity`` (a key of ``RELATED``), as descriptions::

    pred := ("text", "eq" | "ne", str)             the entity's text column
          | ("related", relationship, pred | None)  any() / has(), pred on the target
          | ("none", relationship, negated)        relationship == None (!= None)
          | ("not", pred) | ("and", pred, pred) | ("or", pred, pred)
    """
    _, rels = RELATED[entity]
    leaves = st.one_of(
        st.tuples(st.just("text"), st.sampled_from(["eq", "ne"]), st.sampled_from(RELATED_TEXT)),
        st.tuples(st.just("none"), st.sampled_from(sorted(rels)), st.booleans()),
    )
    if depth <= 0:
        return leaves
    inner = relationship_predicates(entity, depth - 1)
    related = st.sampled_from(sorted(rels)).flatmap(
        lambda rel: st.tuples(
            st.just("related"),
            st.just(rel),
            st.none() | relationship_predicates(rels[rel], depth - 1),
        )
    )
    return st.one_of(
        leaves,
        related,
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    )


@st.composite
def related_rows(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Rows for the tables behind ``RELATED`` (keys: users, addresses, orders, items,
    keywords, order_items, item_keywords, nodes); foreign keys may be NULL, and nodes
    refer only to nodes with smaller ids."""
    text = st.sampled_from(RELATED_TEXT)

    def ids(max_size: int) -> list[int]:
        return list(range(1, draw(st.integers(0, max_size)) + 1))

    users, orders, items, keywords = ids(4), ids(4), ids(4), ids(3)
    maybe_user = st.none() | st.sampled_from(users) if users else st.none()
    out: dict[str, list[dict[str, Any]]] = {
        "users": [{"id": i, "name": draw(text)} for i in users],
        "addresses": [{"id": i, "user_id": draw(maybe_user), "email": draw(text)} for i in ids(5)],
        "orders": [
            {"id": i, "user_id": draw(maybe_user), "description": draw(text)} for i in orders
        ],
        "items": [{"id": i, "description": draw(text)} for i in items],
        "keywords": [{"id": i, "name": draw(text)} for i in keywords],
    }
    pairs = [(o, i) for o in orders for i in items]
    chosen = draw(st.sets(st.sampled_from(pairs))) if pairs else set()
    out["order_items"] = [{"order_id": o, "item_id": i} for o, i in sorted(chosen)]
    pairs = [(i, k) for i in items for k in keywords]
    chosen = draw(st.sets(st.sampled_from(pairs))) if pairs else set()
    out["item_keywords"] = [{"item_id": i, "keyword_id": k} for i, k in sorted(chosen)]
    nodes = []
    for i in ids(6):
        parent = draw(st.none() | st.integers(1, i - 1)) if i > 1 else None
        nodes.append({"id": i, "parent_id": parent, "name": draw(text)})
    out["nodes"] = nodes
    return out
