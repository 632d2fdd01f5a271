"""A generic timer that compares implementations of one computation, and Markdown reporting.

`compare` builds each implementation from a zero-argument factory, warms it up, then times the
implementations round-robin, so that the machine's noise (another process, a frequency change)
falls on all of them alike. `table` turns the samples into a Markdown table of medians and
ratios; `machine_description` says what the numbers were measured on.

Nothing here knows about neural networks: any zero-argument callable can be timed.
"""

from __future__ import annotations

import ast
import gc
import inspect
import os
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np

#: Environment variables that change how many threads the numerical libraries use, or which
#: kernels OpenBLAS picks. `machine_description` reports those that are set.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "XLA_FLAGS",
)

#: Packages whose version `machine_description` reports when a benchmark has imported them.
OPTIONAL_PACKAGES = ("scipy", "threadpoolctl", "autograd", "torch", "jax", "jaxlib")


class BenchmarkUnavailable(Exception):
    """Raised by a factory whose implementation cannot run here, e.g. its package is missing.

    `compare` skips that implementation and records the message as the reason.
    """


class Samples(dict[str, list[float]]):
    """Seconds per call for each implementation that ran, one sample per round, in round order.

    The rounds are paired: sample ``r`` of every implementation was taken in the same round.
    `skipped` maps each implementation that could not run to the reason.
    """

    def __init__(self, samples: Mapping[str, list[float]], skipped: Mapping[str, str]) -> None:
        super().__init__(samples)
        self.skipped = dict(skipped)


def compare(
    factories: Mapping[str, Callable[[], Callable[[], object]]],
    repeats: int,
    inner: int,
    warmup: int = 3,
    threads: int | None = None,
) -> Samples:
    """Time several implementations of the same computation against each other.

    Each factory is called once, with no arguments, and returns the callable to time (a factory
    that raises `BenchmarkUnavailable` is skipped). Every callable is first called `warmup` times
    (compilation, caches, first-touch page faults), then `repeats` rounds are run: in each round
    every implementation is called `inner` times in a row and the mean time of those calls is
    one sample. The order of the implementations rotates from round to round. The garbage
    collector is off while timing, as in `timeit`.

    With `threads`, warm-up and timing run under `limited_threads(threads)`.
    """
    steps: dict[str, Callable[[], object]] = {}
    skipped: dict[str, str] = {}
    for name, factory in factories.items():
        try:
            steps[name] = factory()
        except BenchmarkUnavailable as exc:
            skipped[name] = str(exc)

    samples: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    with limited_threads(threads):
        for step in steps.values():
            for _ in range(warmup):
                step()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(repeats):
                for name in order:
                    step = steps[name]
                    start = time.perf_counter()
                    for _ in range(inner):
                        step()
                    samples[name].append((time.perf_counter() - start) / inner)
                order = order[1:] + order[:1]
        finally:
            if gc_was_enabled:
                gc.enable()
    return Samples(samples, skipped)


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most `threads` threads in each thread pool, on `threads` CPUs.

    Limits the BLAS and OpenMP pools already loaded (through threadpoolctl) and PyTorch's
    intra-op pool if PyTorch is imported, and pins every thread of the process to the first
    `threads` CPUs it may run on (on Linux), so that the threads of other pools (XLA's) share
    those CPUs. Load the libraries first: a pool started inside the block is not limited.
    Everything is restored on exit. `None` changes nothing.
    """
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise RuntimeError(
            "limiting threads needs threadpoolctl: pip install threadpoolctl"
        ) from exc

    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if cpus is not None:
            _pin_process(set(sorted(cpus)[:threads]))
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
        if cpus is not None:
            _pin_process(cpus)


def _pin_process(cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of this process (Linux sets it per thread)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


def table(
    samples: Mapping[str, Sequence[float]],
    baselines: Sequence[str] = ("hand_tuned", "gemm_floor"),
) -> str:
    """Format samples from `compare` as a Markdown table, fastest implementation first.

    Columns: the median time per call in microseconds; the spread, half the interquartile range
    as a percentage of the median; and for each baseline that ran, the ratio to it. A ratio is
    the median of the per-round ratios, which `compare`'s paired rounds make robust to drift
    during the run. If `samples` has a `skipped` mapping (a `Samples` does), the skipped
    implementations are listed under the table with their reasons.
    """
    present = [name for name in baselines if name in samples]
    header = ["implementation", "median µs/call", "spread"] + [f"× {name}" for name in present]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for name in sorted(samples, key=lambda n: float(np.median(samples[n]))):
        times = np.asarray(samples[name])
        median = float(np.median(times))
        q25, q75 = np.percentile(times, [25, 75])
        cells = [name, _format_microseconds(median), f"±{50 * (q75 - q25) / median:.1f}%"]
        for base in present:
            cells.append(f"{float(np.median(times / np.asarray(samples[base]))):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    skipped = getattr(samples, "skipped", {})
    if skipped:
        lines += ["", "Skipped:"] + [f"- {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines)


def tables_by_dtype_and_batch(
    factories: Mapping[str, Callable[..., Callable[[], object]]],
    dtypes: Sequence[str],
    batches: Sequence[int],
    *,
    repeats: int,
    inner: Callable[[int], int],
    threads: int | None,
    render: Callable[[Samples], str] = table,
    out: str | None = None,
) -> list[str]:
    """Time ``factories`` (each called as ``factory(batch, dtype)``) for every dtype and
    batch size, printing the machine first and then each table as it is done; with ``out``,
    also write them all to that file. ``inner(batch)`` is the steps per sample, ``render``
    turns one run's samples into its table. Returns the printed parts."""
    parts = [machine_description()]
    print(parts[0], flush=True)
    for dtype in dtypes:
        for batch in batches:
            built = {n: partial(f, batch, dtype) for n, f in factories.items()}
            samples = compare(built, repeats=repeats, inner=inner(batch), threads=threads)
            parts.append(f"## {dtype}, batch {batch}\n\n{render(samples)}")
            print(f"\n{parts[-1]}", flush=True)
    if out:
        with open(out, "w") as f:
            f.write("\n\n".join(parts) + "\n")
    return parts


def _format_microseconds(seconds: float) -> str:
    """Seconds as microseconds: thousands separated, one decimal below 100 µs."""
    micro = seconds * 1e6
    return f"{micro:,.1f}" if micro < 100 else f"{micro:,.0f}"


def machine_description() -> str:
    """Describe the machine and libraries as a Markdown bullet list.

    CPU model and whether it has AVX-512, the CPU count and how many this process may use, the
    Python and NumPy versions, NumPy's BLAS (as built, and as running with its kernel and thread
    count when threadpoolctl is installed), the versions of the optional packages imported so
    far, and the thread-related environment variables that are set.
    """
    blas = _numpy_blas()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    lines = [
        f"- CPU: {_cpu_model()} ({os.cpu_count()} logical CPUs, {usable} usable by this process)",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, BLAS: {blas}",
    ]
    lines.extend(f"- BLAS at run time: {pool}" for pool in _blas_pools())
    imported = [
        f"{name} {getattr(sys.modules[name], '__version__', '?')}"
        for name in OPTIONAL_PACKAGES
        if name in sys.modules
    ]
    if imported:
        lines.append("- Other packages: " + ", ".join(imported))
    env = [f"{name}={os.environ[name]}" for name in THREAD_ENV_VARS if name in os.environ]
    lines.append("- Thread environment: " + (", ".join(env) if env else "none set"))
    return "\n".join(lines)


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, and whether its flags include AVX-512."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            fields = dict(
                (key.strip(), value.strip())
                for key, sep, value in (line.partition(":") for line in cpuinfo)
                if sep
            )
    except OSError:
        return platform.processor() or platform.machine()
    avx512 = "avx512f" in fields.get("flags", "").split()
    model = fields.get("model name", platform.machine())
    return f"{model}, AVX-512 {'yes' if avx512 else 'no'}"


