"""DBOS side of durable-bench's PostgreSQL workloads: the same 3-step workflow.

Run by `durable-bench --postgres` (bench/src/postgres.rs), which reads the `RESULT key=value`
lines this prints. Usage:

    python3 dbos_bench.py SYSTEM_DATABASE_URL chains N [RUNS]
    python3 dbos_bench.py SYSTEM_DATABASE_URL sequential STEPS
    python3 dbos_bench.py SYSTEM_DATABASE_URL latency RUNS WARMUP

DBOS runs its workflows in this one process (its normal mode: a workflow starts in the process
that calls it, on a thread of its pool), with its system database on the given URL, a
database of its own that DBOS creates and migrates at launch. Every step's result is
checkpointed in that database before the workflow moves on, as durable's history is.
"""

import importlib.metadata
import sys
import time

from dbos import DBOS, DBOSConfig


@DBOS.step()
def noop(n: int) -> int:
    return n + 1


@DBOS.workflow()
def chain3(n: int) -> int:
    a = noop(n)
    b = noop(a)
    return noop(b)


@DBOS.workflow()
def sequential(steps: int) -> int:
    x = 0
    for _ in range(steps):
        x = noop(x)
    return x


def main() -> None:
    url, mode, *args = sys.argv[1:]
    config: DBOSConfig = {
        "name": "durable-bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    print(f"RESULT version={importlib.metadata.version('dbos')}", flush=True)
    if mode == "chains":
        n = int(args[0])
        runs = int(args[1]) if len(args) > 1 else 1
        for run in range(runs):
            t = time.perf_counter()
            handles = [DBOS.start_workflow(chain3, i) for i in range(n)]
            failed = 0
            for i, handle in enumerate(handles):
                if handle.get_result() != i + 3:
                    failed += 1
            elapsed = time.perf_counter() - t
            print(f"RESULT chains_s_{run}={elapsed}", flush=True)
            print(f"RESULT chains_failed_{run}={failed}", flush=True)
    elif mode == "sequential":
        steps = int(args[0])
        t = time.perf_counter()
        assert sequential(steps) == steps
        print(f"RESULT sequential_s={time.perf_counter() - t}", flush=True)
    elif mode == "latency":
        runs, warmup = int(args[0]), int(args[1])
        samples = []
        for i in range(warmup + runs):
            t = time.perf_counter()
            # Called directly: the workflow runs on this thread and returns its result, with
            # no polling for it (faster than start_workflow + get_result).
            assert chain3(i) == i + 3
            if i >= warmup:
                samples.append(time.perf_counter() - t)
        print("RESULT latency_s=" + ",".join(str(s) for s in samples), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    DBOS.destroy()


if __name__ == "__main__":
    main()
