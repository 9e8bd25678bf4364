"""Streaming: each value's text arrives as it is decoded, never text a stop cuts later, and the pieces of a
value add up to the value that `run` returns."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decc
from decc.grammars import regex
from decc.runtime.decode import DecodeSession
from decc.runtime.detokenize import TextStream
from decc.runtime.executor import Result
from decc.runtime.sampling import SamplingParams

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.text("ab.\n", max_size=3), max_size=12),
    stops=st.lists(st.text("ab.\n", min_size=1, max_size=3), max_size=3),
)
def test_a_text_stream_never_sends_what_a_stop_cuts(chunks, stops) -> None:
    """Text grows chunk by chunk as a decode loop sees it; at the first stop the value is cut there. What
    was sent is at every moment a beginning of the final value, and in the end all of it."""
    sent: list[str] = []
    stream = TextStream(sent.append, stops)
    text = ""
    final = None
    for chunk in chunks:
        text += chunk
        hits = [i for s in stops if (i := text.find(s)) >= 0]
        if hits:
            final = text[: min(hits)]
            break
        stream.update(text)
        assert "".join(sent) == text[: len("".join(sent))]
        assert not any(s in "".join(sent) for s in stops)
    final = text if final is None else final
    assert final.startswith("".join(sent))
    stream.finish(final)
    assert "".join(sent) == final
    assert all(sent)  # no empty pieces


def test_a_stop_regex_holds_the_whole_value_back() -> None:
    sent: list[str] = []
    stream = TextStream(sent.append, (), stop_regex=True)
    stream.update("abc")
    assert sent == []
    stream.finish("ab")
    assert sent == ["ab"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=st.text("abc", min_size=1, max_size=3),
    stops=st.lists(st.text("abc", min_size=1, max_size=2), max_size=2),
    pattern=st.sampled_from([None, r"(ab|c)+", r"[abc]{2,5}"]),
    seed=st.integers(0, 5),
    heal=st.booleans(),
)
def test_the_decode_loop_streams_its_value(toy_lm, one_thread, prompt, stops, pattern, seed, heal) -> None:
    """Toy model: sampling with stop strings, a constraint, healing or not: the pieces add up to the value
    and the value is what the loop gives without streaming."""
    from decc.grammars.tokens.healing import HealingMatcher

    vocab = toy_lm.tokenizer.vocabulary()

    def generate(on_text):  # type: ignore[no-untyped-def]
        session = DecodeSession(toy_lm)
        ids = toy_lm.tokenizer.encode(prompt, add_special_tokens=True)
        session.append(ids)
        matcher = regex(pattern, vocab).matcher() if pattern is not None else None
        if heal:
            removed = vocab.token_bytes[session.take_last()] or b""
            matcher = HealingMatcher(removed, matcher, vocab)
        sampling = SamplingParams(greedy=False, seed=seed)
        return session.generate(max_tokens=8, sampling=sampling, matcher=matcher, stop=stops, on_text=on_text)

    pieces: list[str] = []
    gen = generate(pieces.append)
    assert "".join(pieces) == gen.text
    assert gen == generate(None)


def collect(events: list) -> tuple[dict[str, str], Result]:
    """The pieces joined per name, and the final result (the last event, and the only Result)."""
    *chunks, final = events
    assert isinstance(final, Result) and not any(isinstance(c, Result) for c in chunks)
    joined: dict[str, str] = defaultdict(str)
    for name, piece in chunks:
        joined[name] += piece
    return dict(joined), final


PROGRAMS = {
    "greedy": '"The three primary colours are"\ngen a { max_tokens: 10 }\n". And then"\ngen b { max_tokens: 6 }',
    "sample_stops": '"Tell me about the weather in London."\ngen text { max_tokens: 30, stop: [" rain", "."], '
    "search: sample(temperature=0.9, seed=5) }",
    "json": '"A person as JSON: "\ngen person { where: json(r"""{"type": "object", "properties": {"name": '
    '{"type": "string", "maxLength": 12}, "age": {"type": "integer"}}, "required": ["name", "age"]}"""), '
    "max_tokens: 40 }",
    "beam": '"The capital of Italy is"\ngen city { max_tokens: 4, search: beam(width=2) }',
    "stop_regex": '"Count: one, two,"\ngen more { max_tokens: 12, stop_regex: r"f[a-z]+," }',
}


@pytest.mark.model
@pytest.mark.parametrize("kind", sorted(PROGRAMS))
def test_streamed_pieces_add_up_to_the_values_run_returns(kind: str) -> None:
    program = decc.loads(PROGRAMS[kind])
    events = list(program.stream())
    joined, final = collect(events)
    expected = program.run()
    assert final.values == expected.values and final.token_ids == expected.token_ids
    assert final.text == expected.text
    assert joined == final.values
    names = [name for name, piece in events[:-1] if piece == ""]
    assert names == list(final.values)  # each step announced once, in order, before its text
    if kind == "beam":  # a search policy knows its value only at the end: one piece
        assert [p for _, p in events[:-1] if p] == [final.values["city"]]
    if kind in ("sample_stops", "stop_regex"):  # a stop cut these values (the stop's text never streamed)
        assert [s.finish_reason for s in final.steps.values()] == ["stop"]
    if kind in ("greedy", "sample_stops"):  # the text came token by token, not at the end
        assert len([p for _, p in events[:-1] if p]) > len(final.values)


@pytest.mark.model
def test_stream_errors_reach_the_caller_and_an_early_stop_ends_the_run() -> None:
    program = decc.loads('input x: int\n"Hi {x}"\ngen a { max_tokens: 30 }')
    with pytest.raises(decc.DeccError, match="missing input 'x'"):
        list(program.stream())
    events = program.stream(x=3)
    first = next(events)
    assert first == ("a", "")
    events.close()  # the worker ends at its next piece; nothing hangs


@pytest.mark.model
def test_cli_stream_prints_what_the_plain_run_prints(tmp_path: Path) -> None:
    path = tmp_path / "two.dec"
    path.write_text(PROGRAMS["greedy"] + '\n"!"\ngen c { max_tokens: 3, where: regex(r"[0-9]?") }\n')
    cmd = [sys.executable, "-m", "decc", "run", str(path)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    streamed = subprocess.run([*cmd, "--stream"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert plain.returncode == 0 and streamed.returncode == 0, plain.stderr + streamed.stderr
    assert streamed.stdout == plain.stdout
    assert plain.stdout.startswith("a: ") and "\nb: " in plain.stdout and "\nc: " in plain.stdout
