"""What the skinny path saves: W3's training step and inference (400-25-10, batch 5000,
float64) with the skinny path (``kernels/cpu_skinny.py``) and without it (the BLAS
kernels: ``cpu_skinny.MAX_WIDTH = 0``), each round a fresh process per side, sides
alternating, 2 threads; medians of each process's median.

    python bench/skinny.py [--rounds N] [--workload W3]

prints the table and writes ``bench/results/<date>-<machine>-skinny.json``.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, sys, time
import numpy as np
import fastnn
from fastnn.kernels import cpu_skinny
from bench import workloads as wl
if sys.argv[1] == "blas":
    cpu_skinny.MAX_WIDTH = 0
fastnn.set_num_threads(2)
w = wl.get(sys.argv[2])
X, labels, Y = wl.data(w)
layers = [fastnn.Dense(n, w.hidden) for n in w.sizes[1:-1]] + [fastnn.Dense(w.sizes[-1], w.output)]
net = fastnn.Network(layers, n_inputs=w.sizes[0], loss=w.loss, dtype=w.dtype, seed=0)
net.set_params(wl.init_params(w))
Xd, Yd = net._device(*net._XY(X, Y))
opt = fastnn.SGD(lr=0.01)
t0 = time.perf_counter()
net._step_device(Xd, Yd, opt, w.l2)
first = time.perf_counter() - t0
assert net._workspace(Xd.shape[0]).skinny == (sys.argv[1] == "skinny")
for _ in range(4):
    net._step_device(Xd, Yd, opt, w.l2)
steps, infers = [], []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    net._step_device(Xd, Yd, opt, w.l2)
    steps.append(time.perf_counter() - t0)
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    net._forward_output(Xd)
    infers.append(time.perf_counter() - t0)
print(json.dumps({"step": float(np.median(steps)), "infer": float(np.median(infers)),
                  "first_step": first}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--workload", default="W3")
    args = ap.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="2")
    sides = ("skinny", "blas")
    runs = {s: [] for s in sides}
    for r in range(args.rounds):
        for s in sides:
            out = subprocess.run([sys.executable, "-c", _CHILD, s, args.workload,
                                  str(args.calls)], capture_output=True, text=True, env=env,
                                 cwd=ROOT, check=True)
            runs[s].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {s: {k: float(np.median([x[k] for x in runs[s]])) for k in ("step", "infer")}
           for s in sides}
    rows = [f"| {k} | {med['skinny'][k] * 1e3:.2f} ms | {med['blas'][k] * 1e3:.2f} ms | "
            f"{med['blas'][k] / med['skinny'][k]:.2f}× |" for k in ("step", "infer")]
    table = "\n".join(["| W3 | skinny path | BLAS kernels | BLAS ÷ skinny |",
                       "|---|---|---|---|"] + rows)
    print(table)
    date = datetime.date.today().isoformat()
    from bench.compare import _machine_name

    machine = _machine_name()
    out = ROOT / "bench" / "results" / f"{date}-{machine}-skinny.json"
    out.write_text(json.dumps({"date": date, "machine": machine, "workload": args.workload,
                               "command": "python bench/skinny.py " + " ".join(argv or
                                                                              sys.argv[1:]),
                               "rounds": args.rounds, "calls": args.calls, "runs": runs,
                               "medians": med, "table_markdown": table}, indent=1) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
