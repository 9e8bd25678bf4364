"""The search policies and stop rules a generation step may name: plain values shared by the IR
(compiler/ir.py) and the plan (compiler/plan.py), so the runtime reads the plan's policies without
importing the IR, and the two never drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from decc.errors import Span

__all__ = ["SMC", "Beam", "BestOfN", "Entropy", "FirstFinish", "Reward", "Sampling", "Search"]


@dataclass(frozen=True)
class Reward:
    """A score of a (partial) output: a built-in (`logprob`, `length`, `keyword`, `regex`, `json_valid`),
    a Python callable (`python("module:function")`) or a local sequence classifier (`classifier(path)`)."""

    kind: str
    args: tuple[Any, ...]
    span: Span | None = None
    fn: Any = field(default=None, compare=False, repr=False)  # python(...): the callable, imported once


@dataclass(frozen=True)
class Sampling:
    """Greedy, or sampling with temperature / top-k / top-p / min-p / typical-p and a seed."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Beam:
    """Beam search as transformers defines it; `groups` > 1 is diverse beam search (Hamming penalty)."""

    width: int
    length_penalty: float = 1.0
    early_stopping: bool = False
    groups: int = 1
    diversity: float = 0.0


@dataclass(frozen=True)
class BestOfN:
    """n samples, the best under `score`."""

    n: int
    score: Reward
    sampling: Sampling


@dataclass(frozen=True)
class FirstFinish:
    """n samples in parallel; the first to complete wins."""

    n: int
    sampling: Sampling


@dataclass(frozen=True)
class SMC:
    """Sequential Monte Carlo over `particles`, weighted by `potential` on prefixes, resampled when the
    effective sample size falls below `ess_threshold` x particles."""

    particles: int
    potential: Reward | None
    ess_threshold: float = 0.5
    resampling: str = "multinomial"  # or "systematic"
    sampling: Sampling = field(default_factory=lambda: Sampling(greedy=False))


Search = Union[Sampling, Beam, BestOfN, FirstFinish, SMC]


@dataclass(frozen=True)
class Entropy:
    """Stop once the next-token entropy (nats) is above (or below) `threshold` for `steps` steps running."""

    above: bool
    threshold: float
    steps: int
