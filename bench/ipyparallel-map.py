"""The peer figure for bench/cluster-ipyparallel.ts: the same map through Debian's ipyparallel on the same Slurm
cluster. ipyparallel's own Slurm launcher submits the engines (one sbatch job, `srun ipengine` per task); a
load-balanced view spreads the items, a free engine taking the next one, as the pool does.

Usage: python3 ipyparallel-map.py ENGINES ITEMS ITEM_MS RUNS   (SLURM_CONF in the environment)
Prints one JSON line: {"startMs": ..., "runsMs": [...], "nodes": [...]}.
"""

import json
import os
import shutil
import sys
import tempfile
import time

import ipyparallel as ipp


def work(i, ms):
    import os
    import time

    time.sleep(ms / 1000)
    return i, os.environ.get("SLURMD_NODENAME")


def main():
    engines, items, item_ms, runs = (int(arg) for arg in sys.argv[1:5])
    profile = tempfile.mkdtemp(prefix="ipp-bench-")
    os.chdir(profile)  # ipyparallel writes its sbatch file, and Slurm the job's output, to the working directory
    cluster = ipp.Cluster(n=engines, engine_launcher_class="slurm", controller_ip="127.0.0.1", profile_dir=profile, log_level=40)
    try:
        start = time.perf_counter()
        client = cluster.start_and_connect_sync()
        client.wait_for_engines(engines, timeout=120)
        start_ms = (time.perf_counter() - start) * 1000
        view = client.load_balanced_view()
        view.map_sync(work, range(engines), [item_ms] * engines)  # warm: every engine has run once
        runs_ms, nodes = [], set()
        for _ in range(runs):
            begin = time.perf_counter()
            results = view.map_sync(work, range(items), [item_ms] * items)
            runs_ms.append((time.perf_counter() - begin) * 1000)
            if [i for i, _ in results] != list(range(items)):
                raise SystemExit("ipyparallel returned results out of order")
            nodes.update(node for _, node in results)
        print(json.dumps({"startMs": start_ms, "runsMs": runs_ms, "nodes": sorted(n for n in nodes if n)}), flush=True)
    finally:
        cluster.stop_cluster_sync()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
