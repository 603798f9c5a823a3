"""The peers of ``bench/compare.py``, and the worker process each of them runs in.

A peer implements, for one workload, the same training step (forward, backward, plain SGD
update with lr 0.01 on the whole batch) and inference (the output activations), starting
from the parameters and data of ``bench/workloads.py``:

  fastnn   fastnn.Network on the timed backend ("cpu", or "cuda" with --backend cuda);
           the step is one training-step call (``Network._step_device``, what
           Network.step runs and Network.fit falls back to; fit itself runs an epoch's
           steps in compiled loops, cheaper per step for small networks): inputs already
           validated and converted, as a peer's tensors are; inference is
           ``Network._forward_output`` (no validation, no copy)
  numpy    the same fastnn.Network on backend="reference": plain vectorized NumPy
  torch    torch eager: nn.Sequential of nn.Linear, F.cross_entropy /
           F.binary_cross_entropy_with_logits (summed over outputs, / m), torch.optim.SGD
  jax      jax.jit of the step (jax.grad, parameters donated) and of the forward pass
  sklearn  sklearn.neural_network.MLPClassifier.partial_fit (solver="sgd", one batch),
           where the workload can be expressed in it (``workloads.sklearn_mapping``)

Run as a script, this module is a worker: ``python bench/peers.py ROLE THREADS BACKEND``
reads one JSON request per line on stdin and answers one JSON line on stdout (anything a
library prints goes to stderr instead).  ``python bench/peers.py --cold W1 THREADS BACKEND``
measures fastnn's first step in this fresh interpreter and prints one JSON line.

Imports NumPy only at import time (asv imports this module to discover benchmarks).
"""
import gc
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import gemm, workloads  # noqa: E402
from bench.workloads import LR  # noqa: E402

ROLES = ("fastnn", "numpy", "torch", "jax", "sklearn", "blas")

LABELS = {"fastnn": "fastnn", "numpy": "NumPy (fastnn reference)", "torch": "torch eager",
          "jax": "JAX jit", "sklearn": "sklearn MLPClassifier", "blas": "NumPy BLAS"}


def _version(module):
    try:
        mod = __import__(module)
        for name in module.split(".")[1:]:
            mod = getattr(mod, name)
        return getattr(mod, "__version__", "?")
    except Exception:
        return None


# ====================================================================== the peers

class Peer:
    """One implementation of the workloads.  Subclasses set self._step / self._infer."""

    role = None

    def __init__(self, threads, backend):
        self.threads = threads
        self.backend = backend
        self.w = None

    def versions(self):
        return {}

    def supports(self, w):
        """None when the workload can be run, else the reason it cannot."""
        return None

    def load(self, w, dtype, params, X, labels, Y):
        raise NotImplementedError

    def step(self):
        self._step()

    def infer(self):
        self._infer()

    def sync(self):
        """Wait for queued device work (JAX, CUDA)."""

    def get_params(self):
        """[(W (n_in, n_out), b)] as float64 host arrays."""
        raise NotImplementedError

    def fit_digits(self):
        raise NotImplementedError(f"{self.role} has no full-training row")


class FastnnPeer(Peer):
    role = "fastnn"

    def __init__(self, threads, backend):
        super().__init__(threads, backend)
        import fastnn

        fastnn.set_num_threads(threads)
        self.fn = fastnn
        if backend == "cuda":
            self.fn.get_backend("cuda")  # fails clearly here, not in the middle of a run

    def versions(self):
        import numba

        return {"fastnn": self.fn.__version__, "numba": numba.__version__,
                "numpy": np.__version__, "backend": self.backend}

    def load(self, w, dtype, params, X, labels, Y):
        fn = self.fn
        layers = [fn.Dense(n, w.hidden) for n in w.sizes[1:-1]] + [fn.Dense(w.sizes[-1], w.output)]
        net = fn.Network(layers, n_inputs=w.sizes[0], loss=w.loss, dtype=dtype,
                         backend=self.backend, seed=0)
        net.set_params(params)
        Xc, Yc = net._XY(X, Y)
        self.X, self.Y = net._device(Xc, Yc)
        self.net, self.opt, self.l2, self.w = net, fn.SGD(lr=LR), float(w.l2), w
        # one training-step call (fit runs its steps in compiled loops), and inference
        # without validation or copy
        self._step = lambda: net._step_device(self.X, self.Y, self.opt, self.l2)
        self._infer = lambda: net._forward_output(self.X)

    def sync(self):
        if self.backend == "cuda":
            from numba import cuda

            cuda.synchronize()

    def get_params(self):
        return [(W.astype(np.float64), b.astype(np.float64)) for W, b in self.net.params]

    def fit_digits(self):
        try:
            from fastnn.sklearn import MLPClassifier
        except Exception as exc:
            return {"skip": f"fastnn.sklearn is not importable ({type(exc).__name__}: {exc})"}
        return _fit_digits(MLPClassifier, {"backend": self.backend})


