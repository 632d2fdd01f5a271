"""``check_numerics=True``: the node of the declared graph that made a NaN or Inf, at every
optimize level, fused or not.

The code that runs is the optimized one: fused statements, simplified expressions, reused
buffers. Its own check after each statement names a statement, the outermost op of a fused
group (``gc.log(x) * 2`` is one statement, a multiply), and a value that is NaN as declared
may never reach a checked value there (fused into ``np.where(x > 0, np.log(x), 0)``, the NaN
of log is masked; a simplification may drop it). So a checked program holds the *reference
graph* to account: the graph as declared, with the autodiff and optimizer nodes of a
training step, after stabilize where stabilize is the first pass (it rewrites unstable
forms such as ``log(1 + exp(u))`` on purpose, and a training step's gradients are derived
from that form: reporting the Inf its unstable form would make would stop a program whose
values are finite). Before the optimized code runs, each call runs the reference program,
that graph printed one statement per node with a check after each (what optimize=0 runs),
on copies of the arrays the call changes; like JAX's debug_nans re-running un-jitted, but
at every call, since the optimized code may never see the value. That costs about one
optimize=0 step per call more; where the reference graph is the one the optimized code was
printed from (optimize=0, or passes that changed nothing), the program's own checks already
name declared nodes and nothing else runs.

An error names the declared node (its op, its variable and the user's line), the gradient
it is for where autodiff made it, the statement of the generated code it was fused into (or
that none holds it), and that nothing was updated: the reference program runs on copies,
and where the optimized code fails part way through a step's updates, the arrays it changed
are restored. A fed or held NaN or Inf is reported as the input's or the parameter's, before
anything runs. Where the reference graph is finite but the optimized code is not, a pass
changed a value: that is a compiler bug, reported as one. NumPy's RuntimeWarnings are
silenced throughout: the error says what they would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from graphc.backend.printer import Signature, describe_node
from graphc.errors import NumericsError
from graphc.ir.node import Node

if TYPE_CHECKING:
    from graphc.passes.pipeline import Stage

#: The words the generated ``_check_finite`` puts between the kind of value and the node's
#: description (printer.CHECK_FINITE).
PRODUCED_BY = " produced by "

NOT_APPLIED = ("  Nothing was updated: the parameters and optimizer state hold their values "
               "from before this call.")

_SECTIONS = ("# forward", "# backward", "# update")


@dataclass(frozen=True)
class Trip:
    """A generated check that failed: NaN or Inf, the node checked and its description."""

    bad: str
    node: Node
    where: str


class CheckedModule:
    """A loaded generated module with checks, and the node behind each check's description,
    so that a failed check can be traced back to its node and its statement."""

    def __init__(self, fn: Callable[..., list[np.ndarray]], source: str, signature: Signature,
                 names: Mapping[int, str], nodes: Iterable[Node]) -> None:
        self.fn = fn
        self.source = source
        self.signature = signature
        self.names = names
        #: The descriptions the module's ``_NODES`` table holds, in the order of its checks.
        self.table: list[str] = fn.__globals__["_NODES"] if "_NODES" in fn.__globals__ else []
        described = {describe_node(n, names[n.id]): n for n in nodes if n.id in names}
        self.nodes = {where: described[where] for where in self.table}

    def trip(self, err: FloatingPointError) -> Trip | None:
        """The check that raised ``err``; None for a FloatingPointError of other origin."""
        if type(err) is not FloatingPointError:
            return None
        bad, sep, where = str(err).partition(PRODUCED_BY)
        node = self.nodes.get(where)
        return Trip(bad, node, where) if sep and node is not None else None

    def run(self, args: Sequence[np.ndarray], before: Mapping[int, np.ndarray]) -> Trip | None:
        """Run on ``args`` and on copies of the ``before`` values of parameters and state
        (the held arrays are left alone); the check that fails, or None."""
        owned = [before[n.id].copy() if n.id in before else n.value
                 for n in self.signature.held]
        try:
            self.fn(*args, *owned)
        except FloatingPointError as err:
            found = self.trip(err)
            if found is None:
                raise
            return found
        return None

    def statement(self, trip: Trip) -> tuple[int, list[str]]:
        """The first line number (1-based) and the lines of the statement a check follows."""
        lines = self.source.splitlines()
        call = f", _NODES[{self.table.index(trip.where)}])"
        end = next(i for i, line in enumerate(lines)
                   if line.lstrip().startswith("_check_finite(") and line.endswith(call))
        start = end - 1
        while start > 0 and not _ends_statement(lines[start - 1]):
            start -= 1
            if lines[start].lstrip().startswith("#"):  # "# name: ..." heads a block
                break
        return start + 1, [line.strip() for line in lines[start:end]]


def _ends_statement(line: str) -> bool:
    """Whether a line is the last of a statement, or of what comes before the statements:
    a check, a line ending in its shape comment, a section comment or the docstring."""
    text = line.strip()
    return (text.startswith(("_check_finite(", '"""')) or text in _SECTIONS
            or not text.startswith("#") and "  # " in text)