def _numpy_blas() -> str:
    """The BLAS NumPy was built against, from ``np.show_config(mode="dicts")`` where available."""
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # NumPy < 1.26 has no mode argument
        return "unknown"
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()


def _blas_pools() -> list[str]:
    """The BLAS libraries loaded, with the kernel and thread count each runs with."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        f"{pool.get('internal_api')} {pool.get('version')}, kernel {pool.get('architecture')}, "
        f"{pool.get('num_threads')} threads"
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]


def with_calls(markdown: str, calls: Mapping[str, int]) -> str:
    """`table`'s Markdown with a column of NumPy calls per step ("-" where not
    counted)."""
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        if i == 0:
            lines[i] = line + " NumPy calls/step |"
        elif i == 1:
            lines[i] = line + "---:|"
        else:
            name = line.split("|")[1].strip()
            lines[i] = line + f" {calls.get(name, '-')} |"
    return "\n".join(lines)


def source_numpy_calls(fn: Callable[..., object], inner: str | None = None,
                       loop_times: int = 1) -> int:
    """NumPy calls per step of ``fn`` (or of the function ``inner`` defined in it), counted
    from its source as ``Program.report`` counts graphc's ``main`` (calls, binary operators
    and augmented assignments, Python scalar arithmetic included), the body of a loop
    counted ``loop_times`` times (a loop over the parameters, once per parameter)."""
    from graphc.backend.program import _numpy_calls

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    step = next(n for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef) and n.name == (inner or fn.__name__))
    body: list[ast.stmt] = []
    for stmt in step.body:
        body += stmt.body * loop_times if isinstance(stmt, ast.For) else [stmt]
    step.name, step.body, step.decorator_list = "main", body, []
    return _numpy_calls(ast.unparse(step))