class NumpyPeer(FastnnPeer):
    """Plain vectorized NumPy: fastnn's own reference backend."""

    role = "numpy"

    def __init__(self, threads, backend):
        super().__init__(threads, "reference")

    def versions(self):
        return {"numpy": np.__version__, "fastnn": self.fn.__version__, "backend": "reference"}


class TorchPeer(Peer):
    role = "torch"

    def __init__(self, threads, backend):
        super().__init__(threads, backend)
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = "cuda" if backend == "cuda" else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")

    def versions(self):
        t = self.torch
        v = {"torch": t.__version__, "torch_threads": t.get_num_threads(),
             "torch_config": t.__config__.show()[:2000]}
        if self.device == "cuda":
            v["cuda_device"] = t.cuda.get_device_name(0)
        return v

    def load(self, w, dtype, params, X, labels, Y):
        torch = self.torch
        nn, F = torch.nn, torch.nn.functional
        tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
        dev = self.device
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[w.hidden]
        mods, linears = [], []
        for i, (W, b) in enumerate(params):
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=tdt, device=dev)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            linears.append(lin)
            mods.append(lin)
            if i < len(params) - 1:
                mods.append(act())
        model = nn.Sequential(*mods)
        m = X.shape[0]
        self.X = torch.tensor(X, dtype=tdt, device=dev)
        if w.loss == "cross_entropy":
            target = torch.tensor(labels, dtype=torch.int64, device=dev)

            def loss_fn(logits):
                return F.cross_entropy(logits, target)
            out_act = lambda z: torch.softmax(z, dim=1)  # noqa: E731
        else:
            target = torch.tensor(Y, dtype=tdt, device=dev)

            def loss_fn(logits):
                return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / m
            out_act = torch.sigmoid
        l2 = float(w.l2)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        X_t = self.X

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X_t))
            if l2:
                penalty = sum((lin.weight * lin.weight).sum() for lin in linears)
                loss = loss + (l2 / (2 * m)) * penalty
            loss.backward()
            opt.step()

        def infer():
            with torch.inference_mode():
                self.out = out_act(model(X_t))

        self._step, self._infer, self.linears, self.w = step, infer, linears, w

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def get_params(self):
        return [(lin.weight.detach().cpu().double().numpy().T.copy(),
                 lin.bias.detach().cpu().double().numpy().copy()) for lin in self.linears]


