"""Token automata as tensors on the model's device, so a batch of constrained rows can gather its masks,
draw and advance its states with no host round trip per step.

A row's position is one integer: a state of one of the batch's automata (each automaton's states offset
into one numbering), or one of two extra states: FREE (an unconstrained row: every token allowed, stays
FREE) and DONE (after EOS; allows only EOS, stays DONE, its draws are ignored). Per state the tables hold
the allowed-token bitmask (EOS bits set in accepting states, as `TokenAutomaton.bitmask`) and whether the
value is complete there (accepting, no text token allowed). A state with dead-end tokens (grammars/tokens/budget.py)
holds its row without them, as the host's budgeted masks do; the device loop replaces a row by its
budgeted one where the budget binds. Transitions are the automaton's CSR edges as
one sorted key array `state * stride + token` with the target of each; a key lookup (`searchsorted`) that
misses means a self-loop token (token_loops.py keeps those out of the CSR), so the row stays put. Only
allowed tokens are ever drawn, so a miss is never a disallowed token.

Automata with counted segments carry a counter beside the state and are not eligible (`supports`).
Per-automaton tables are uploaded once per device and cached on the automaton object.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from decc.grammars.tokens.budget import NO_LIMIT, budget_row, distances
from decc.grammars.tokens.matcher import Matcher
from decc.grammars.tokens.token_automaton import TokenAutomaton

from .kernels.bitmask import bitmask_words, pack_bitmask

__all__ = ["DeviceTables", "supports"]

_CACHE: weakref.WeakKeyDictionary[TokenAutomaton, dict[str, _Part]] = weakref.WeakKeyDictionary()


def supports(matcher: Any | None) -> bool:
    """Whether a row's constraint can live on the device: none, or a counter-free token automaton."""
    if matcher is None:
        return True
    return type(matcher) is Matcher and matcher.automaton.counts is None and not matcher.is_terminated()


@dataclass(frozen=True)
class _Part:
    """One automaton's tables on one device."""

    bitmask: torch.Tensor  # int32 [S, W]
    final: torch.Tensor  # bool [S]
    src: torch.Tensor  # int64 [E]: the source state of each CSR edge (sorted, tokens sorted within)
    token: torch.Tensor  # int64 [E]
    target: torch.Tensor  # int64 [E]


def _part(auto: TokenAutomaton, device: torch.device) -> _Part:
    per = _CACHE.setdefault(auto, {})
    key = str(device)
    if key not in per:
        n = auto.n_states
        counts = torch.from_numpy(auto.indptr[1:] - auto.indptr[:-1])
        accepting = torch.tensor(auto.dfa.accepting[:n], dtype=torch.bool)
        bitmask = torch.tensor(auto.bitmask)
        for s in np.flatnonzero(distances(auto).dead).tolist():  # dead-end tokens: refused at any budget
            row = budget_row(auto, s, NO_LIMIT)
            if row is not None:
                bitmask[s] = row[0]
        per[key] = _Part(
            bitmask=bitmask.to(device),
            final=(accepting & torch.from_numpy(auto.n_allowed == 0)).to(device),
            src=torch.repeat_interleave(torch.arange(n), counts).to(device),
            token=torch.tensor(auto.token_ids, dtype=torch.long, device=device),
            target=torch.tensor(auto.next_state, dtype=torch.long, device=device),
        )
    return per[key]


class DeviceTables:
    """The tables of a batch's automata, concatenated; see the module docstring."""

    def __init__(
        self,
        automata: Sequence[TokenAutomaton],
        vocab_size: int,
        eos_ids: frozenset[int],
        device: torch.device | str,
    ) -> None:
        device = torch.device(device)
        words = bitmask_words(vocab_size)
        self.stride = words * 32
        self.offsets: dict[int, int] = {}
        parts: list[_Part] = []
        at = 0
        for auto in automata:
            if id(auto) in self.offsets:
                continue
            if auto.bitmask.shape[1] != words:
                raise ValueError(f"automaton has {auto.bitmask.shape[1]} mask words, the model needs {words}")
            self.offsets[id(auto)] = at
            parts.append(_part(auto, device))
            at += parts[-1].bitmask.shape[0]
        self.free, self.done = at, at + 1
        eos = torch.tensor(sorted(eos_ids), dtype=torch.long)
        eos_row = torch.zeros(self.stride, dtype=torch.bool)
        eos_row[eos] = True
        eos_words = pack_bitmask(eos_row[None])[0]
        extra = torch.stack([torch.full((words,), -1, dtype=torch.int32), eos_words]).to(device)
        self.bitmask = torch.cat([p.bitmask for p in parts] + [extra])
        self.final = torch.cat([p.final for p in parts] + [torch.zeros(2, dtype=torch.bool, device=device)])
        sentinel = torch.tensor([torch.iinfo(torch.int64).max], device=device)  # no miss runs off the end
        offs = list(self.offsets.values())
        self.keys = torch.cat(
            [(p.src + o) * self.stride + p.token for p, o in zip(parts, offs, strict=True)] + [sentinel]
        )
        self.target = torch.cat([p.target + o for p, o in zip(parts, offs, strict=True)] + [sentinel])
        self.eos = eos.to(device)
        self.not_eos_words = (~eos_words).to(device)

    def start(self, matcher: Matcher | None) -> int:
        """The row state for a matcher where it stands now (None: FREE)."""
        if matcher is None:
            return self.free
        return self.offsets[id(matcher.automaton)] + matcher.state

    def masks(self, state: torch.Tensor, no_eos: torch.Tensor) -> torch.Tensor:
        """int32 `[B, W]`: the rows' allowed tokens, EOS cleared where `no_eos` (bool `[B]`)."""
        rows = self.bitmask.index_select(0, state)
        return torch.where(no_eos[:, None], rows & self.not_eos_words, rows)

    def advance(self, state: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the states after `tokens`, which of them drew EOS). EOS goes to DONE; DONE and FREE stay."""
        key = state * self.stride + tokens.clamp(min=0)
        at = torch.searchsorted(self.keys, key)
        nxt = torch.where(self.keys[at] == key, self.target[at], state)
        eos = torch.isin(tokens, self.eos)
        nxt = torch.where(eos | (state == self.done), torch.full_like(state, self.done), nxt)
        return nxt, eos
