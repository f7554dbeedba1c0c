"""Benchmark 10: the daily budget's check, as the day's attempts pile up.

Under ``SEEDANCE_BUDGET_PER_DAY_USD`` every intent is checked against the day's records in storage, after it is
written (``seedance_pipeline/ledger/budget.py``, ``day_spend.py``, M21). Timed: C = 20 threads, as a run's provider
slots would, each writing and admitting I = 5 intents through the real ``AttemptJournal`` and ``SpendGuard``,
in a day that already holds K attempts of other runs (K = 0, 1,000, 10,000; quick: 0, 1,000), their ids spread
over the day up to now as a real day's would be; on a local folder and on S3 (moto's server behind benchmark 1's
30 ms proxy; the K earlier records are put straight into moto, not through the proxy). Printed: the mean time
from an intent's start to its admission (the write, then the check), the wall time of all C x I, and how the
mean grows from K = 0 to the largest K.

The same in a run that has already admitted M intents of its own (M = 0, 2,000, 10,000 locally, 0 and 2,000 on S3;
quick: 0, 1,000 locally): a decision, and a reading, must not go through the run's attempts (M23).

``python -m benchmarks --only 10``; ``python -m benchmarks.bench_day_budget 0 10000 own=10000`` prints the rows for
any K and M.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

from benchmarks.common import loadavg, png, report

THREADS, EACH = 20, 5
# The mean intent at K = 10,000: about one S3 round trip's worth over the same at K = 0 (before M21: 1,399 ms on a
# local folder, 73.8 s on S3).
TARGET_MS = {"local": 100.0, "s3": 1000.0}


def _earlier(storage, k: int, direct_endpoint: str | None) -> int:
    """Write ``k`` accepted attempts of another run into today's folder, spread from 00:00 UTC to a minute ago;
    returns how many fall in the current hour (which every reading lists)."""
    from seedance_pipeline.ledger.records import AttemptRecord, new_attempt_id
    from seedance_pipeline.ledger.store import TaskStore
    from seedance_pipeline.storage.resource import SeedanceStorage

    now = time.time()
    start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    span = max(0.0, now - 60 - start)
    writer = storage if direct_endpoint is None else SeedanceStorage(url=storage.url, endpoint_url=direct_endpoint)
    store = TaskStore(writer)
    files, hour = {}, datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H")
    for i in range(k):
        at = start + span * i / max(1, k)
        record = AttemptRecord(
            attempt_id=new_attempt_id(at),
            fingerprint=f"{i:064x}",
            image=f"img{i}",
            prompt="earlier",
            provider="novita",
            state="accepted",
            simulated=True,
            run_id="earlier-run",
            request={},
            estimated_cost_usd=0.01,
            created_at=at,
            updated_at=at,
        )
        files[store._record_path(record.attempt_id)] = record.model_dump_json().encode()
    if writer.is_local:
        for path, data in files.items():
            writer.write_bytes(path, data)
    else:
        writer.fs.pipe(files)
    return sum(1 for p in files if p.rsplit("/", 1)[-1].startswith(hour))


def measure(kind: str, k: int, kept: bool = True, own: int = 0) -> dict[str, float]:
    """C x I intents admitted under a daily budget in fresh ``kind`` storage holding ``k`` earlier attempts; with
    ``kept``, as the earlier runs' checks left the day's cache (``state/spend/<day>.json``), else without it (the
    first budgeted run of a day whose earlier runs had no daily budget reads every record once). ``own``: the run
    has admitted that many intents of its own first, the same way (untimed; a big run's last clips)."""
    from benchmarks.bench_throughput import _storage
    from seedance_pipeline.clip.prepare import build_request, prepare
    from seedance_pipeline.ledger.budget import SpendGuard
    from seedance_pipeline.ledger.journal import AttemptJournal
    from seedance_pipeline.ledger.store import TaskStore
    from seedance_pipeline.providers import get_adapter
    from seedance_pipeline.storage.resource import SeedanceStorage

    direct: list[str] = []  # moto's own URL: the earlier records go straight in, not through the proxy
    with tempfile.TemporaryDirectory(prefix="seedance-bench10-") as tmp, _storage(kind, tmp, direct=direct) as storage:
        image = SeedanceStorage(url=f"{tmp}/images")
        ref = image.path("cat.png")
        image.write_bytes(ref, png(0))
        prepared = prepare(get_adapter("novita"), build_request(prompt="a cat", image=ref, resolution="480p"))
        in_hour = _earlier(storage, k, direct[0] if direct else None)
        if kept:
            from seedance_pipeline.ledger.day_spend import DayRecords

            writer = storage if not direct else SeedanceStorage(url=storage.url, endpoint_url=direct[0])
            DayRecords(TaskStore(writer)).read(time.strftime("%Y-%m-%d", time.gmtime()), time.monotonic())
        store = TaskStore(storage)
        guard = SpendGuard(store, per_run_usd=None, per_day_usd=1e9, run_id="bench10")
        times: list[float] = []

        def slot(n: int, each: int, timed: list[float], start: threading.Barrier) -> None:
            start.wait()
            for j in range(each):
                journal = AttemptJournal(
                    store, image=f"img{n}-{j}-{each}", prompt="bench", run_id="bench10", simulated=True, guard=guard
                )
                t0 = time.perf_counter()
                journal.intent(prepared)
                timed.append(time.perf_counter() - t0)

        def wave(each: int, timed: list[float]) -> float:
            start = threading.Barrier(THREADS)
            threads = [threading.Thread(target=slot, args=(n, each, timed, start)) for n in range(THREADS)]
            wall = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - wall

        if own:
            wave(own // THREADS, [])
        wall = wave(EACH, times)
        if len(times) != THREADS * EACH:  # a thread that raised (printed above) admitted fewer
            raise RuntimeError(f"{len(times)} of {THREADS * EACH} intents admitted")
        p95 = sorted(times)[int(0.95 * len(times))]
        return {"mean": statistics.mean(times), "p95": p95, "wall": wall, "hour": in_hour, "n": len(times)}


def _report(
    kind: str, k: int, fig: dict[str, float], target: str | None = None, kept: bool = True, own: int = 0
) -> None:
    where = "local folder" if kind == "local" else "S3 (moto + 30 ms per request)"
    how = "" if kept else " (no cache kept: every record read once)"
    earlier = f"the run's own {own} admitted before" if own else f"{k} earlier attempts today{how}"
    report(
        "10",
        f"intent written and admitted under a daily budget, {earlier}, {where}",
        1000 * fig["mean"],
        "ms",
        target,
        f"mean of {THREADS} x {EACH} from {THREADS} threads; p95 {1000 * fig['p95']:.0f} ms; all in "
        f"{fig['wall']:.2f} s; {int(fig['hour'])} of the earlier attempts in the current hour; {loadavg()}",
    )


def run(quick: bool = False) -> None:
    sizes = (0, 1000) if quick else (0, 1000, 10_000)
    print(f"\n10 daily budget check vs attempts already in the day (K = {', '.join(map(str, sizes))}); {loadavg()}")
    for kind in ("local", "s3"):
        figs = {k: measure(kind, k) for k in sizes}
        for k in sizes:
            _report(kind, k, figs[k], None if quick or k != sizes[-1] else f"<= {TARGET_MS[kind]:g}")
        _report(kind, sizes[-1], measure(kind, sizes[-1], kept=False), kept=False)
        report(
            "10",
            f"mean check at {sizes[-1]} earlier attempts over at 0, {kind}",
            figs[sizes[-1]]["mean"] / figs[0]["mean"],
            "x",
            note="what the day's size adds: locally a listing of the folder's names per reading and one read of the "
            "kept cache per process; on S3 the kept cache's read (a reading lists the minutes since the last)",
        )
    # A big run's own attempts: each decision and each reading once went through all of them (before M23, these rows
    # on bbf035a: 23 / 60 / 331 ms a local intent at 0 / 2,000 / 10,000 of them; benchmarks/README.md, M23).
    for kind, sizes in (("local", (0, 1000) if quick else (0, 2000, 10_000)), ("s3", () if quick else (0, 2000))):
        for own in sizes:
            target = None if quick or kind != "local" or own != sizes[-1] else f"<= {TARGET_MS[kind]:g}"
            _report(kind, 0, measure(kind, 0, own=own), target, own=own)


if __name__ == "__main__":
    # python -m benchmarks.bench_day_budget [K ...] [own=M ...]: rows for K earlier attempts, or M of the run's own
    for kind in ("local", "s3"):
        for arg in sys.argv[1:] or ["0", "1000"]:
            if arg.startswith("own="):
                _report(kind, 0, measure(kind, 0, own=int(arg[4:])), own=int(arg[4:]))
            else:
                _report(kind, int(arg), measure(kind, int(arg)))
