"""decc's token masks against llguidance's, step by step along a valid instance (issue 20, item 4).

Both engines get the same tokenizer, the compact separators and no free whitespace (llguidance:
`whitespace_flexible=False`). At every step (each token of the instance's canonical tokenization, then the
end, where EOS is decided) the two full masks must be equal, except where a documented semantic difference
explains the disagreement: each such difference is a named filter that checks its explanation.
The filters are in filters.py.

Every other disagreement is reported (`Disagreement`), with the prefix and a few tokens of each side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import SchemaWalk
from .engines import encode
from .filters import DECC_ONLY, LLG_ONLY, Context, sift
from .layout import SEPS, Layout, layout

LLG_DEFAULTS = {"whitespace_flexible": False, "item_separator": SEPS[0], "key_separator": SEPS[1]}


@dataclass(frozen=True)
class Disagreement:
    step: int
    prefix: str
    decc_only: tuple[str, ...]  # a few decoded tokens each
    llg_only: tuple[str, ...]
    n_decc_only: int
    n_llg_only: int

    def __str__(self) -> str:
        return (
            f"step {self.step}, after {self.prefix!r}: decc alone allows {self.n_decc_only} tokens "
            f"{list(self.decc_only)}, llguidance alone {self.n_llg_only} {list(self.llg_only)}"
        )


@dataclass
class Walk:
    """One instance compared: the steps, the disagreements each filter explained, the rest."""

    steps: int = 0
    explained: dict[str, int] = field(default_factory=dict)
    unexplained: list[Disagreement] = field(default_factory=list)
    stopped: str = ""  # why the walk ended early ("" when every token and EOS were compared)


class Differential:
    """decc and llguidance bound to one tokenizer; `compare(schema, instance)` walks one instance."""

    def __init__(self, tok: Any, size: int, eos: int) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.torch
        import torch

        from decc import grammars

        self.llg, self.torch, self.grammars = llguidance, torch, grammars
        self.tok, self.size, self.eos = tok, size, eos
        self.vocab = grammars.Vocabulary.from_tokenizer(tok, size=size, eos_ids=frozenset({eos}))
        self.llg_tok = llguidance.hf.from_tokenizer(tok, n_vocab=size, eos_token=eos)
        self.fill_llg = llguidance.torch.fill_next_token_bitmask
        self.token_bytes = [b or b"" for b in self.vocab.token_bytes] + [b""] * (
            size - len(self.vocab.token_bytes)
        )

    def bind(self, schema: Any) -> tuple[Any, Any]:
        """(decc constraint, llguidance grammar); raises `Refused` when either engine declines the schema."""
        from decc.errors import DeccError

        try:
            constraint = self.grammars.json_schema(schema, self.vocab)
        except DeccError as e:
            raise Refused(f"decc: {str(e).splitlines()[0]}") from None
        try:
            grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, defaults=LLG_DEFAULTS)
        except Exception as e:
            raise Refused(f"llguidance: {e}") from None
        probe = self.llg.LLMatcher(self.llg_tok, grammar, log_level=0)
        if probe.is_error():
            raise Refused(f"llguidance: {probe.get_error().splitlines()[0]}")
        return constraint, grammar

    def compare(self, schema: Any, bound: tuple[Any, Any], instance: Any) -> Walk:
        constraint, grammar = bound
        lay = layout(instance)
        walker = SchemaWalk(schema)
        tokens = encode(self.tok, lay.text.decode())
        d, g = constraint.matcher(), self.llg.LLMatcher(self.llg_tok, grammar, log_level=0)
        words = (self.size + 31) // 32
        row_d = self.torch.zeros(words, dtype=self.torch.int32)
        row_g = self.torch.zeros((1, words), dtype=self.torch.int32)
        result = Walk()
        offset = 0
        for step, t in enumerate([*tokens, None]):
            d.fill_bitmask(row_d)
            self.fill_llg(g, row_g, 0)
            md, mg = _bits(row_d, self.size), _bits(row_g[0], self.size)
            result.steps += 1
            if not np.array_equal(md, mg):
                self._judge(step, offset, lay, walker, g, md, mg, result)
            if t is None:
                break
            if not (md[t] and mg[t]):
                result.stopped = f"token {step} {self.token_bytes[t]!r} not allowed by both: walk ends"
                break
            ok_d, ok_g = d.advance(t), g.consume_token(t)
            if not (ok_d and ok_g):
                result.stopped = f"token {step}: advance decc {ok_d}, llguidance {ok_g}"
                break
            offset += len(self.token_bytes[t])
        return result

    def _judge(
        self, step: int, offset: int, lay: Layout, walker: SchemaWalk, g: Any, md: Any, mg: Any, out: Walk
    ) -> None:
        decc_only = [int(i) for i in np.flatnonzero(md & ~mg)]
        llg_only = [int(i) for i in np.flatnonzero(mg & ~md)]
        forced = bytes(g.compute_ff_bytes())
        at = Context(offset, lay, walker, forced)
        rest_d, names_d = sift(decc_only, self.token_bytes, at, DECC_ONLY, g, self.tok)
        rest_g, names_g = sift(llg_only, self.token_bytes, at, LLG_ONLY, g, self.tok)
        for name in names_d | names_g:  # steps each filter explained something at
            out.explained[name] = out.explained.get(name, 0) + 1
        if rest_d or rest_g:
            out.unexplained.append(
                Disagreement(
                    step,
                    lay.text[:offset].decode(errors="replace")[-80:],
                    tuple(self._show(rest_d)),
                    tuple(self._show(rest_g)),
                    len(rest_d),
                    len(rest_g),
                )
            )

    def _show(self, ids: list[int]) -> Iterator[str]:
        for t in ids[:6]:
            yield "<EOS>" if t == self.eos else repr(self.token_bytes[t].decode(errors="replace"))


class Refused(Exception):
    """One of the engines declines the schema: nothing to compare."""


def _bits(row: Any, size: int) -> np.ndarray:
    return np.unpackbits(row.numpy().view(np.uint8), bitorder="little")[:size].astype(bool)


# -- command line: the comparison over a MaskBench sample ----------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m maskbench.differential DIR --sample N --seed S` (from benchmarks/): every valid, in-order
    instance of a seeded sample, compared step by step; one line per schema with a disagreement or a crash,
    then the totals, per filter too."""
    import argparse
    import signal
    from collections import Counter
    from pathlib import Path

    import decc
    from decc.runtime.model import model_facts

    from .data import load_rows, sample_files

    ap = argparse.ArgumentParser(description="decc's token masks against llguidance's on MaskBench")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sample", type=int, default=100, help="files drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per schema (decc's compile)")
    args = ap.parse_args(argv)
    size, eos = model_facts("default")
    diff = Differential(decc.load_tokenizer(), size, min(eos))
    rows, problems = load_rows(sample_files(args.folder, args.sample, args.seed), SEPS)

    def alarm(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"more than {args.timeout:g} s")

    signal.signal(signal.SIGALRM, alarm)
    totals: Counter = Counter()
    filters: Counter = Counter()
    for row in rows:
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            bound = diff.bind(row.schema)
            walks = [
                diff.compare(row.schema, bound, json.loads(i.text))
                for i in row.instances
                if i.valid and not i.out_of_order
            ]
        except Refused:
            totals["refused by either"] += 1
            continue
        except (
            Exception
        ) as e:  # a crash of either engine (decc's internal errors included), or the time limit
            totals["crash or timeout"] += 1
            print(f"{row.file}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        totals["compared"] += 1
        totals["steps"] += sum(w.steps for w in walks)
        for w in walks:
            filters.update(w.explained)
        bad = [d for w in walks for d in w.unexplained]
        if bad:
            totals["with unexplained disagreements"] += 1
            print(f"{row.file}: {len(bad)} steps disagree; first: {bad[0]}")
    print(f"{len(rows)} schemas: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print("steps each filter explained: " + ", ".join(f"{k} {v}" for k, v in sorted(filters.items())))
    for p in problems:
        print(f"- {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