def reference_stage(stages: Sequence[Stage]) -> Stage:
    """The graph check_numerics reports on: as declared (with a training step's autodiff and
    optimizer nodes), after stabilize where it is the first pass (see the module's doc)."""
    if len(stages) > 1 and stages[1].name == "stabilize":
        return stages[1]
    return stages[0]


def _same_graph(a: Stage, b: Stage) -> bool:
    return ([n.id for n in a.graph.nodes()] == [n.id for n in b.graph.nodes()]
            and [n.id for n in a.graph.roots] == [n.id for n in b.graph.roots])


class NumericsCheck:
    """What a program compiled with check_numerics=True does at each call (see the module's
    doc): check the leaves, run the reference graph, then the optimized code, and raise a
    NumericsError naming the declared node that made the first NaN or Inf."""

    def __init__(self, program: CheckedModule, stages: Sequence[Stage],
                 reference_code: Callable[[Stage], CheckedModule]) -> None:
        self.program = program
        reference = reference_stage(stages)
        self.reference = (None if _same_graph(reference, stages[-1])
                          else reference_code(reference))
        self.passes = [s.name for s in stages[1:]]
        modules = [program] if self.reference is None else [program, self.reference]
        #: The parameters and state the program holds, checked before each call.
        self.held = list({n.id: n for m in modules for n in m.signature.owned
                          if n.op.name in ("param", "state")}.values())
        #: Those a call changes in place (updated ones, and state such as dropout's draw
        #: counter): saved before the call, restored where it fails.
        self.changed = [n for n in self.held if n.op.name == "state" or n.id in _updated(
            stages[-1].graph.nodes() + reference.graph.nodes())]
        self.reference_nodes = reference.graph.nodes()

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            self._check_leaves(args)
            before = {n.id: n.array.copy() for n in self.changed}
            if self.reference is not None:
                found = self.reference.run(args, before)
                if found is not None:
                    raise NumericsError(self._declared(found, args, before))
            try:
                return self.program.fn(*args, *(n.value for n in self.program.signature.held))
            except FloatingPointError as err:
                found = self.program.trip(err)
                if found is None:
                    raise
                for n in self.changed:
                    np.copyto(n.array, before[n.id])
                if self.reference is None:
                    raise NumericsError(self._declared(found, args, before)) from None
                raise NumericsError(self._compiler_bug(found)) from None

    # --- the leaves ---
    def _check_leaves(self, args: Sequence[np.ndarray]) -> None:
        """A NaN or Inf fed, or held by a parameter or state before the call, is reported as
        that leaf's, not as the first node that reads it."""
        for node, value in zip(self.program.signature.inputs, args):
            word = "input" if node.op.name == "input" else "parameter"
            _check_leaf(node, value, f"{word} {node.name!r} was fed")
        for node in self.held:
            word = "parameter" if node.op.name == "param" else "optimizer state"
            _check_leaf(node, node.array, f"{word} {node.name!r} holds", " before this call")

    # --- the reports ---
    def _declared(self, found: Trip, args: Sequence[np.ndarray],
                  before: Mapping[int, np.ndarray]) -> str:
        """The report of a NaN or Inf that a node of the reference graph made."""
        module = self.reference or self.program
        lines = [f"{found.bad}{PRODUCED_BY}{found.where}"]
        role = self._role_words(found.node, module.names)
        if role:
            lines.append(f"  {role}")
        if self.reference is not None:
            lines += self._in_generated_code(found, args, before)
        if self.changed:
            lines.append(NOT_APPLIED)
        return "\n".join(lines)

    def _role_words(self, node: Node, names: Mapping[int, str]) -> str | None:
        """What a backward or update node is, in the words of the graph the user wrote."""
        name = names[node.id]
        if node.role == "update":
            target = node.inputs[0]
            return f"It is the optimizer's update of {target.name or names[target.id]}."
        if node.role != "backward":
            return None
        label = node.label
        if not label.endswith("'"):
            return (f"It is a node of the backward pass ({name}), which computes the "
                    "gradients.")
        op = label[:-1]
        words = f"It is the gradient of {op} ({name})"
        forward = _forward_of(node, op, self.reference_nodes)
        if forward is None:
            return words + "."
        where = f", declared at {forward.location}" if forward.location else ""
        return f"{words}, flowing back through {op} node {names[forward.id]}{where}."

    def _in_generated_code(self, found: Trip, args: Sequence[np.ndarray],
                           before: Mapping[int, np.ndarray]) -> list[str]:
        """Where the optimized code computes the value: the statement it was fused into, or
        nowhere (a pass removed it). Found by running the optimized code on copies."""
        passes = ", ".join(self.passes)
        there = self.program.run(args, before)
        if there is None:
            return [f"  The generated code (passes {passes}) holds no NaN or Inf for these "
                    "inputs: its passes simplified this value away or fused it into a "
                    "statement whose result is finite (gc.where(x > 0, gc.log(x), 0) is), "
                    "but check_numerics reports the graph as you declared it."]
        if _same_op(there.node, found.node):
            return []
        line, code = self.program.statement(there)
        name = self.program.names[there.node.id]
        return [f"  In the generated code (passes {passes}) it is fused into the statement "
                f"that computes {name} (op {there.node.label}), at line {line} of the "
                "program's source:", *(f"    {c}" for c in code)]

    def _compiler_bug(self, found: Trip) -> str:
        """The report of a NaN or Inf the optimized code made where the reference graph's
        values are finite: a pass changed a value."""
        line, code = self.program.statement(found)
        lines = [f"{found.bad}{PRODUCED_BY}{found.where}, in the generated code only: the "
                 "graph as declared computes finite values for these inputs, so a pass ("
                 f"{', '.join(self.passes)}) changed a value. This is a bug in graphc's "
                 "compiler; please report it with the program's source (prog.source) and "
                 "these inputs.",
                 f"  The statement, at line {line} of the program's source:",
                 *(f"    {c}" for c in code)]
        if self.changed:
            lines.append(NOT_APPLIED)
        return "\n".join(lines)


