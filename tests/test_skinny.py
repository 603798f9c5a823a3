"""The skinny step and inference of the cpu backend (kernels/cpu_skinny.py) and their
register-tiled products (kernels/cpu_tiles.py): the products against float64 NumPy, the
step and inference against the per-kernel path and the reference within the tolerance
table, the gradient against central differences, the bits against the thread count and
the loop over steps, and which networks take the skinny path.

Most tests lower the size thresholds (``_small``), so that small networks and batches
take the skinny path with many row blocks and groups: the logic is the one the large
networks run, at a fraction of the time."""
import ctypes

import numpy as np
import pytest

import fastnn as fn
from fastnn.kernels import cpu_skinny as S
from fastnn.kernels import cpu_tiles as T

from conftest import DTYPES, assert_close, network_data as _data

#: (dtype, hidden act, output act, loss, optimizer): every hidden activation, every output
#: / loss pairing, both optimizers and both dtypes at least once; each is a compiled step
#: of its own (seconds with a cold cache), so the other tests reuse these
F32, F64 = np.float32, np.float64
COMBOS = [(F64, "sigmoid", "sigmoid", "bce", "sgd"),
          (F32, "tanh", "softmax", "cross_entropy", "adam"),
          (F64, "relu", "identity", "mse", "nesterov"),
          (F32, "leaky_relu", "tanh", "mae", "adam"),
          (F64, "identity", "softmax", "cross_entropy", "momentum")]


def _opt(name):
    return {"sgd": lambda: fn.SGD(lr=0.1), "momentum": lambda: fn.SGD(lr=0.05, momentum=0.9),
            "nesterov": lambda: fn.SGD(lr=0.05, momentum=0.8, nesterov=True),
            "adam": lambda: fn.Adam(lr=0.01)}[name]()


@pytest.fixture
def _small(monkeypatch):
    """Thresholds low enough for test-sized networks; blocks of 16 rows, 3 groups."""
    monkeypatch.setattr(S, "MIN_W1", 1)
    monkeypatch.setattr(S, "MIN_WORK", 1)
    monkeypatch.setattr(S, "PAR_WORK", 1)
    monkeypatch.setattr(S, "GROUPS", 3)
    monkeypatch.setattr(S, "_BLOCK_BYTES", 1)


def _net(hidden, out, loss, units, dtype, backend="cpu", n_in=13, k=3):
    layers = [fn.Dense(u, hidden) for u in units] + [fn.Dense(k, out)]
    return fn.Network(layers, n_inputs=n_in, loss=loss, dtype=dtype, backend=backend, seed=4)


def _steps(net, X, Y, opt, l2, n, fused=True):
    Xd, Yd = net._device(*net._XY(X, Y))
    ws = net._workspace(Xd.shape[0])
    ws.fused = fused and ws.fused
    ws.skinny = fused and ws.skinny
    return [net._step_device(Xd, Yd, opt, l2) for _ in range(n)]


def _state(net):
    return {k: (np.array(v) if hasattr(v, "shape") else v)
            for k, v in (net._opt_state or {}).items()}


# ------------------------------------------------------------------------ the products

_DIRECT = {}


def _product(dtype, A, a0, ars, aps, M, K, B, b0, N, C, c0, width=None):
    """cpu_tiles' product of dtype: through its C entry point (this host's vectors) when
    width is None, else the product for vectors of `width` bytes, called directly."""
    if width is not None:
        if width not in _DIRECT:
            _DIRECT[width] = T.products(width)
        _DIRECT[width][dtype == np.float64](A, a0, ars, aps, M, K, B, b0, N, C, c0)
        return
    T.install(dtype)
    fn_ = T._installed[T.types.float32 if dtype == np.float32 else T.types.float64]
    ptr = ctypes.POINTER(ctypes.c_float if dtype == np.float32 else ctypes.c_double)
    fn_.ctypes(A.ctypes.data_as(ptr), A.size, a0, ars, aps, M, K, B.ctypes.data_as(ptr),
               B.size, b0, N, C.ctypes.data_as(ptr), C.size, c0)


