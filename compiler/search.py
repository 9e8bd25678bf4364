"""Typed reading of `search:` policies, their scores and potentials (rewards), and `stop_entropy:`.

greedy | sample(temperature=, top_k=, top_p=, min_p=, typical_p=, seed=)
beam(width=, length_penalty=, early_stopping=)
diverse_beam(width=, groups=, diversity=, length_penalty=, early_stopping=)
best_of(n=, score=REWARD, <sampling args>)
first_finish(n=, <sampling args>)
smc(particles=, potential=REWARD, ess_threshold=, resampling="multinomial"|"systematic", <sampling args>)

REWARD: logprob | length | keyword("a", ...) | regex(r"...") | json_valid(r"{schema}" or file=)
      | python("module:function") | classifier("path/to/model", label=)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from decc.compiler import ir
from decc.compiler.options import (
    as_bool,
    as_choice,
    as_float,
    as_int,
    as_python_regex,
    as_str,
    describe,
    folder_of,
    keywords_only,
    kwargs_of,
)
from decc.compiler.trust import Trust, check_file_allowed, import_object, resolve_module
from decc.dsl import ast
from decc.errors import DeccError, Span, unknown

POLICIES = ("greedy", "sample", "beam", "diverse_beam", "best_of", "first_finish", "smc")
SAMPLE_ARGS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "seed")
BEAM_ARGS = ("width", "length_penalty", "early_stopping")
DIVERSE_ARGS = (*BEAM_ARGS, "groups", "diversity")
REWARDS = ("logprob", "length", "keyword", "regex", "json_valid", "python", "classifier")
RESAMPLING = ("multinomial", "systematic")
MODES = ("masked", "aligned")


def _as_call(e: ast.Expr, expected: str) -> ast.Call:
    """`name` or `name(...)` as a call: policies and rewards may leave out empty parentheses."""
    if isinstance(e, ast.NameRef):
        return ast.Call(ast.Name(e.name, e.span), (), (), e.span)
    if isinstance(e, ast.Call):
        return e
    raise DeccError(f"{expected}, not {describe(e)}", e.span)


def search(e: ast.Expr, base_dir: Path, trust: Trust) -> ir.Search:
    call = _as_call(e, "'search' takes a policy such as greedy or sample(...)")
    name, span = call.func.value, call.func.span
    if name not in POLICIES:
        raise unknown("search policy", name, span, POLICIES)
    if name == "greedy":
        if call.args or call.kwargs:
            raise DeccError("greedy takes no arguments", (call.args or call.kwargs)[0].span)
        return ir.Sampling()
    if name == "sample":
        return _sampling(keywords_only(call, SAMPLE_ARGS, "sample(temperature=0.7)"))
    if name in ("beam", "diverse_beam"):
        allowed = BEAM_ARGS if name == "beam" else DIVERSE_ARGS
        kw = keywords_only(call, allowed, f"{name}(width=4)")
        width = _required(kw, "width", call, lambda v: as_int(v, "width", minimum=1))
        groups = (
            as_int(kw["groups"], "groups", minimum=1)
            if "groups" in kw
            else (2 if name == "diverse_beam" else 1)
        )
        if width % groups:
            raise DeccError(
                f"width {width} must be a multiple of groups {groups}", kw.get("groups", call).span
            )
        diversity = (
            as_float(kw["diversity"], "diversity") if "diversity" in kw else (0.5 if groups > 1 else 0.0)
        )
        if diversity < 0:
            raise DeccError(
                f"diversity must be at least 0, not {diversity:g}",
                kw["diversity"].span,
                hints=["0 is plain beam search; try 0.5"],
            )
        return ir.Beam(
            width=width,
            length_penalty=as_float(kw["length_penalty"], "length_penalty")
            if "length_penalty" in kw
            else 1.0,
            early_stopping=as_bool(kw["early_stopping"], "early_stopping")
            if "early_stopping" in kw
            else False,
            groups=groups,
            diversity=diversity,
        )
    if name == "best_of":
        kw = keywords_only(call, ("n", "score", *SAMPLE_ARGS), "best_of(n=4, score=logprob)")
        n = _required(kw, "n", call, lambda v: as_int(v, "n", minimum=1))
        score = reward(kw["score"], base_dir, trust) if "score" in kw else ir.Reward("logprob", (), call.span)
        return ir.BestOfN(n, score, _sampling(kw))
    if name == "first_finish":
        kw = keywords_only(call, ("n", *SAMPLE_ARGS), "first_finish(n=4)")
        n = _required(kw, "n", call, lambda v: as_int(v, "n", minimum=1))
        return ir.FirstFinish(n, _sampling(kw))
    kw = keywords_only(
        call, ("particles", "potential", "ess_threshold", "resampling", *SAMPLE_ARGS), "smc(particles=8)"
    )
    particles = _required(kw, "particles", call, lambda v: as_int(v, "particles", minimum=1))
    ess = as_float(kw["ess_threshold"], "ess_threshold") if "ess_threshold" in kw else 0.5
    if not 0 <= ess <= 1:
        raise DeccError(
            f"ess_threshold must be in [0, 1], not {ess:g}",
            kw["ess_threshold"].span,
            hints=["it is a fraction of the particles; 0.5 is usual"],
        )
    scheme = (
        as_choice(kw["resampling"], "resampling scheme", RESAMPLING) if "resampling" in kw else "multinomial"
    )
    potential = reward(kw["potential"], base_dir, trust) if "potential" in kw else None
    return ir.SMC(particles, potential, ess, scheme, _sampling(kw))


def _required(kw: dict[str, ast.Expr], key: str, call: ast.Call, read):  # type: ignore[no-untyped-def]
    if key not in kw:
        raise DeccError(f"{call.func.value}(...) needs {key}=", call.span)
    return read(kw[key])


def _sampling(kw: dict[str, ast.Expr]) -> ir.Sampling:
    values = {k: _sample_arg(k, v) for k, v in kw.items() if k in SAMPLE_ARGS}
    temperature = float(values.get("temperature", 1.0))
    return ir.Sampling(
        greedy=temperature == 0.0,
        temperature=temperature,
        top_k=int(values.get("top_k", 0)),
        top_p=float(values.get("top_p", 1.0)),
        min_p=float(values.get("min_p", 0.0)),
        typical_p=float(values.get("typical_p", 1.0)),
        seed=int(values["seed"]) if "seed" in values else None,
    )


def _sample_arg(key: str, e: ast.Expr) -> float | int:
    if key == "temperature":
        t = as_float(e, "temperature")
        if t < 0:
            raise DeccError(
                f"temperature must be at least 0, not {t:g}",
                e.span,
                hints=["0 is greedy; 1 samples the model as is"],
            )
        return t
    if key in ("top_p", "typical_p"):
        p = as_float(e, key)
        if not 0 < p <= 1:
            raise DeccError(f"{key} must be in (0, 1], not {p:g}", e.span, hints=[f"{key}=1 turns it off"])
        return p
    if key == "min_p":
        p = as_float(e, key)
        if not 0 <= p < 1:
            raise DeccError(f"min_p must be in [0, 1), not {p:g}", e.span, hints=["min_p=0 turns it off"])
        return p
    if key == "top_k":
        return as_int(e, "top_k", minimum=0)
    return as_int(e, "seed", minimum=0)


def reward(e: ast.Expr, base_dir: Path, trust: Trust) -> ir.Reward:
    """A score or potential: a built-in by name or call, a Python callable, or a local classifier."""
    from decc.compiler.constraints import json_constraint

    call = _as_call(e, 'a score must be a reward such as logprob or keyword("...")')
    name = call.func.value
    if name not in REWARDS:
        raise unknown("reward", name, call.func.span, REWARDS)
    if name in ("logprob", "length"):
        if call.args or call.kwargs:
            raise DeccError(f"{name} takes no arguments", call.span)
        return ir.Reward(name, (), call.span)
    if name == "keyword":
        if call.kwargs or not call.args:
            raise DeccError('keyword(...) takes one or more strings, e.g. keyword("Paris")', call.span)
        return ir.Reward(name, tuple(as_str(a, "a keyword").value for a in call.args), call.span)
    if name == "regex":
        if call.kwargs or len(call.args) != 1:
            raise DeccError("regex(...) takes exactly one pattern string", call.span)
        lit, _ = as_python_regex(call.args[0], "a regex pattern", "regex")
        return ir.Reward(name, (lit.value,), call.span)
    if name == "json_valid":
        schema = json_constraint(
            ast.Call(ast.Name("json", call.func.span), call.args, call.kwargs, call.span), base_dir, trust
        )
        return ir.Reward(name, (schema.schema,), call.span)
    if (call.kwargs and name == "python") or len(call.args) != 1:
        what = 'python("module:function")' if name == "python" else 'classifier("path/to/model", label=1)'
        raise DeccError(f"{name}(...) takes one string, e.g. {what}", call.span)
    lit = as_str(call.args[0], "a callable" if name == "python" else "a model path")
    if name == "python":
        fn = _python_callable(lit, base_dir, trust)
        if fn is not None and not callable(fn):
            raise DeccError(f"'{lit.value}' is not callable", lit.span)
        return ir.Reward(name, (lit.value,), call.span, fn=fn)
    kw = {k: a.value for k, a in kwargs_of(call, ("label",), "classifier").items()}
    path = check_file_allowed(folder_of(lit, base_dir) / lit.value, lit, base_dir, trust, "classifier folder")
    if not path.is_dir():
        raise DeccError(
            f"no model folder at '{lit.value}'",
            lit.span,
            hints=["a local folder with config.json and weights"],
        )
    label = as_int(kw["label"], "label", minimum=0) if "label" in kw else 1
    _check_label(path, lit, label, kw["label"].span if "label" in kw else call.span, "label" in kw)
    return ir.Reward(name, (str(path), label), call.span)


def _check_label(path: Path, lit: ast.StrLit, label: int, span: Span, given: bool) -> None:
    """The classifier's labels from its config.json (no weights loaded), so that a label it does not have
    is refused here, at the program, rather than when the run loads the model."""
    from decc.compiler.constraints import read_file

    if not (path / "config.json").is_file():
        raise DeccError(
            f"no config.json in the classifier folder '{lit.value}'",
            lit.span,
            hints=["a local sequence-classification model folder, as save_pretrained writes it"],
        )
    try:
        config = json.loads(read_file(path / "config.json", lit))
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise DeccError(f"the config.json of the classifier '{lit.value}' is not a JSON object", lit.span)
    names = config.get("id2label")
    if isinstance(names, dict) and names:
        labels = {int(k): str(v) for k, v in names.items() if str(k).isdigit()}
    else:  # transformers' default: two labels
        count = config.get("num_labels", 2)
        labels = {i: str(i) for i in range(count if isinstance(count, int) and count > 0 else 2)}
    if label not in labels:
        listed = ", ".join(f"{i} ({n})" if n != str(i) else str(i) for i, n in sorted(labels.items()))
        raise DeccError(
            f"the classifier '{lit.value}' has {len(labels)} labels; label {label} is not one of them",
            span,
            notes=[] if given else ["label defaults to 1"],
            hints=[f"its labels: {listed}"],
        )


def _python_callable(lit: ast.StrLit, base_dir: Path, trust: Trust) -> Any:
    """The callable `lit` names as `module:function` (a dotted module beside the program, on `python_path`,
    or installed with `allow_installed`), imported only with `allow_imports` (None otherwise: found
    statically); a path such as "../x:f" gets a positioned error saying what is accepted."""
    folder = folder_of(lit, base_dir).resolve()
    where = f"modules are found in the program's folder ({folder})"
    module, sep, attr = lit.value.partition(":")
    dotted = all(p.isidentifier() for p in module.split(".")) and not module.endswith(".py")
    if not (sep and dotted and all(p.isidentifier() for p in attr.split("."))):
        stem = Path(module).name.lstrip(".").removesuffix(".py")
        hints = [where]
        if sep and stem.isidentifier() and stem != module:
            hints.insert(0, f'put {stem}.py in that folder and write python("{stem}:{attr}")')
        raise DeccError(
            f"python(...) takes 'module:function' with a dotted module name, not {json.dumps(lit.value)}",
            lit.span,
            hints=hints,
        )
    if not trust.allow_imports:
        resolve_module(lit, base_dir, trust, "a Python callable")
        return None
    return import_object(lit, base_dir, trust, "a Python callable")


def policy_name(policy: ir.Search) -> str:
    """The name a program writes for `policy` (a `let` may have named it otherwise)."""
    if isinstance(policy, ir.Sampling):
        return "greedy" if policy.greedy else "sample"
    if isinstance(policy, ir.Beam):
        return "beam" if policy.groups == 1 else "diverse_beam"
    return {ir.BestOfN: "best_of", ir.FirstFinish: "first_finish", ir.SMC: "smc"}[type(policy)]


def mode(e: ast.Expr, policy: ir.Search, has_constraint: bool, search: ast.Option | None = None) -> bool:
    """`mode: masked` (per-step masking, the default) or `mode: aligned` (ASAp): whether it is aligned.
    `search` is the step's `search:` option, named in the refusals."""
    if isinstance(e, ast.NameRef):
        name, span = e.name, e.span
    elif isinstance(e, ast.StrLit):
        name, span = e.value, e.span
    else:
        raise DeccError(f"'mode' takes masked or aligned, not {describe(e)}", e.span)
    if name not in MODES:
        raise unknown("constraint mode", name, span, MODES)
    if name == "aligned" and not has_constraint:
        raise DeccError("mode: aligned needs a constraint to align to", span, hints=["add 'where: ...'"])
    if name == "aligned" and not isinstance(policy, ir.Sampling):
        raise DeccError(
            f"mode: aligned is not supported with {policy_name(policy)}(...): it applies to greedy and "
            "sample(...), which draw one value",
            span,
            notes=[f"the search policy is at {search.value.span}"] if search is not None else [],
            hints=["smc(...) corrects the masking bias with importance weights instead"],
        )
    if name == "aligned" and isinstance(policy, ir.Sampling):
        truncating = [
            k
            for k, on in (
                ("top_k", policy.top_k > 0),
                ("top_p", policy.top_p < 1),
                ("min_p", policy.min_p > 0),
                ("typical_p", policy.typical_p < 1),
            )
            if on
        ]
        if truncating:
            raise DeccError(
                f"mode: aligned samples the model's own distribution; {', '.join(truncating)} would cut it "
                "before the constraint is applied",
                span,
                hints=["keep temperature, drop the truncations, or use mode: masked"],
            )
    return name == "aligned"