def _updated(nodes: Iterable[Node]) -> set[int]:
    """The ids of the parameters and state that update nodes write in place."""
    return {n.inputs[0].id for n in nodes if n.role == "update" and n.inputs}


def _check_leaf(node: Node, value: np.ndarray, what: str, when: str = "") -> None:
    """Raise where a leaf's float value holds NaN or Inf, naming the first such entry."""
    if value.dtype.kind != "f" or np.isfinite(value).all():
        return
    bad = ~np.isfinite(value)
    first = int(np.flatnonzero(bad)[0])
    kind = "NaN" if np.isnan(value.flat[first]) else "Inf"
    at = f" at {list(map(int, np.unravel_index(first, value.shape)))}" if value.ndim else ""
    where = f"\n  declared at {node.location}" if node.location else ""
    raise NumericsError(f"{what} {kind}{at}{when}{where}")


def _forward_of(node: Node, op: str, graph: Sequence[Node]) -> Node | None:
    """The forward node a gradient node ``op'`` differentiates: the one node of that op
    that it reads, or whose inputs it reads (log' reads x, not log(x)); None if not one."""
    reads = {x.id for x in node.inputs}
    found = [n for n in graph if n.role == "forward" and n.label == op and n.inputs
             and (n.id in reads or all(x.id in reads for x in n.inputs))]
    return found[0] if len(found) == 1 else None


def _same_op(statement: Node, declared: Node) -> bool:
    """Whether a statement of the optimized code is the declared node itself, not a group
    fused around it: the same op, line and role, and as many operations."""
    if (statement.label, statement.location, statement.role) != (
            declared.label, declared.location, declared.role):
        return False
    if statement.op.name == declared.op.name == "elementwise":
        return sp.count_ops(statement.attrs["expr"]) == sp.count_ops(declared.attrs["expr"])
    return statement.op.name == declared.op.name