class JaxPeer(Peer):
    role = "jax"

    def __init__(self, threads, backend):
        super().__init__(threads, backend)
        import jax

        jax.config.update("jax_enable_x64", True)  # for float64 workloads; arrays keep their dtype
        self.jax = jax

    def versions(self):
        import jaxlib

        return {"jax": self.jax.__version__, "jaxlib": jaxlib.__version__,
                "devices": [str(d) for d in self.jax.devices()],
                "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}

    def load(self, w, dtype, params, X, labels, Y):
        from functools import partial

        jax = self.jax
        jnp = jax.numpy
        dt = {"float32": jnp.float32, "float64": jnp.float64}[dtype]
        act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[w.hidden]
        ce = w.loss == "cross_entropy"
        l2, m = float(w.l2), X.shape[0]

        def logits(p, X):
            A = X
            for W, b in p[:-1]:
                A = act(A @ W + b)
            W, b = p[-1]
            return A @ W + b

        def loss(p, X, Y):
            Z = logits(p, X)
            if ce:
                J = -jnp.sum(Y * jax.nn.log_softmax(Z, axis=1)) / m
            else:
                J = jnp.sum(jnp.maximum(Z, 0) - Y * Z + jnp.log1p(jnp.exp(-jnp.abs(Z)))) / m
            if l2:
                J = J + (l2 / (2 * m)) * sum(jnp.sum(W * W) for W, _ in p)
            return J

        @partial(jax.jit, donate_argnums=0)
        def step(p, X, Y):
            g = jax.grad(loss)(p, X, Y)
            return jax.tree_util.tree_map(lambda a, ga: a - LR * ga, p, g)

        @jax.jit
        def infer(p, X):
            Z = logits(p, X)
            return jax.nn.softmax(Z, axis=1) if ce else jax.nn.sigmoid(Z)

        put = lambda a: jax.device_put(np.asarray(a, dtype=dtype))  # noqa: E731
        self.p = [(put(W), put(b)) for W, b in params]
        self.X, self.Y = put(X), put(Y)
        self.out = None

        def do_step():
            self.p = step(self.p, self.X, self.Y)  # chained by data: block once per turn

        def do_infer():
            self.out = infer(self.p, self.X).block_until_ready()  # a caller needs the result

        self._step, self._infer, self.w = do_step, do_infer, w

    def sync(self):
        self.jax.block_until_ready(self.p)

    def get_params(self):
        return [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
                for W, b in self.p]


class SklearnPeer(Peer):
    role = "sklearn"

    def __init__(self, threads, backend):
        super().__init__(threads, backend)
        import sklearn
        from sklearn.neural_network import MLPClassifier

        self.sklearn, self.MLPClassifier = sklearn, MLPClassifier

    def versions(self):
        import scipy

        return {"scikit-learn": self.sklearn.__version__, "scipy": scipy.__version__,
                "numpy": np.__version__}

    def supports(self, w):
        kwargs, note = workloads.sklearn_mapping(w)
        return note if kwargs is None else None

    def load(self, w, dtype, params, X, labels, Y):
        kwargs, _ = workloads.sklearn_mapping(w)
        est = self.MLPClassifier(**kwargs)
        k = w.sizes[-1]
        X = np.ascontiguousarray(X, dtype=dtype)
        y = Y.astype(np.int64) if (w.loss == "bce" and k > 1) else labels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(X, y, classes=np.arange(max(k, 2)))  # initializes its parameters
        for (W, b), cW, cb in zip(params, est.coefs_, est.intercepts_):
            cW[...] = W  # in place: the optimizer updates these arrays
            cb[...] = b

        def step():
            est.partial_fit(X, y)

        def infer():
            self.out = est.predict_proba(X)

        self._step, self._infer, self.est, self.w = step, infer, est, w

    def get_params(self):
        return [(W.astype(np.float64), b.astype(np.float64))
                for W, b in zip(self.est.coefs_, self.est.intercepts_)]

    def fit_digits(self):
        return _fit_digits(self.MLPClassifier, {})


class BlasPeer(Peer):
    """Not a peer: NumPy's BLAS doing only the GEMMs of a step (or an inference) of the
    workload, back to back -- the ceiling, timed in turns interleaved with the peers'."""

    role = "blas"

    def versions(self):
        return {"numpy": np.__version__}

    def load(self, w, dtype, params, X, labels, Y):
        def calls(mode):
            out = []
            for i, (what, M, K, N) in enumerate(w.gemms(mode)):
                A, B, C = gemm.operands(M, K, N, dtype, gemm.layout(what), seed=i)
                out.append((A, B, C))
            return out

        step_ops, infer_ops = calls("step"), calls("infer")

        def run(ops):
            for A, B, C in ops:
                np.matmul(A, B, out=C)

        self._step = lambda: run(step_ops)
        self._infer = lambda: run(infer_ops)
        self.w = w


PEERS = {"blas": BlasPeer, "fastnn": FastnnPeer, "numpy": NumpyPeer, "torch": TorchPeer,
         "jax": JaxPeer, "sklearn": SklearnPeer}


def _fit_digits(cls, extra):
    """Fit `cls(**DIGITS_FIT)` on the digits split; seconds, accuracy, epochs run."""
    X_train, X_test, y_train, y_test = workloads.digits_split()
    params = dict(workloads.DIGITS_FIT)
    accepted = cls().get_params()
    dropped = sorted(k for k in params if k not in accepted)
    params = {k: v for k, v in params.items() if k in accepted}
    params.update({k: v for k, v in extra.items() if k in accepted})
    est = cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "accuracy": float(est.score(X_test, y_test)),
            "n_iter": int(getattr(est, "n_iter_", -1)), "dropped_params": dropped,
            "dtype": str(est.coefs_[0].dtype)}


# ====================================================================== the worker

def _workload_arrays(w):
    X, labels, Y = workloads.data(w)
    return workloads.init_params(w), X, labels, Y


def _calibrate(fn, sync, target, warm_s):
    """Warm up (at least 3 calls and warm_s seconds; the first call -- a JIT compile -- is
    timed separately) and choose how many calls a turn of about `target` seconds makes."""
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < warm_s:
        fn()
        n += 1
        if n % 16 == 0 or n < 16:
            sync()
    sync()
    per = (time.perf_counter() - t0) / n
    return {"first_call_s": first, "per_call_s": per,
            "number": max(1, int(math.ceil(target / max(per, 1e-9))))}


