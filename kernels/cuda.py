"""The numba.cuda backend: the kernels of ``fastnn.kernels`` on NVIDIA GPUs.

Every function has the reference's Python signature (kernels/reference.py is the
specification) but takes numba device arrays (``DeviceNDArray``, or contiguous views of
one, e.g. ``theta[a:b].reshape(n_in, n_out)``) for every array argument.  Nothing is
copied between host and device inside a training step except the scalar that
``loss_grad`` and ``sum_squares`` return.

Design
------
* Matrix products are shared-memory tiled: a thread block of ``tile x tile`` threads owns
  one ``tile x tile`` output tile, walks the shared dimension in ``tile``-wide steps
  (tiles padded by one column, so transposed loads are free of bank conflicts) and
  applies the fused epilogue straight from registers:
  ``linear_forward``  ``A = g(A_prev @ W + b)``          (softmax: a row pass afterwards),
  ``activation_backward``  ``dZ_prev = (dZ @ W.T) * g'(A_prev)``,
  ``accumulate_delta``  ``dW = A_prev.T @ dZ + (l2/m) W`` (plus a column-sum kernel for db).
  Operands are read in their stored layout (``W.T`` and ``A_prev.T`` are never formed):
  the tile loader indexes the transpose, with coalesced global reads.
* Row kernels (softmax, loss) give one thread a row; the loss is accumulated in float64,
  reduced per block in shared memory into a fixed set of partial sums, and those are
  summed by a one-block kernel in a fixed order (deterministic: no atomics).
* Every kernel loops grid-stride (over tiles, rows or elements), so any launch
  configuration covers all of the data; ``launch_config`` can shrink it (the tests do).
* Kernels are compiled on first use and cached per (dtype, launch geometry); the
  activation and loss codes are run-time arguments (a uniform branch is free on a GPU).
  Float constants are typed in the array dtype, so float32 kernels stay in float32
  arithmetic (sums of the loss and of squares excepted: float64).

Under ``NUMBA_ENABLE_CUDASIM=1`` the same code runs on numba's CUDA simulator, where every
GPU thread is a Python thread; there the default geometry is small (4x4 tiles, 16-thread
blocks) so that tests finish, and ``launch_config`` selects the GPU geometry for tests
that need it.
"""
import contextlib
import math
import threading
import warnings

import numpy as np

try:
    from numba import cuda
except Exception as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "fastnn.kernels.cuda needs NVIDIA's numba-cuda package (numba.cuda could not be "
        f"imported: {exc}); install the extra: pip install 'fastnn[cuda]'") from exc

from . import (BCE, CROSS_ENTROPY, IDENTITY, LEAKY_RELU, MAE, MSE, RELU, SIGMOID,
               SOFTMAX, TANH)

try:
    from numba.cuda import config as _numba_config
except Exception:  # pragma: no cover - older layouts
    from numba import config as _numba_config

SIMULATOR = bool(getattr(_numba_config, "ENABLE_CUDASIM", 0))

if SIMULATOR:   # the simulator's own thread-safety gaps (see _cudasim)
    from . import _cudasim

    _cudasim.install()

if not SIMULATOR:
    try:
        _usable = cuda.is_available()
    except Exception as exc:  # pragma: no cover - driver errors
        raise ImportError(
            f"fastnn.kernels.cuda: the CUDA driver failed to initialise ({exc})") from exc
    if not _usable:
        raise ImportError(
            "fastnn.kernels.cuda: no usable NVIDIA GPU / CUDA driver was found "
            "(numba.cuda.is_available() is False); set NUMBA_ENABLE_CUDASIM=1 before numba "
            "is imported to run on the CUDA simulator")
    # Small layers launch small grids on purpose (and a reduction's last pass is one block);
    # numba-cuda would warn about each new grid size.  Only that warning is silenced.
    try:
        from numba.cuda.core.errors import NumbaPerformanceWarning as _PerfWarning
    except Exception:  # pragma: no cover - older numba-cuda
        _PerfWarning = Warning
    warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU "
                            r"under-utilization", category=_PerfWarning)

