"""IR verifier: invariants every pass must keep. A failure is a bug in decc (InternalError), not user error."""

from __future__ import annotations

from decc.compiler import ir
from decc.errors import InternalError


def verify(module: ir.Module, *, resolved: bool = False, compiled: bool = False) -> None:
    open_turn = _body(module, module.body, None, {i.name for i in module.inputs}, resolved, compiled)
    _check(open_turn is None, "unclosed turn")


def _body(
    module: ir.Module,
    body: tuple[ir.Op, ...],
    open_turn: str | None,
    names: set[str],
    resolved: bool,
    compiled: bool,
) -> str | None:
    for op in body:
        if isinstance(op, ir.TurnStart):
            _check(module.chat and open_turn is None, f"turn '{op.role}' opened inside another turn")
            open_turn = op.role
        elif isinstance(op, ir.TurnEnd):
            _check(open_turn == op.role, f"turn end '{op.role}' does not match")
            open_turn = None
        elif isinstance(op, ir.Emit):
            _check(not module.chat or open_turn is not None, "text outside a turn in a chat module")
            for p in op.parts:
                if resolved and isinstance(p, ir.VarRef):
                    _check(p.kind in ("input", "gen") and p.name in names, f"unresolved variable '{p.name}'")
        elif isinstance(op, ir.Generate):
            _check(
                not module.chat or open_turn == "assistant",
                f"generation '{op.name}' outside an assistant turn",
            )
            _check(op.max_tokens >= 1, "max_tokens below 1")
            if compiled and op.constraint is not None:
                _check(op.constraint.compiled is not None, f"constraint of '{op.name}' not compiled")
            names.add(op.name)
        elif isinstance(op, ir.Branch):
            _check(not module.chat or open_turn is not None, "'if' outside a turn in a chat module")
            for c in op.cases:
                if resolved:
                    _check(c.test.var.name in names, f"unresolved tested variable '{c.test.var.name}'")
            for b in op.bodies():
                after = _body(module, b, open_turn, set(names), resolved, compiled)
                _check(after == open_turn, "a branch opens or closes a turn")
        else:
            raise InternalError(f"unknown op {type(op).__name__}")
    return open_turn


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InternalError(f"IR verification failed: {message}")