def _turn(fn, sync, number):
    """Seconds per call over `number` back-to-back calls."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - t0) / number


def _threadpool_info():
    try:
        from threadpoolctl import threadpool_info

        return threadpool_info()
    except Exception as exc:  # pragma: no cover
        return [{"error": repr(exc)}]


class Worker:
    def __init__(self, role, threads, backend):
        self.role, self.threads, self.backend = role, threads, backend
        self.limits = None
        self.peer = PEERS[role](threads, backend)
        self._limit_threads()

    def _limit_threads(self):
        """BLAS and OpenMP pools of every library loaded so far: `threads` threads."""
        from threadpoolctl import threadpool_limits

        self.limits = threadpool_limits(limits=self.threads)
        if self.role in ("fastnn", "numpy"):
            self.peer.fn.set_num_threads(self.threads)

    def hello(self, req):
        v = {"python": platform.python_version(), "numpy": np.__version__, "pid": os.getpid(),
             "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                      "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                      "XLA_FLAGS")}}
        v.update(self.peer.versions())
        return v

    def info(self, req):
        return {"threadpool_info": _threadpool_info()}

    def supports(self, req):
        return {"skip": self.peer.supports(workloads.get(req["workload"]))}

    def load(self, req):
        w = workloads.get(req["workload"])
        reason = self.peer.supports(w)
        if reason:
            return {"skip": reason}
        params, X, labels, Y = _workload_arrays(w)
        self.peer.load(w, req.get("dtype") or w.dtype, params, X, labels, Y)
        self._limit_threads()  # libraries loaded lazily by the first build get the limit too
        return {"skip": None}

    def check(self, req):
        """Load afresh, one SGD step, save the updated parameters to req['path']."""
        out = self.load(req)
        if out["skip"]:
            return out
        self.peer.step()
        self.peer.sync()
        arrays = {}
        for i, (W, b) in enumerate(self.peer.get_params()):
            arrays[f"W{i}"], arrays[f"b{i}"] = W, b
        np.savez(req["path"], **arrays)
        return {"skip": None, "path": req["path"]}

    def warm(self, req):
        fn = self.peer.step if req["mode"] == "step" else self.peer.infer
        return _calibrate(fn, self.peer.sync, req["target"], req["warm_s"])

    def turn(self, req):
        fn = self.peer.step if req["mode"] == "step" else self.peer.infer
        return {"seconds": _turn(fn, self.peer.sync, req["number"])}

    def fit_digits(self, req):
        return self.peer.fit_digits()

    def gemm_square(self, req):
        return gemm.square(tuple(req["dtypes"]), tuple(req["sizes"]), **req.get("kw", {}))

    def gemm_workload(self, req):
        return gemm.workload_ceiling(workloads.get(req["workload"]), req["mode"],
                                     **req.get("kw", {}))

    def serve(self, inp, out):
        for line in inp:
            if not line.strip():
                continue
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                out.write(json.dumps({"ok": True, "result": None}) + "\n")
                out.flush()
                return
            try:
                result = getattr(self, cmd)(req)
                reply = {"ok": True, "result": result}
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()}
            out.write(json.dumps(reply) + "\n")
            out.flush()


def cold(key, threads, backend):
    """fastnn's first step in this fresh interpreter: import, first step (JIT compile or
    Numba cache load), second step, first inference."""
    import glob

    t0 = time.perf_counter()
    import fastnn

    import_s = time.perf_counter() - t0
    kernels_dir = os.path.dirname(fastnn.kernels.__file__)
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    pattern = (os.path.join(cache_dir, "**", "*.nbi") if cache_dir else
               os.path.join(kernels_dir, "__pycache__", "*.nbi"))
    cached = len(glob.glob(pattern, recursive=True))
    fastnn.set_num_threads(threads)
    w = workloads.get(key)
    peer = FastnnPeer(threads, backend)
    peer.load(w, w.dtype, *_workload_arrays(w))
    times = {}
    for what, fn in (("first_step_s", peer.step), ("second_step_s", peer.step),
                     ("first_infer_s", peer.infer)):
        t0 = time.perf_counter()
        fn()
        peer.sync()
        times[what] = time.perf_counter() - t0
    return {"workload": key, "import_s": import_s, **times, "numba_cache_files_before": cached,
            "backend": backend}


def main(argv):
    if argv and argv[0] == "--cold":
        key, threads, backend = argv[1], int(argv[2]), argv[3]
        print(json.dumps(cold(key, threads, backend)))
        return 0
    role, threads, backend = argv[0], int(argv[1]), argv[2]
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol channel
    os.dup2(2, 1)  # whatever a library prints goes to stderr
    try:
        worker = Worker(role, threads, backend)
    except Exception as exc:
        proto.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc()}) + "\n")
        return 1
    proto.write(json.dumps({"ok": True, "result": "ready"}) + "\n")
    worker.serve(sys.stdin, proto)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