_HIDDEN_CODES = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU)
_ACT_CODES = _HIDDEN_CODES + (SOFTMAX,)
_LOSS_CODES = (BCE, CROSS_ENTROPY, MSE, MAE)

# ------------------------------------------------------------------ launch geometry

#: Launch geometry.  tile: threads per side of a matrix-product block (= output tile side
#: and k-step); tpb: threads per block of the 1-D and row kernels (a power of two);
#: col: (columns, rows) threads of the column-sum block (rows a power of two);
#: flat_blocks: the most blocks a 1-D (grid-stride) kernel is given;
#: partials: how many per-block partial sums a reduction may write (<= flat_blocks is
#: not required: the reduction kernels take min(blocks, partials));
#: max_blocks: cap on the blocks per grid dimension of every kernel (None: only the
#: hardware's and the above); tests shrink it to 1 or 2 to exercise the grid-stride loops.
GPU_GEOMETRY = {"tile": 16, "tpb": 256, "col": (32, 8), "flat_blocks": 2048,
                "partials": 1024, "max_blocks": None}
#: Under the simulator every GPU thread is a Python thread and every block is run in turn,
#: so fewer, smaller blocks are much faster; the code is the same.
SIM_GEOMETRY = {"tile": 4, "tpb": 16, "col": (4, 4), "flat_blocks": 2, "partials": 64,
                "max_blocks": None}
_geometry = dict(SIM_GEOMETRY if SIMULATOR else GPU_GEOMETRY)
_GRID_X_MAX = 2**31 - 1
_GRID_Y_MAX = 65535


@contextlib.contextmanager
def launch_config(**changes):
    """Temporarily change the launch geometry (keys of GPU_GEOMETRY); for tests and tuning.

    Not thread-safe: it changes a module-level setting for the duration of the block.
    """
    unknown = set(changes) - set(_geometry)
    if unknown:
        raise ValueError(f"unknown launch settings {sorted(unknown)}; known: {sorted(_geometry)}")
    if "tpb" in changes and changes["tpb"] & (changes["tpb"] - 1):
        raise ValueError("tpb must be a power of two")
    if "col" in changes and changes["col"][1] & (changes["col"][1] - 1):
        raise ValueError("col rows must be a power of two")
    saved = dict(_geometry)
    _geometry.update(changes)
    try:
        yield dict(_geometry)
    finally:
        _geometry.clear()
        _geometry.update(saved)


