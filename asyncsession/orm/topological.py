"""Deterministic topological sorting for the flush (pure).

How this works:

* Nodes are hashable values given in a sequence; edges are ``(before,
  after)`` pairs between them. The order of the node sequence breaks every
  tie, so the same input always gives the same output.
* An edge from a node to itself is ignored: a row may reference itself and a
  table may reference itself (such rows go in with one statement; the
  planner orders the rows of a self-referencing table among themselves).
* :func:`sort_levels` is Kahn's algorithm one layer at a time: level 0 holds
  the nodes nothing must precede, level *k* the nodes whose predecessors are
  all in earlier levels. Nodes of one level do not depend on each other, so
  the flush may put them in one statement.
* :func:`strongly_connected` finds the groups of nodes that depend on each
  other in a cycle (Tarjan's algorithm, iterative) and returns them in
  dependency order, so a cycle of tables can be ordered row by row.
* A cycle that makes an order impossible raises
  :class:`~asyncsession.exc.CircularDependencyError`, whose message and
  ``cycle`` name the nodes around one cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from asyncsession import exc

__all__ = ["sort", "sort_levels", "strongly_connected"]

N = TypeVar("N", bound=Hashable)


def _graph(
    nodes: Sequence[N], edges: Iterable[tuple[N, N]]
) -> tuple[dict[N, int], list[list[int]], list[list[int]]]:
    """Positions, successor and predecessor lists (by position, deduplicated, sorted)."""
    position = {node: i for i, node in enumerate(nodes)}
    if len(position) != len(nodes):
        raise ValueError("topological sort: the nodes must be distinct")
    succ_sets: list[set[int]] = [set() for _ in nodes]
    for before, after in edges:
        i = position[before]
        j = position[after]
        if i != j:
            succ_sets[i].add(j)
    successors = [sorted(s) for s in succ_sets]
    predecessors: list[list[int]] = [[] for _ in nodes]
    for i, succ in enumerate(successors):
        for j in succ:
            predecessors[j].append(i)
    return position, successors, predecessors


def sort_levels(
    nodes: Sequence[N],
    edges: Iterable[tuple[N, N]],
    describe: Callable[[N], str] = str,
    what: str = "items",
) -> list[list[N]]:
    """The nodes in layers: each node's predecessors are all in earlier layers.

    Within a layer nodes keep their order in ``nodes``. Raises
    CircularDependencyError naming one cycle (``describe`` names a node,
    ``what`` the kind of node in the message) when no order exists.
    """
    _, successors, predecessors = _graph(nodes, edges)
    indegree = [len(p) for p in predecessors]
    level = [i for i, d in enumerate(indegree) if d == 0]
    levels: list[list[N]] = []
    placed = 0
    while level:
        levels.append([nodes[i] for i in level])
        placed += len(level)
        following: list[int] = []
        for i in level:
            for j in successors[i]:
                indegree[j] -= 1
                if indegree[j] == 0:
                    following.append(j)
        following.sort()
        level = following
    if placed != len(nodes):
        remaining = {i for i, d in enumerate(indegree) if d > 0}
        cycle = [nodes[i] for i in _find_cycle(remaining, predecessors)]
        raise _cycle_error(cycle, describe, what)
    return levels


def sort(
    nodes: Sequence[N],
    edges: Iterable[tuple[N, N]],
    describe: Callable[[N], str] = str,
    what: str = "items",
) -> list[N]:
    """The nodes in one dependency order (the layers of :func:`sort_levels`, flattened)."""
    return [node for level in sort_levels(nodes, edges, describe, what) for node in level]


def strongly_connected(nodes: Sequence[N], edges: Iterable[tuple[N, N]]) -> list[list[N]]:
    """The strongly connected components, in dependency order.

    A component lists its nodes in their order in ``nodes``. Every edge
    between two components goes from an earlier to a later one: components
    come in the layers of :func:`sort_levels` over the graph of components,
    and within a layer in the order of their first nodes.
    """
    edges = list(edges)
    _, successors, _ = _graph(nodes, edges)
    component_of = _tarjan(len(nodes), successors)
    count = max(component_of, default=-1) + 1
    members: list[list[int]] = [[] for _ in range(count)]
    for i, c in enumerate(component_of):
        members[c].append(i)
    # Name each component by its first node, so the order is the input order.
    firsts = sorted(range(count), key=lambda c: members[c][0])
    renumber = {c: k for k, c in enumerate(firsts)}
    component_edges = {
        (renumber[component_of[i]], renumber[component_of[j]])
        for i, succ in enumerate(successors)
        for j in succ
        if component_of[i] != component_of[j]
    }
    order = sort(list(range(count)), component_edges)
    return [[nodes[i] for i in members[firsts[k]]] for k in order]


def _tarjan(n: int, successors: list[list[int]]) -> list[int]:
    """Component number of each node (iterative Tarjan)."""
    index_of = [-1] * n
    lowlink = [0] * n
    on_stack = [False] * n
    component_of = [-1] * n
    stack: list[int] = []
    counter = 0
    components = 0
    for root in range(n):
        if index_of[root] != -1:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, child = work[-1]
            if child == 0:
                index_of[node] = lowlink[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            succ = successors[node]
            if child < len(succ):
                work[-1] = (node, child + 1)
                nxt = succ[child]
                if index_of[nxt] == -1:
                    work.append((nxt, 0))
                elif on_stack[nxt]:
                    lowlink[node] = min(lowlink[node], index_of[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index_of[node]:
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component_of[member] = components
                    if member == node:
                        break
                components += 1
    return component_of


def _find_cycle(remaining: set[int], predecessors: list[list[int]]) -> list[int]:
    """One cycle among ``remaining`` nodes, each of which has a remaining predecessor."""
    current = min(remaining)
    seen: dict[int, int] = {}
    path: list[int] = []
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = min(p for p in predecessors[current] if p in remaining)
    cycle = path[seen[current] :]
    cycle.reverse()  # walked backwards along predecessors
    rotate = cycle.index(min(cycle))
    cycle = cycle[rotate:] + cycle[:rotate]
    return [*cycle, cycle[0]]


def _cycle_error(
    cycle: list[N], describe: Callable[[N], str], what: str
) -> exc.CircularDependencyError:
    names = [describe(node) for node in cycle]
    return exc.CircularDependencyError(
        f"Can't order the flush: {what} depend on each other in a cycle: "
        f"{' -> '.join(names)} (each must be written before the next)",
        names,
    )
