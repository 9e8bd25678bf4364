"""Grammar-aligned sampling: ASAp (Park et al., "Grammar-Aligned Decoding", NeurIPS 2024).

Per-step masking samples each token from p(t | x) restricted to the allowed tokens, which over-weights
prefixes whose continuations are mostly invalid: the result is not p(x | x valid). ASAp keeps, over every
prefix it has sampled, an estimate of the expected future grammaticality (EFG)

    EFG(x) = sum over allowed t of p(t | x) * EFG(x t),     EFG(complete) = 1, EFG(cut off) = 0,

starting from the optimistic EFG = 1 for prefixes never seen (so the first draw is plain masked sampling).
Each draw samples t with probability proportional to p(t | x) * EFG(x t), then updates the EFG of the
prefixes on its path from the bottom up. As draws accumulate the estimates become exact and the draws
follow p(x | x valid). The trie belongs to one step after one context and lives across runs of a program.

Reference loop, one draw:

    x = ""; path = []
    until x completes or is cut off:
        q = p(. | x) masked;  mass(x) = sum(q)
        sample t with weight q[t] * EFG(x t)        (EFG 1 where not yet known)
        path.append((x, t)); x = x t
    value = 1 if complete else 0
    for (x, t) in reversed(path):
        EFG(x t) = value
        value = EFG(x) = mass(x) - sum over known children c of q[c] + sum of q[c] * EFG(x c)
"""

from __future__ import annotations

import torch

__all__ = ["AlignedTrie", "Cursor"]


class _Node:
    __slots__ = ("mass", "kids")

    def __init__(self) -> None:
        self.mass: float | None = None  # the allowed probability mass here, once visited
        self.kids: dict[int, _Kid] = {}

    def efg(self) -> float:
        if self.mass is None:
            return 1.0
        known = sum(k.q for k in self.kids.values())
        return max(0.0, self.mass - known) + sum(k.q * k.efg for k in self.kids.values())


class _Kid:
    __slots__ = ("q", "efg", "node")

    def __init__(self, q: float) -> None:
        self.q = q
        self.efg = 1.0
        self.node: _Node | None = None


class AlignedTrie:
    """The EFG estimates for one step after one context, shared by every draw of it."""

    def __init__(self) -> None:
        self.root = _Node()
        self.draws = 0

    def cursor(self) -> Cursor:
        return Cursor(self)


class Cursor:
    """One draw's walk down the trie."""

    __slots__ = ("trie", "node", "path")

    def __init__(self, trie: AlignedTrie) -> None:
        self.trie = trie
        self.node = trie.root
        self.path: list[tuple[_Node, int]] = []

    def reweight(self, logq: torch.Tensor) -> torch.Tensor:
        """`logq` (the model's log-probabilities, masked) reweighted by the known EFGs, as logits to sample
        from; the allowed mass is recorded on the first visit. Falls back to `logq` when every allowed
        token is known to lead nowhere (the draw is then cut off anyway)."""
        node = self.node
        if node.mass is None:
            node.mass = float(torch.logsumexp(logq, 0).exp())
        if not node.kids:
            return logq
        out = logq.clone()
        ids = torch.tensor(list(node.kids), dtype=torch.long, device=logq.device)
        efg = torch.tensor([k.efg for k in node.kids.values()], dtype=logq.dtype, device=logq.device)
        out[ids] += torch.log(efg)  # log 0 = -inf: a prefix known to be a dead end is never drawn
        if not bool(torch.isfinite(out).any()):
            return logq
        return out

    def take(self, token: int, q: float) -> None:
        """Move down along `token`, whose probability under the model (unmasked) is `q`."""
        node = self.node
        kid = node.kids.get(token)
        if kid is None:
            kid = node.kids[token] = _Kid(q)
        self.path.append((node, token))
        if kid.node is None:
            kid.node = _Node()
        self.node = kid.node

    def finish(self, value: float | None) -> None:
        """The draw ended: complete (1: EOS, a finished constraint), cut off (0: max_tokens) or neither
        (None: a stop string or the entropy rule ended it, which says nothing about the constraint, so
        the estimates stay as they are); update the path."""
        self.trie.draws += 1
        if value is None:
            self.path.clear()
            return
        for node, token in reversed(self.path):
            kid = node.kids[token]
            kid.efg = value
            value = node.efg()
        self.path.clear()