def _blocks(work, per_block, hard_max):
    """Blocks for `work` items at `per_block` per block, capped; at least one."""
    n = max(1, -(-int(work) // per_block))
    cap = _geometry["max_blocks"]
    if cap is not None:
        n = min(n, int(cap))
    return max(1, min(n, hard_max))


# ------------------------------------------------------------------ kernel factory

_cache = {}
_cache_lock = threading.Lock()


def _kernels(dtype):
    """The compiled-on-first-call kernels for one dtype and the current geometry."""
    dtype = np.dtype(dtype)
    g = _geometry
    key = (dtype.str, g["tile"], g["tpb"], tuple(g["col"]))
    ks = _cache.get(key)
    if ks is None:
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"cuda kernels take float32 or float64 arrays, not {dtype}")
        with _cache_lock:
            ks = _cache.get(key)
            if ks is None:
                ks = _cache[key] = _build(dtype, g["tile"], g["tpb"], tuple(g["col"]))
    return ks


class _Kernels:
    """A namespace of kernels for one (dtype, geometry)."""


def _build(dtype, T, TPB, COL):  # noqa: C901 - one closure per kernel family, on purpose
    """Define (not compile: numba compiles on the first launch) the kernels for a dtype."""
    from numba.cuda.np.numpy_support import from_dtype

    nbt = from_dtype(dtype)
    f64 = from_dtype(np.dtype(np.float64))
    fty = dtype.type
    F64 = np.float64
    ZERO = fty(0.0)
    ONE = fty(1.0)
    T1 = T + 1             # padded shared-tile row (no bank conflicts on transposed stores)
    CX, CY = COL

    # ------------------------------------------------------------ device functions

    @cuda.jit(device=True)
    def act_fn(z, act, alpha):
        """g(z) for an elementwise activation code; NaN in gives NaN out."""
        if act == SIGMOID:
            e = math.exp(-abs(z))      # never overflows: e <= 1
            if z >= ZERO:
                return ONE / (ONE + e)
            return e / (ONE + e)
        if act == TANH:
            return math.tanh(z)
        if act == RELU:
            return ZERO if z <= ZERO else z
        if act == LEAKY_RELU:
            return z if z > ZERO else alpha * z
        return z

    @cuda.jit(device=True)
    def dact_fn(a, act, alpha):
        """g'(z) from the output a = g(z)."""
        if act == SIGMOID:
            return a * (ONE - a)
        if act == TANH:
            return ONE - a * a
        if act == RELU:
            return ONE if a > ZERO else ZERO
        if act == LEAKY_RELU:
            return ONE if a > ZERO else alpha
        return ONE

    @cuda.jit(device=True)
    def block_sum(sh, tid, val):
        """Sum of `val` over the TPB threads of a 1-D block (tree in shared memory)."""
        sh[tid] = val
        cuda.syncthreads()
        h = TPB // 2
        while h > 0:
            if tid < h:
                sh[tid] += sh[tid + h]
            cuda.syncthreads()
            h //= 2
        return sh[0]

    def make_tile_dot(TA, TB):
        """acc[i, j] of op(A) @ op(B) for this thread's (r0+ty, c0+tx), over all k.

        TA: A is stored (K, M) and op(A) = A.T, else stored (M, K).
        TB: B is stored (N, K) and op(B) = B.T, else stored (K, N).
        Every thread of the block must call it (it synchronises).
        """
        @cuda.jit(device=True)
        def tile_dot(A, B, M, N, K, r0, c0, ty, tx, sA, sB):
            acc = ZERO
            for k0 in range(0, K, T):
                # sA[i_local, k_local], sB[k_local, j_local]; global reads run along tx
                if TA:
                    k = k0 + ty
                    i = r0 + tx
                    if k < K and i < M:
                        sA[tx, ty] = A[k, i]
                    else:
                        sA[tx, ty] = ZERO
                else:
                    i = r0 + ty
                    k = k0 + tx
                    if i < M and k < K:
                        sA[ty, tx] = A[i, k]
                    else:
                        sA[ty, tx] = ZERO
                if TB:
                    j = c0 + ty
                    k = k0 + tx
                    if j < N and k < K:
                        sB[tx, ty] = B[j, k]
                    else:
                        sB[tx, ty] = ZERO
                else:
                    k = k0 + ty
                    j = c0 + tx
                    if k < K and j < N:
                        sB[ty, tx] = B[k, j]
                    else:
                        sB[ty, tx] = ZERO
                cuda.syncthreads()
                for kk in range(T):
                    acc += sA[ty, kk] * sB[kk, tx]
                cuda.syncthreads()
            return acc

        return tile_dot

    dot_nn = make_tile_dot(False, False)
    dot_nt = make_tile_dot(False, True)
    dot_tn = make_tile_dot(True, False)

    # ------------------------------------------------------------ matrix-product kernels

    @cuda.jit
    def forward_tiles(X, W, b, act, alpha, A):
        """A = g(X @ W + b); for SOFTMAX, A = X @ W + b (the row pass follows)."""
        sA = cuda.shared.array((T, T1), nbt)
        sB = cuda.shared.array((T, T1), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = A.shape[0]
        N = A.shape[1]
        K = X.shape[1]
        for bi in range(cuda.blockIdx.y, (M + T - 1) // T, cuda.gridDim.y):
            for bj in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
                r0 = bi * T
                c0 = bj * T
                acc = dot_nn(X, W, M, N, K, r0, c0, ty, tx, sA, sB)
                i = r0 + ty
                j = c0 + tx
                if i < M and j < N:
                    z = acc + b[j]
                    if act == SOFTMAX:
                        A[i, j] = z
                    else:
                        A[i, j] = act_fn(z, act, alpha)

    @cuda.jit
    def backward_tiles(dZ, W, A_prev, act, alpha, dZ_prev):
        """dZ_prev = (dZ @ W.T) * g'(A_prev); W is read as stored, (n_in, n_out)."""
        sA = cuda.shared.array((T, T1), nbt)
        sB = cuda.shared.array((T, T1), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = dZ_prev.shape[0]
        N = dZ_prev.shape[1]
        K = dZ.shape[1]
        for bi in range(cuda.blockIdx.y, (M + T - 1) // T, cuda.gridDim.y):
            for bj in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
                r0 = bi * T
                c0 = bj * T
                acc = dot_nt(dZ, W, M, N, K, r0, c0, ty, tx, sA, sB)
                i = r0 + ty
                j = c0 + tx
                if i < M and j < N:
                    dZ_prev[i, j] = acc * dact_fn(A_prev[i, j], act, alpha)

    @cuda.jit
    def delta_tiles(A_prev, dZ, W, coef, dW):
        """dW = A_prev.T @ dZ + coef * W (coef = l2/m; skipped when 0, as the reference)."""
        sA = cuda.shared.array((T, T1), nbt)
        sB = cuda.shared.array((T, T1), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = dW.shape[0]
        N = dW.shape[1]
        K = A_prev.shape[0]
        for bi in range(cuda.blockIdx.y, (M + T - 1) // T, cuda.gridDim.y):
            for bj in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
                r0 = bi * T
                c0 = bj * T
                acc = dot_tn(A_prev, dZ, M, N, K, r0, c0, ty, tx, sA, sB)
                i = r0 + ty
                j = c0 + tx
                if i < M and j < N:
                    if coef != ZERO:
                        acc += coef * W[i, j]
                    dW[i, j] = acc

    @cuda.jit
    def colsum(dZ, db):
        """db = dZ.sum(0): CX columns per block, CY threads down each, float64 sums."""
        sh = cuda.shared.array((CY, CX), f64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        m = dZ.shape[0]
        n = dZ.shape[1]
        for c0 in range(cuda.blockIdx.x * CX, n, cuda.gridDim.x * CX):
            j = c0 + tx
            s = F64(0.0)
            if j < n:
                for i in range(ty, m, CY):
                    s += dZ[i, j]
            sh[ty, tx] = s
            cuda.syncthreads()
            h = CY // 2
            while h > 0:
                if ty < h:
                    sh[ty, tx] += sh[ty + h, tx]
                cuda.syncthreads()
                h //= 2
            if ty == 0 and j < n:
                db[j] = sh[0, tx]
            cuda.syncthreads()

    # ------------------------------------------------------------ row kernels

    @cuda.jit
    def softmax_rows(A):
        """In place, row by row: A = exp(A - max) / sum exp(A - max); NaN spreads to its row."""
        m = A.shape[0]
        k = A.shape[1]
        for i in range(cuda.grid(1), m, cuda.gridsize(1)):
            mx = A[i, 0]
            for j in range(1, k):
                z = A[i, j]
                if z > mx or z != z:
                    mx = z
            s = ZERO
            for j in range(k):
                e = math.exp(A[i, j] - mx)
                A[i, j] = e
                s += e
            for j in range(k):
                A[i, j] = A[i, j] / s

    @cuda.jit
    def loss_rows(Z, Y, act, alpha, loss, mdiv, A, dZ, partials):
        """A = g(Z), dZ = dJ/dZ; each block writes its float64 share of the summed loss."""
        sh = cuda.shared.array(TPB, f64)
        tid = cuda.threadIdx.x
        m = Z.shape[0]
        k = Z.shape[1]
        jl = F64(0.0)
        for i in range(cuda.blockIdx.x * TPB + tid, m, cuda.gridDim.x * TPB):
            mx = ZERO
            se = ONE
            lse = ZERO
            if act == SOFTMAX or loss == CROSS_ENTROPY:
                mx = Z[i, 0]
                for j in range(1, k):
                    z = Z[i, j]
                    if z > mx or z != z:
                        mx = z
                se = ZERO
                for j in range(k):
                    se += math.exp(Z[i, j] - mx)
                lse = mx + math.log(se)
            for j in range(k):
                z = Z[i, j]
                y = Y[i, j]
                if act == SOFTMAX:
                    a = math.exp(z - mx) / se
                else:
                    a = act_fn(z, act, alpha)
                A[i, j] = a
                d = a - y
                if loss == BCE:
                    zz = F64(z)
                    jl += ((F64(0.0) if zz <= 0.0 else zz) - F64(y) * zz
                           + math.log1p(math.exp(-abs(zz))))
                    dZ[i, j] = d / mdiv
                elif loss == CROSS_ENTROPY:
                    jl += F64(y) * (F64(lse) - F64(z))
                    dZ[i, j] = d / mdiv
                elif loss == MSE:
                    jl += 0.5 * (F64(d) * F64(d))
                    dZ[i, j] = d * dact_fn(a, act, alpha) / mdiv
                else:  # MAE
                    jl += abs(F64(d))
                    sgn = ONE if d > ZERO else (-ONE if d < ZERO else d * ZERO)  # NaN stays
                    dZ[i, j] = sgn * dact_fn(a, act, alpha) / mdiv
        total = block_sum(sh, tid, jl)
        if tid == 0:
            partials[cuda.blockIdx.x] = total

    # ------------------------------------------------------------ flat kernels

    @cuda.jit
    def sumsq_partials(x, partials):
        """Each block writes its float64 share of sum(x**2)."""
        sh = cuda.shared.array(TPB, f64)
        tid = cuda.threadIdx.x
        s = F64(0.0)
        for p in range(cuda.blockIdx.x * TPB + tid, x.shape[0], cuda.gridDim.x * TPB):
            v = F64(x[p])
            s += v * v
        total = block_sum(sh, tid, s)
        if tid == 0:
            partials[cuda.blockIdx.x] = total

    @cuda.jit
    def reduce_partials(partials, n, div, out):
        """One block: out[0] = sum(partials[:n]) / div, summed in a fixed order."""
        sh = cuda.shared.array(TPB, f64)
        tid = cuda.threadIdx.x
        s = F64(0.0)
        for p in range(tid, n, TPB):
            s += partials[p]
        total = block_sum(sh, tid, s)
        if tid == 0:
            out[0] = total / div

    @cuda.jit
    def sgd(theta, grad, vel, lr, mom, mode):
        """mode 0: theta -= lr g;  1: momentum;  2: Nesterov momentum."""
        for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            g = grad[p]
            if mode == 0:
                theta[p] = theta[p] - lr * g
            else:
                v = mom * vel[p] - lr * g
                vel[p] = v
                if mode == 2:
                    theta[p] = theta[p] + (mom * v - lr * g)
                else:
                    theta[p] = theta[p] + v

    @cuda.jit
    def adam(theta, grad, m1, m2, lr, b1, b2, omb1, omb2, bc1, bc2, eps):
        """Adam with bias correction; omb = 1 - beta, bc = 1 - beta**t."""
        for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            g = grad[p]
            a = b1 * m1[p] + omb1 * g
            v = b2 * m2[p] + omb2 * g * g
            m1[p] = a
            m2[p] = v
            theta[p] = theta[p] - lr * (a / bc1) / (math.sqrt(v / bc2) + eps)

    @cuda.jit
    def fill(x, val):
        for p in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            x[p] = val

    ks = _Kernels()
    ks.__dict__.update(
        dtype=dtype, fty=fty, T=T, TPB=TPB, COL=COL,
        forward_tiles=forward_tiles, backward_tiles=backward_tiles, delta_tiles=delta_tiles,
        colsum=colsum, softmax_rows=softmax_rows, loss_rows=loss_rows,
        sumsq_partials=sumsq_partials, reduce_partials=reduce_partials,
        sgd=sgd, adam=adam, fill=fill)
    return ks


# ------------------------------------------------------------------ scratch for reductions

_scratch = threading.local()


def _reduction_buffers():
    """Per host thread: float64 partial sums and a one-element result, allocated once."""
    need = int(_geometry["partials"])
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None or bufs[0].shape[0] < need:
        bufs = (cuda.device_array(need, dtype=np.float64), cuda.device_array(1, dtype=np.float64))
        _scratch.bufs = bufs
    return bufs


def _finish_sum(ks, partials, nparts, out, div):
    ks.reduce_partials[1, ks.TPB](partials, nparts, float(div), out)
    return float(out.copy_to_host()[0])


def _tile_grid(ks, rows, cols):
    T = ks.T
    return (_blocks(cols, T, _GRID_X_MAX), _blocks(rows, T, _GRID_Y_MAX)), (T, T)


def _flat_grid(ks, n):
    return _blocks(n, ks.TPB, min(_GRID_X_MAX, int(_geometry["flat_blocks"]))), ks.TPB


def _flat(x):
    """A 1-D view of a C-contiguous device array."""
    return x if x.ndim == 1 else x.reshape(x.size)


def _check_act(act, allowed):
    if act not in allowed:
        raise ValueError(f"unknown or unsupported activation code {act}")


# ------------------------------------------------------------------ kernels (the interface)

def linear_forward(A_prev, W, b, act, alpha, A):
    """A = g(A_prev @ W + b), in place; softmax rows have their max subtracted."""
    _check_act(act, _ACT_CODES)
    ks = _kernels(A.dtype)
    m, n_out = A.shape
    if m == 0 or n_out == 0:
        return
    grid, block = _tile_grid(ks, m, n_out)
    ks.forward_tiles[grid, block](A_prev, W, b, int(act), ks.fty(alpha), A)
    if act == SOFTMAX:
        ks.softmax_rows[_flat_grid(ks, m)](A)


def activation_backward(dZ, W, A_prev, act, alpha, dZ_prev):
    """dZ_prev = (dZ @ W.T) * g'(A_prev), in place."""
    _check_act(act, _HIDDEN_CODES)
    ks = _kernels(dZ_prev.dtype)
    m, n_in = dZ_prev.shape
    if m == 0 or n_in == 0:
        return
    grid, block = _tile_grid(ks, m, n_in)
    ks.backward_tiles[grid, block](dZ, W, A_prev, int(act), ks.fty(alpha), dZ_prev)


def loss_grad(Z, Y, act, alpha, loss, A, dZ):
    """A = g(Z), dZ = dJ/dZ in place; returns J (mean over rows) as a Python float."""
    _check_act(act, _ACT_CODES)
    if loss not in _LOSS_CODES:
        raise ValueError(f"unknown loss code {loss}")
    if act == SOFTMAX and loss in (MSE, MAE):
        raise ValueError(f"activation code {act} has no elementwise derivative")
    ks = _kernels(Z.dtype)
    m = Z.shape[0]
    partials, out = _reduction_buffers()
    nblocks = min(_flat_grid(ks, m)[0], partials.shape[0])
    ks.loss_rows[nblocks, ks.TPB](Z, Y, int(act), ks.fty(alpha), int(loss), ks.fty(m),
                                  A, dZ, partials)
    return _finish_sum(ks, partials, nblocks, out, m)


def accumulate_delta(A_prev, dZ, W, l2, dW, db):
    """dW = A_prev.T @ dZ + (l2/m) W,  db = dZ.sum(0);  overwrites dW and db."""
    ks = _kernels(dW.dtype)
    m = A_prev.shape[0]
    n_in, n_out = dW.shape
    coef = (l2 / m) if (l2 != 0.0 and m > 0) else 0.0
    if n_in > 0 and n_out > 0:
        grid, block = _tile_grid(ks, n_in, n_out)
        ks.delta_tiles[grid, block](A_prev, dZ, W, ks.fty(coef), dW)
    if n_out > 0:
        cx, cy = ks.COL
        ks.colsum[_blocks(n_out, cx, _GRID_X_MAX), (cx, cy)](dZ, db)


def sum_squares(W):
    """sum of W**2 (float64 accumulation), as a Python float."""
    ks = _kernels(W.dtype)
    x = _flat(W)
    n = x.shape[0]
    if n == 0:
        return 0.0
    partials, out = _reduction_buffers()
    nblocks = min(_flat_grid(ks, n)[0], partials.shape[0])
    ks.sumsq_partials[nblocks, ks.TPB](x, partials)
    return _finish_sum(ks, partials, nblocks, out, 1.0)


def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    """theta -= lr grad, or (Nesterov) momentum; fused over the 1-D parameter vector."""
    ks = _kernels(theta.dtype)
    n = theta.shape[0]
    if n == 0:
        return
    mode = 0 if momentum == 0.0 else (2 if nesterov else 1)
    ks.sgd[_flat_grid(ks, n)](theta, grad, velocity, ks.fty(lr), ks.fty(momentum), mode)


def adam_update(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    """Adam with bias-corrected moments (t counts from 1), fused over the 1-D vector."""
    ks = _kernels(theta.dtype)
    n = theta.shape[0]
    if n == 0:
        return
    f = ks.fty
    ks.adam[_flat_grid(ks, n)](theta, grad, m1, m2, f(lr), f(beta1), f(beta2),
                               f(1 - beta1), f(1 - beta2), f(1 - beta1 ** t),
                               f(1 - beta2 ** t), f(eps))


# ------------------------------------------------------------------ array helpers

def empty(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape, dtype):
    """A device array of zeros (filled on the device; no host buffer)."""
    x = empty(shape, dtype)
    if x.size:
        dt = np.dtype(dtype)
        flat = _flat(x)
        if dt in (np.dtype(np.float32), np.dtype(np.float64)):
            ks = _kernels(dt)
            ks.fill[_flat_grid(ks, flat.shape[0])](flat, ks.fty(0.0))
        else:
            flat.copy_to_device(np.zeros(flat.shape[0], dtype=dt))
    return x


def _is_device(x):
    return bool(getattr(x, "__cuda_ndarray__", False)) or hasattr(x, "__cuda_array_interface__")


def to_device(x):
    """A new device array holding a copy of x (a host array, or a device array)."""
    if _is_device(x):
        if not getattr(x, "__cuda_ndarray__", False):
            x = cuda.as_cuda_array(x)
        out = cuda.device_array(x.shape, dtype=x.dtype)
        out.copy_to_device(x)
        return out
    return cuda.to_device(np.asarray(x, order="C"))


def to_host(x):
    """A new NumPy array holding a copy of x (a device array, or a host array)."""
    if _is_device(x):
        if not getattr(x, "__cuda_ndarray__", False):
            x = cuda.as_cuda_array(x)
        return x.copy_to_host()
    return np.array(x, copy=True)


if SIMULATOR:
    _cudasim.serialize(globals())
