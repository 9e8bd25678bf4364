"""One engine in its own process: the parent (runner.py) sends rows, the worker compiles and walks them.

Protocol over a multiprocessing pipe: the worker first sends ("ready", version) or ("broken", why); then for
each (schema, instances) it sends ("refused", message) or ("error", message), or ("compiled", seconds)
followed by ("done", per-instance results, fill seconds, advance seconds). A worker that runs past the
parent's time limit is killed there and started again, so a hung compile cannot block the run.
"""

from __future__ import annotations

import gc
import os
import traceback
import warnings
from typing import Any

ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # decc's own compile deadline is off: the parent's clock decides timeouts, the same for every engine
    "DECC_COMPILE_SECONDS": "none",
}


def load_tokenizer(name: str) -> tuple[Any, int, frozenset[int]]:
    """(tokenizer, logits width, EOS ids) of `name`: "default" is the embedded SmolLM2 (sizes from its
    config); any other name goes to `decc.load_tokenizer(name)`, sized by the tokenizer itself."""
    import decc

    if name == "default":
        from decc.runtime.model import model_facts

        size, eos = model_facts("default")
        return decc.load_tokenizer(), size, eos
    tok = decc.load_tokenizer(name)
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    return tok, len(tok), frozenset(eos)


def first_line(e: BaseException | str) -> str:
    text = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    return (text.strip().splitlines() or [""])[0][:300]


def serve(conn: Any, engine_name: str, tokenizer: str, seps: tuple[str, str]) -> None:
    """The worker's main loop (a `multiprocessing` target; the environment is already one-threaded)."""
    os.environ.update(ONE_THREAD)
    warnings.simplefilter("ignore")
    import torch

    from .engines import Unsupported, bench_clock, encode, make_engine, walk

    torch.set_num_threads(1)
    try:
        tok, size, eos_ids = load_tokenizer(tokenizer)
        engine = make_engine(engine_name, tok, size, frozenset(eos_ids), seps)
    except Exception as e:  # not installed, unknown tokenizer...
        conn.send(("broken", first_line(e)))
        return
    eos = min(eos_ids)
    row = torch.zeros((size + 31) // 32, dtype=torch.int32)
    try:  # first-call overheads (imports, lazy tables) are no schema's compile time
        engine.compile({"type": "object", "properties": {"a": {"type": "string"}}})().fill(row)
    except Exception:
        pass
    # What is loaded by now (tokenizer, torch, the engine's imports and tables) lives as long as the process:
    # frozen out of the cyclic collector, as a server does after start-up (vLLM), so that a full collection
    # in a timed step does not walk it again (~150 ms with SmolLM2's tokenizer). The same for every engine.
    gc.collect()
    gc.freeze()
    conn.send(("ready", engine.version))
    clock = bench_clock()
    while True:
        msg = conn.recv()
        if msg is None:
            return
        schema, texts = msg
        engine.clear_cache()
        try:
            t0 = clock()
            factory = engine.compile(schema)
            factory().fill(row)
            ttfm = clock() - t0
        except Unsupported as e:
            conn.send(("refused", first_line(str(e))))
            continue
        except Exception as e:
            conn.send(("error", first_line(e) + " | " + _where(e)))
            continue
        conn.send(("compiled", ttfm))
        fills: list[float] = []
        advances: list[float] = []
        results = []
        for text in texts:
            tokens = encode(tok, text)
            try:
                why = walk(factory(), tokens, eos, row, fills, advances)
            except Exception as e:
                why = "error: " + first_line(e) + " | " + _where(e)
            results.append((why, len(tokens)))
        conn.send(("done", results, fills, advances))


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
