"""What the context holds before each step, checked at compile time rather than found by a run: a step
that opens the context needs the model's start token, and a step whose `max_tokens` cannot fit in the
model's context is refused at its `max_tokens` (both failed at run time, the second with no position,
once the model wrote that long).

The context before a step holds at least the tokens of the literal text pieces on its path (each piece is
encoded on its own, as the executor encodes it; a piece with a variable counts 0) and at least one token
(the start token before a program that opens with a gen). Drawing the step's last token needs the tokens
before it fed to the model: `before + max_tokens - 1` of them. Earlier values count 0 tokens, so this is a
lower bound: a program it refuses would fail for every input once the value runs to `max_tokens`."""

from __future__ import annotations

from typing import Any

from decc.compiler.plan import PlanBranch, PlanGen, PlanText, Step
from decc.errors import DeccError
from decc.grammars.tokens.vocab import encode_in_context


def check_context(
    steps: tuple[Step, ...], tokenizer: Any, add_special_tokens: bool, limit: int | None
) -> None:
    """`limit`: the most tokens the model reads (None: unknown, not checked)."""
    _walk(steps, tokenizer, add_special_tokens, limit, 0, True)


def _walk(
    steps: tuple[Step, ...], tok: Any, special: bool, limit: int | None, before: int, first: bool
) -> None:
    """Check the gens of `steps`, which come after at least `before` tokens (`first`: after no text)."""
    for step in steps:
        if isinstance(step, PlanText):
            if all(isinstance(p, str) for p in step.parts):
                text = "".join(str(p) for p in step.parts)
                ids = tok.encode(text, add_special_tokens=special) if first else encode_in_context(tok, text)
                before += len(ids)
            first = False
        elif isinstance(step, PlanGen):
            if first and getattr(tok, "bos_token_id", None) is None:
                raise DeccError(
                    f"'{step.name}' is generated before any text, and this model has no start token",
                    step.span,
                    hints=["put a prompt before the first gen"],
                )
            if limit is not None:
                _check_limit(step, max(before, 1), limit)
            first = False
        else:
            assert isinstance(step, PlanBranch)
            for body in (*(b for _, b in step.cases), step.otherwise):
                _walk(body, tok, special, limit, before, first)


def _check_limit(step: PlanGen, before: int, limit: int) -> None:
    max_tokens = step.rules.max_tokens
    if before + max_tokens - 1 <= limit:
        return
    written = step.max_tokens_span is not None
    fits = limit - before + 1
    raise DeccError(
        f"max_tokens is {max_tokens}, but the model reads at most {limit} tokens and the context before "
        f"'{step.name}' already holds at least {before}",
        step.max_tokens_span or step.span,
        notes=[] if written else [f"{max_tokens} is the default max_tokens"],
        hints=[f"lower max_tokens to at most {fits}" if fits >= 1 else "shorten the text before it"],
    )