def _product_cases(dtype, seed=1):
    """(N, M, K, A, a0, ars, aps, op(A), Bbuf, Cbuf) over every width N <= 32 (every tile
    and leftover piece of both vector widths), row counts with leftover rows, sums longer
    than a chunk, both layouts of A, and operands inside larger buffers (offsets > 0)."""
    rng = np.random.default_rng(seed)
    for transposed in (False, True):
        for N in range(1, 33):
            for M, K in [(1, 1), (7, 3), (13, 300), (29, 40), (4, 700)]:
                if transposed:                      # A (K, M) stored, op(A) = A.T
                    A = rng.standard_normal((K, M + 2)).astype(dtype)
                    a0, ars, aps, opA = 1, 1, M + 2, A[:, 1:M + 1].T
                else:
                    A = rng.standard_normal((M, K + 3)).astype(dtype)
                    a0, ars, aps, opA = 2, K + 3, 1, A[:, 2:K + 2]
                Bbuf = rng.standard_normal(K * N + 5).astype(dtype)
                Cbuf = rng.standard_normal(M * N + 4).astype(dtype)
                yield N, M, K, A.reshape(-1), a0, ars, aps, opA, Bbuf, Cbuf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [None, 32, 64])
def test_tile_products_add_the_float64_product(dtype, width):
    """C += op(A) @ B against float64 NumPy, for this host's vectors (None) and for AVX2's
    (32 bytes) and AVX-512's (64; on a host without AVX-512, LLVM splits them); C's
    entries outside the product are kept."""
    for N, M, K, A, a0, ars, aps, opA, Bbuf, Cbuf in _product_cases(dtype):
        B = Bbuf[5:].reshape(K, N)
        want = Cbuf[4:].reshape(M, N).astype(np.float64) + (
            opA.astype(np.float64) @ B.astype(np.float64))
        before = Cbuf[:4].copy()
        _product(dtype, A, a0, ars, aps, M, K, Bbuf, 5, N, Cbuf, 4, width)
        scale = np.abs(opA).astype(np.float64) @ np.abs(B).astype(np.float64)
        err = np.abs(Cbuf[4:].reshape(M, N) - want) / (scale + np.abs(want) + 1e-30)
        # chains of at most 256 terms, then one add per chunk
        limit = (min(K, 256) + K // 256 + 2) * np.finfo(dtype).eps
        assert err.max() <= limit, (N, M, K, err.max())
        assert Cbuf[:4].tobytes() == before.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_products_have_the_same_bits_for_both_vector_widths(dtype):
    """Each entry is the same chain of fused multiply-adds whichever tile computes it, so
    AVX2's and AVX-512's tiles (and this host's installed product) agree bit for bit."""
    for N, M, K, A, a0, ars, aps, opA, Bbuf, Cbuf in _product_cases(dtype, seed=2):
        out = []
        for width in (None, 32, 64):
            C = Cbuf.copy()
            _product(dtype, A, a0, ars, aps, M, K, Bbuf, 5, N, C, 4, width)
            out.append(C.tobytes())
        assert out[0] == out[1] == out[2], (N, M, K)


# ------------------------------------------------------------------ which networks

def test_which_steps_are_skinny():
    f64, f32 = np.float64, np.float32
    assert S.skinny(5000, [400, 25, 10], f64)              # the course exercise (W3)
    assert not S.skinny(100, [400, 25, 10], f64)           # too few examples
    assert not S.skinny(5000, [2, 16, 16, 1], f32)         # tiny layers (W5)
    assert not S.skinny(5000, [12288, 20, 7, 5, 1], f32)   # first-layer W beyond L2 (W2)
    assert not S.skinny(5000, [400, 64, 10], f64)          # a layer wider than 32
    assert not S.skinny(5000, [400, 25, 40], f64)          # ... the output layer too
    assert S.skinny(20000, [500, 10], f32)                 # logistic regression
    net = fn.Network([fn.Dense(25, "sigmoid"), fn.Dense(10, "sigmoid")], n_inputs=400,
                     loss="bce", dtype="float64")
    ws = net._workspace(5000)
    assert ws.fused and ws.skinny and ws.skinny_forward
    assert not net._workspace(64).skinny
    mixed = fn.Network([fn.Dense(25, "relu"), fn.Dense(25, "tanh"), fn.Dense(10, "sigmoid")],
                       n_inputs=400, loss="bce", dtype="float64")
    assert not mixed._workspace(5000).skinny_forward   # one hidden activation only
    assert not fn.Network([fn.Dense(25, "sigmoid"), fn.Dense(10, "sigmoid")], n_inputs=400,
                          loss="bce", backend="reference")._workspace(5000).skinny_forward


# ---------------------------------------------------------------- steps and inference

@pytest.mark.parametrize("dtype,hidden,out,loss,opt", COMBOS)
def test_skinny_step_equals_the_per_kernel_step(_small, dtype, hidden, out, loss, opt):
    """Three steps, with and without L2, of networks with 0, 1 and 2 hidden layers and
    awkward widths (1, 7, 32), over batches with partial blocks and groups."""
    for units, m, l2 in [((7,), 53, 0.0), ((32, 1), 40, 0.3), ((), 19, 0.5)]:
        X, Y = _data(m, 13, 3, loss, dtype)
        thin, plain = (_net(hidden, out, loss, units, dtype) for _ in range(2))
        assert thin._workspace(m).skinny
        opt_t, opt_p = _opt(opt), _opt(opt)
        J_t = _steps(thin, X, Y, opt_t, l2, 3)
        J_p = _steps(plain, X, Y, opt_p, l2, 3, fused=False)
        assert_close(np.array(J_t), np.array(J_p), dtype)
        assert_close(thin.get_flat_params(), plain.get_flat_params(), dtype)
        st, sp = _state(thin), _state(plain)
        assert st.keys() == sp.keys()
        for k in st:
            assert_close(np.asarray(st[k], np.float64), np.asarray(sp[k], np.float64), dtype)


@pytest.mark.parametrize("dtype,hidden,out,loss,opt", [COMBOS[1], COMBOS[2]])
def test_skinny_step_equals_the_reference(_small, dtype, hidden, out, loss, opt):
    X, Y = _data(45, 13, 3, loss, dtype, seed=2)
    thin = _net(hidden, out, loss, (9, 5), dtype)
    ref = _net(hidden, out, loss, (9, 5), dtype, "reference")
    assert thin._workspace(45).skinny
    J_t = _steps(thin, X, Y, _opt(opt), 0.3, 4)
    J_r = _steps(ref, X, Y, _opt(opt), 0.3, 4, fused=False)
    assert_close(np.array(J_t), np.array(J_r), dtype)
    assert_close(thin.get_flat_params(), ref.get_flat_params(), dtype)


def test_skinny_gradient_is_the_numerical_gradient(_small):
    """The gradient the skinny step leaves in its buffer (that of θ before its update)
    against central differences of the reference backend's cost, float64, with L2."""
    X, Y = _data(37, 13, 3, "bce", np.float64, seed=3)
    net = _net("sigmoid", "sigmoid", "bce", (6,), np.float64)
    ref = _net("sigmoid", "sigmoid", "bce", (6,), np.float64, "reference")
    assert net._workspace(37).skinny
    theta = net.get_flat_params()
    _steps(net, X, Y, fn.SGD(lr=1e-3), 0.4, 1)
    grad = np.array(net._grad)
    Xd, Yd = ref._device(*ref._XY(X, Y))
    h = 1e-6
    for i in range(theta.size):
        t = theta.copy()
        t[i] += h
        ref.set_flat_params(t)
        up = ref._cost_only(Xd, Yd, 0.4)
        t[i] -= 2 * h
        ref.set_flat_params(t)
        down = ref._cost_only(Xd, Yd, 0.4)
        assert abs((up - down) / (2 * h) - grad[i]) < 1e-7 * max(1.0, abs(grad[i])), i


@pytest.mark.parametrize("dtype,out", [(np.float64, a) for a in
                                       ("identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                        "softmax")] + [(np.float32, "softmax"),
                                                       (np.float32, "sigmoid")])
def test_skinny_inference_equals_the_per_kernel_forward(_small, dtype, out):
    loss = {"softmax": "cross_entropy", "sigmoid": "bce"}.get(out, "mse")
    X, _ = _data(61, 13, 5, loss, dtype, seed=4)
    net = _net("relu", out, loss, (11, 32), dtype, k=5)
    Xd, = net._device(net._X(X))
    ws = net._workspace(61)
    assert ws.skinny_forward
    got = np.array(net._forward_output(Xd))
    want = np.array(net._forward(Xd, ws, training=False))
    assert_close(got, want, dtype)
    assert net.forward(X).tobytes() == got.tobytes()


# --------------------------------------------------------------------------- bits

def test_skinny_step_bits_do_not_depend_on_the_threads(_small, monkeypatch):
    """Groups and blocks are set by the shape: one thread, two threads and the serial
    path (PAR_WORK above the work) give the same bits."""
    X, Y = _data(70, 13, 3, "cross_entropy", np.float32, seed=5)
    runs = []
    for threads, par in [(1, 1), (2, 1), (2, 1 << 40)]:
        monkeypatch.setattr(S, "PAR_WORK", par)
        fn.set_num_threads(threads)
        try:
            net = _net("tanh", "softmax", "cross_entropy", (8,), np.float32)
            J = _steps(net, X, Y, _opt("adam"), 0.2, 3)
        finally:
            fn.set_num_threads(2)
        runs.append((J, net.get_flat_params().tobytes(), net.forward(X).tobytes()))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("dtype,hidden,out,loss,opt", [COMBOS[0], COMBOS[1]])
def test_fit_gives_the_same_bits_with_and_without_the_loop(_small, monkeypatch, dtype, hidden,
                                                          out, loss, opt):
    """fit runs an epoch's skinny steps in one Python loop (train_steps); its last batch,
    below MIN_WORK, takes the serial kernels' step, as a single step of it does."""
    from fastnn.kernels import cpu as C

    monkeypatch.setattr(S, "MIN_WORK", 40 * 13 * 6)
    X, Y = _data(100, 13, 3, loss, dtype, seed=6)

    def fit():
        net = _net(hidden, out, loss, (6,), dtype)
        hist = net.fit(X, Y, optimizer=_opt(opt), epochs=2, batch_size=45, l2=0.1,
                       progress=False, seed=3)
        assert net._workspace(45).skinny and not net._workspace(10).skinny
        return net.get_flat_params().tobytes(), hist.loss

    with_loop = fit()
    monkeypatch.delattr(C, "train_steps")
    assert fit() == with_loop


def test_non_finite_cost_leaves_theta_and_state(_small):
    X, Y = _data(30, 13, 3, "mse", np.float64)
    net = _net("relu", "identity", "mse", (4,), np.float64)
    opt = _opt("nesterov")
    _steps(net, X, Y, opt, 0.0, 1)
    theta, state = net.get_flat_params(), _state(net)
    Xd, Yd = net._device(*net._XY(X, Y))
    Xd[2, 1] = np.inf      # past the API's validation: what an overflowing forward gives
    assert net._workspace(30).skinny
    assert not np.isfinite(net._step_device(Xd, Yd, opt, 0.0))
    assert net.get_flat_params().tobytes() == theta.tobytes()
    after = _state(net)
    for k in state:
        assert np.asarray(after[k]).tobytes() == np.asarray(state[k]).tobytes(), k


def test_threads_train_and_predict_skinny_networks_at_once(_small):
    """Networks trained in threads at once, and one network predicting from threads at
    once (the groups' thread pool is shared), give the bits of calls made alone."""
    from conftest import run_in_threads

    X, Y = _data(64, 13, 3, "cross_entropy", np.float64, seed=7)

    def train(seed):
        net = _net("identity", "softmax", "cross_entropy", (9,), np.float64)
        net.seed = seed
        net.fit(X, Y, optimizer=fn.SGD(lr=0.1), epochs=2, batch_size=32, progress=False)
        return net

    alone = [train(s).get_flat_params().tobytes() for s in range(3)]
    got = [None] * 3

    def work(i):
        got[i] = train(i).get_flat_params().tobytes()

    assert run_in_threads(work, 3) == []
    assert got == alone
    net = train(0)
    want = net.forward(X).tobytes()
    out = [None] * 4

    def predict(i):
        out[i] = net.forward(X).tobytes()

    assert run_in_threads(predict, 4) == []
    assert out == [want] * 4


def test_shares_run_on_the_calling_thread_when_no_thread_can_start(_small, monkeypatch):
    """At interpreter shutdown the pool takes no work: the step still completes, on the
    calling thread, with the same bits."""
    class Closed:
        _max_workers = 99

        def submit(self, *args):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    X, Y = _data(70, 13, 3, "bce", np.float64, seed=8)

    def run():
        net = _net("sigmoid", "sigmoid", "bce", (8,), np.float64)
        J = _steps(net, X, Y, _opt("sgd"), 0.1, 2)
        return J, net.get_flat_params().tobytes(), net.forward(X).tobytes()

    want = run()
    monkeypatch.setattr(S, "_pool", Closed())
    assert run() == want
