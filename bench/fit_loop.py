"""What the compiled loop over training steps saves: ``Network.fit`` and
``fastnn.sklearn.MLPClassifier.fit`` on scikit-learn's digits (64-64-10, batch 32, 30
epochs, SGD with Nesterov momentum, float64), with the loop (``train_steps``) and with one
compiled call a step (``train_steps`` removed from the cpu backend), interleaved in one
process after a warm-up; medians.

    python bench/fit_loop.py [--repeat N]

prints the table and writes ``bench/results/<date>-<machine>-fit-loop.json``.
"""
import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import workloads  # noqa: E402


def _fits(X, y):
    import fastnn as fn
    from fastnn.sklearn import MLPClassifier

    def network_fit():
        net = fn.Network([fn.Dense(64, "relu"), fn.Dense(10, "softmax")], n_inputs=64,
                         dtype="float64", seed=0)
        opt = fn.SGD(0.05, momentum=0.9, nesterov=True)
        t0 = time.perf_counter()
        net.fit(X, y, optimizer=opt, epochs=30, batch_size=32, progress=False)
        return time.perf_counter() - t0

    def estimator_fit():
        est = MLPClassifier(**workloads.DIGITS_FIT)
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0

    return {"Network.fit": network_fit, "MLPClassifier.fit": estimator_fit}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/fit_loop.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--output-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    from fastnn.kernels import cpu

    X, _, y, _ = workloads.digits_split()
    loop = cpu.train_steps
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed 30 epochs
        for name, fit in _fits(X, y).items():
            fit()
            a, b = [], []
            try:
                for _ in range(args.repeat):
                    cpu.train_steps = loop
                    a.append(fit())
                    del cpu.train_steps
                    b.append(fit())
            finally:
                cpu.train_steps = loop
            out[name] = {"loop_s": float(np.median(a)), "per_step_call_s": float(np.median(b)),
                         "loop_samples": a, "per_step_call_samples": b}
            print(f"{name:18s} compiled loop {np.median(a) * 1e3:.1f} ms, one call a step "
                  f"{np.median(b) * 1e3:.1f} ms (medians of {args.repeat})")
    from bench.compare import _machine_name, machine_info

    now = datetime.datetime.now(datetime.timezone.utc)
    argv = sys.argv[1:] if argv is None else argv
    result = {"date": now.isoformat(timespec="seconds"), "machine": _machine_name(),
              **machine_info(), "command": " ".join(["python bench/fit_loop.py", *argv]),
              "results": out}
    path = Path(args.output_dir) / f"{now:%Y-%m-%d}-{_machine_name()}-fit-loop.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
