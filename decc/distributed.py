"""Datasets on a Ray cluster: `decc run FILE --inputs data.jsonl --out results.jsonl --ray` and `run_on_ray`.

The program is compiled and planned once, on the driver (so a bad program or model fails there, at its
source position, before any actor starts); a Ray Data actor pool (`map_batches` with an actor class and
`ActorPoolStrategy`) ships it to actors that each load the model once and run `Program.run_batch` over
their share of the rows. Rows travel keyed by their index, so the order results come back in does not
matter; the driver receives them as they finish (it alone writes the results file, see decc/batch_io.py).
An error in one row is that row's error: the other rows of its batch still run. The same code runs on a
local Ray, on a multi-node cluster (`address`), and on GPUs when actors ask for them (`gpus_per_actor`).
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from decc.errors import DeccError

if TYPE_CHECKING:
    from decc.api import Program, Result

__all__ = ["ActorFailed", "RayResults", "RayRunner", "RowError", "run_on_ray"]

INSTALL_HINT = "install the extra: pip install 'decc[ray]'"


@dataclass(frozen=True)
class RowError:
    """Why one input row failed: its index and the rendered error (a user error's diagnostic, or an
    internal error named as such)."""

    index: int
    message: str
    internal: bool = False


@dataclass
class RayResults:
    """What `run_on_ray` gives back, by input index: each row's `Result` or `RowError`, and the Ray node
    (its id) that ran it."""

    results: dict[int, Result] = field(default_factory=dict)
    errors: dict[int, RowError] = field(default_factory=dict)
    nodes: dict[int, str] = field(default_factory=dict)


def run_on_ray(
    program: Program,
    inputs: Sequence[Mapping[str, Any]] | Mapping[int, Mapping[str, Any]],
    *,
    address: str | None = None,
    actors: int = 2,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    batch_size: int = 8,
    on_result: Callable[[int, Result], None] | None = None,
    on_error: Callable[[RowError], None] | None = None,
    quiet: bool = False,
) -> RayResults:
    """Run `program` once per input on a Ray actor pool: `actors` actors, each with `cpus_per_actor` CPUs
    and `gpus_per_actor` GPUs, loading the model once and decoding `batch_size` rows together.

    `inputs` is a list (rows keyed 0, 1, ...) or a mapping of index -> row (the rows still to do of a
    dataset). Results arrive in any order; `on_result(index, result)` and `on_error(row_error)` are called
    on the driver as they do; the returned `RayResults` holds them all. Uses the Ray this
    process is connected to, else connects to `address` (None: as `ray.init()`, the Ray `ray start` runs on
    this machine, else a new local Ray, shut down afterwards).
    `quiet` keeps Ray's own log lines (INFO and WARNING) off stderr, as the command line does."""
    rows = dict(enumerate(inputs)) if isinstance(inputs, Sequence) else dict(inputs)
    for name, value, least in (("actors", actors, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DeccError(f"{name} must be an integer of at least {least}, not {value!r}")
    for name, value in (("gpus_per_actor", gpus_per_actor), ("cpus_per_actor", cpus_per_actor)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise DeccError(f"{name} must be a number of at least 0, not {value!r}")
    ray = _ray()
    if address is not None and not ray.is_initialized():
        _reachable(address)
    program.plan()  # compile for the tokenizer here: a bad program or model fails before any actor starts
    out = RayResults()
    if not rows:
        return out
    started = _connect(ray, address, quiet)
    try:
        if started and address is None and not os.environ.get("RAY_ADDRESS"):  # a Ray of our own
            _fits(ray.cluster_resources(), actors, cpus_per_actor, gpus_per_actor)
        for index, got, node in _results(
            ray, program, rows, actors, gpus_per_actor, cpus_per_actor, batch_size
        ):
            out.nodes[index] = node
            if isinstance(got, RowError):
                out.errors[index] = got
                if on_error is not None:
                    on_error(got)
            else:
                out.results[index] = got
                if on_result is not None:
                    on_result(index, got)
    finally:
        if started:
            ray.shutdown()
    return out


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise DeccError("--ray needs Ray Data, which is not installed", hints=[INSTALL_HINT]) from None
    return ray


def _connect(ray: Any, address: str | None, quiet: bool) -> bool:
    """Connect to `address` (or start a local Ray) unless already connected; True when this started it."""
    import logging

    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the command line draws its own bar of rows
        ctx.print_on_execution_start = False
    if ray.is_initialized():
        return False
    level = logging.ERROR if quiet else logging.WARNING
    try:
        ray.init(address=address, logging_level=level, include_dashboard=False, log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:  # auth too
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise DeccError(
            f"cannot connect to {where}: {err}",
            hints=[
                "start it with `ray start --head`, or check --address HOST:PORT",
                "a cluster with token authentication needs RAY_AUTH_MODE=token and its token "
                "(RAY_AUTH_TOKEN or ~/.ray/auth_token, from `ray get-auth-token`)",
            ],
        ) from None
    return True


def _fits(have: Mapping[str, float], actors: int, cpus: float, gpus: float) -> None:
    """A local Ray cannot grow: an actor pool larger than this machine would wait for ever, so refuse it."""
    for kind, each, flag in (("CPU", cpus, "--cpus-per-actor"), ("GPU", gpus, "--gpus-per-actor")):
        if actors * each > have.get(kind, 0):
            raise DeccError(
                f"the actors need {actors * each:g} {kind}s ({actors} x {each:g}); this machine's local Ray "
                f"has {have.get(kind, 0):g}",
                hints=[f"lower --actors or {flag}, or give --address of a cluster that has them"],
            )


def _reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on fails in seconds, not after Ray's long retries."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        if address == "auto" or "://" in address:
            return  # Ray's own forms: the running cluster, ray://HOST:PORT (Ray Client)
        raise DeccError(f"--address expects HOST:PORT (or auto), not {address!r}")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as err:
        raise DeccError(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err}",
            hints=["start its head node with `ray start --head --port PORT`, or check --address"],
        ) from None


def _results(
    ray: Any,
    program: Program,
    rows: dict[int, Mapping[str, Any]],
    actors: int,
    gpus: float,
    cpus: float,
    batch_size: int,
) -> Iterator[tuple[int, Result | RowError, str]]:
    """(index, result or error, node id) as the actors finish them."""
    from ray.data import ActorPoolStrategy

    # The program travels once through the object store; each actor fetches it (constructor args stay small).
    shipped = [ray.put(program)]
    items = [{"index": i, "inputs": pickle.dumps(dict(row))} for i, row in rows.items()]
    # Enough blocks that every actor gets work, small enough that results stream back as they finish.
    blocks = min(len(items), max(actors * 4, -(-len(items) // batch_size)))
    ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        RayRunner,
        fn_constructor_kwargs={"shipped": shipped, "batch_size": batch_size},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for index, result, node in zip(batch["index"], batch["result"], batch["node"], strict=True):
                got = pickle.loads(result)
                if isinstance(got, ActorFailed):  # no row can run: stop with the actor's own error
                    raise got.error
                yield int(index), got, str(node)
    except ray.exceptions.RayError as err:
        raise _actor_failure(err) from None


def _actor_failure(err: BaseException) -> DeccError:
    """Ray's own failures (a node or actor lost beyond Ray's retries): a DeccError naming the first line."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, DeccError):
            return cause
        cause = getattr(cause, "cause", None) or cause.__cause__
    first = str(err).strip().splitlines()
    hints = []
    if "No module named 'decc" in str(err):
        hints.append("every node needs the same decc installed (pip install 'decc[ray]')")
    return DeccError(f"the Ray actors failed: {first[0] if first else type(err).__name__}", hints=hints)


@dataclass(frozen=True)
class ActorFailed:
    """An actor could not load the model (e.g. no GPU on its node): the error, raised again on the driver.

    Ray would report an exception raised while an actor starts as a string holding its traceback; carried
    as a result instead, a DeccError reaches the user as a DeccError."""

    error: BaseException


class RayRunner:
    """One actor of the pool: the program (compiled on the driver) and its model, loaded once."""

    def __init__(self, shipped: list[Any], batch_size: int) -> None:
        import ray

        self.program: Program = ray.get(shipped[0])  # in a list, so Ray passes the reference as it is
        self.batch_size = batch_size
        self.node = ray.get_runtime_context().get_node_id()
        self.failed: ActorFailed | None = None
        try:
            self.program.language_model()
        except Exception as err:  # noqa: BLE001 - reported on the driver (see ActorFailed)
            self.failed = ActorFailed(_picklable(err))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        indices = [int(i) for i in batch["index"]]
        if self.failed is not None:
            failed = pickle.dumps(self.failed)
            return {"index": indices, "result": [failed] * len(indices), "node": [self.node] * len(indices)}
        rows = [pickle.loads(b) for b in batch["inputs"]]
        got: dict[int, Any] = {}
        try:
            self.program.run_batch(rows, batch_size=self.batch_size, on_result=got.__setitem__)
        except Exception:  # noqa: BLE001 - find the row(s) at fault: each left runs alone
            for k, row in enumerate(rows):
                if k not in got:
                    got[k] = self._alone(indices[k], row)
        results = [pickle.dumps(got[k]) for k in range(len(rows))]
        return {"index": indices, "result": results, "node": [self.node] * len(rows)}

    def _alone(self, index: int, row: Mapping[str, Any]) -> Any:
        try:
            return self.program.run_batch([row], batch_size=1)[0]
        except DeccError as err:
            alone = "input row 1: "  # run_batch names the row by its place in this one-row batch
            body = err.message[len(alone) :] if err.message.startswith(alone) else err.message
            err.message = f"input row {index + 1}: {body}"
            return RowError(index, err.render())
        except Exception as err:  # noqa: BLE001 - a bug in decc, reported for its row only
            message = f"decc: internal error: input row {index + 1}: {type(err).__name__}: {err}"
            return RowError(index, message, internal=True)


def _picklable(err: BaseException) -> BaseException:
    """`err`, or a RuntimeError with its text when it cannot travel to the driver."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any failure to round-trip
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err