def refuse_unsupported(search: ast.Option | None, policy: ir.Search, entropy: ast.Option | None) -> None:
    """Refuse here, at the option's position, every policy x stop-rule combination the runtime cannot run,
    so `decc check` catches it rather than `decc run` (the runtime keeps the same test as an assertion)."""
    if isinstance(policy, ir.Beam) and entropy is not None:
        assert search is not None
        raise DeccError(
            f"stop_entropy is not supported with {policy_name(policy)}(...): beams are compared token by token and "
            "cannot stop one at a time",
            entropy.key.span,
            notes=[f"the search policy is at {search.value.span}"],
            hints=["use best_of(...), first_finish(...) or smc(...), or remove stop_entropy"],
        )


def stop_entropy(e: ast.Expr) -> ir.Entropy:
    """`above(2.5)` or `below(0.2, steps=3)`: entropy in nats, for `steps` tokens running (default 1)."""
    if not isinstance(e, ast.Call) or e.func.value not in ("above", "below"):
        raise DeccError("stop_entropy takes above(threshold, steps=k) or below(threshold, steps=k)", e.span)
    if len(e.args) != 1:
        raise DeccError(f"{e.func.value}(...) takes one threshold (nats)", e.span)
    threshold = as_float(e.args[0], "an entropy threshold")
    if threshold < 0:
        raise DeccError(
            f"an entropy threshold must be at least 0, not {threshold:g}",
            e.args[0].span,
            hints=["entropy is in nats: 0 is certain, ln(vocabulary size) is uniform"],
        )
    kw = kwargs_of(e, ("steps",), e.func.value)
    steps = as_int(kw["steps"].value, "steps", minimum=1) if "steps" in kw else 1
    return ir.Entropy(e.func.value == "above", threshold, steps)
