"""The Numba CPU backend: the kernels of ``fastnn.kernels`` as fused, vectorized loops.

Every public function has the signature of its twin in ``reference.py`` and is held equal to
it by ``tests/test_kernels.py``.  Each is a thin Python wrapper that picks, by the size of
its output, one ``@njit(cache=True)`` implementation: a *serial* one, or a *parallel* one
(``prange`` over chunks) from a size threshold on.  On the 2-core target the thresholds
keep every workload serial: see "dispatch" below for the measurements.

Design:

* The matrix products are one BLAS ``?gemm`` call (``_gemm`` of ``cpu_blas.py``: NumPy's
  bundled OpenBLAS where there is one, else SciPy's BLAS; called directly so that
  transposes and ``beta`` are free and no ``np.dot`` overload gets compiled), at the
  top level of a kernel, never inside a ``prange`` body.  It is followed by one fused pass
  over the output (bias + activation, activation derivative, L2 term + bias gradient).
  Loop-nest products of our own lost to OpenBLAS at every workload shape, the tiny and
  skinny ones included (e.g. 209x20x7: 19 us vs 2.8 us; 32x16x16: 3.2 us vs 0.9 us; only
  32x2x16 won, 0.6 vs 1.1 us).  Register-tiled vector-FMA kernels win where a skinny
  layer meets a large batch (bench/results/2026-11-24-vm-own-gemm.md,
  ...-vm-skinny-tiles.md): networks made of such layers take their own step and
  inference, with no BLAS at all (``cpu_skinny.py``, ``cpu_tiles.py``); and where a
  skinny layer meets long input rows (float32, <= 24 units, >= 4096 inputs: the first
  layer of 64x64 images), whose two products every kernel here takes from
  ``cpu_long.py`` instead of ?gemm (``_times_w``, ``_xt_times``).
* Kernels are specialised on the activation / loss code (closures over a constant, built
  on first use; numba prunes the other branches before compiling), so that a network
  compiles only what it uses and each compiled function stays small (cold compile time).
* exp, tanh, sigmoid and log1p are branch-free polynomial forms (``_exp_split``), because
  numba without SVML calls scalar libm (5-25 ns an element) in loops that then do not
  vectorize; these do (sigmoid ~0.7 ns / element in float32, ~2.4 ns in float64).  They
  are accurate to a few ulp (tests/test_cpu_backend.py checks the whole range).
* fastmath only with ``{"nsz", "arcp", "contract", "afn"}`` (never ``"fast"``: NaN and Inf
  keep their IEEE meaning; no ``"reassoc"``, see ``_FM``), and ``error_model="numpy"``
  (no division-by-zero branches, so loops vectorize).
* Deterministic, bitwise, across calls and processes (cold or warm cache), and across
  thread counts for everything but the BLAS products (OpenBLAS splits a float32 product
  differently with its thread count, changing the last bits; float64 agreed in every shape
  tried; cpu_long's products do not depend on it): no ``prange`` reductions; sums run
  over chunks fixed by the shape alone and add the partial sums in chunk order, the
  serial variant over the same chunks; no fastmath
  flag that lets two compiled copies of the same code round differently (``_FM``,
  ``_LOOP``, ``_SCALAR``).
* Loops run over views starting at index 0 (``_flat``, slices): a loop from a runtime
  offset keeps numba's negative-index wraparound in its body and does not vectorize.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import (BCE, CROSS_ENTROPY, IDENTITY, LEAKY_RELU, MAE, MSE, RELU, SIGMOID, SOFTMAX,
               TANH)
from ._codegen import counted_loop
from .cpu_blas import BLAS_SOURCE, _gemm, host_avx512  # noqa: F401 - BLAS_SOURCE: API
from .cpu_long import long_forward, long_gradient, long_rows  # installs their symbols

#: no "reassoc": a parallel kernel's loop body is compiled into a gufunc that exists twice,
#: its own compiled copy and a copy linked into (and optimized again with) the kernel; the
#: compiling process may run the first and a process that loads the cache the second, and
#: with reassoc the two may round differently (measured: sgd with Nesterov momentum).
#: Without it every copy computes the same bits; sums are written to vectorize without
#: it (per-column accumulators, or 8 interleaved ones), in a fixed order.
_FM = {"nsz", "arcp", "contract", "afn"}

#: kernels: the functions the wrappers call (cached; parallel ones add prange)
_SER = dict(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
_PAR = dict(_SER, parallel=True)
#: loop helpers are inlined into each kernel at the numba IR level, so that the kernel is
#: the only compiled copy of their loops (a separately compiled copy, optimized apart with
#: fastmath, may round differently: the first, compiling process would then disagree
#: with later ones that load the cache).  A kernel whose act / loss is a constant calls
#: them from an if-chain that numba prunes before inlining: only what it uses is compiled.
_LOOP = dict(fastmath=_FM, error_model="numpy", inline="always")
#: scalar float helpers: IEEE arithmetic, so every compiled copy gives the same bits
#: (fastmath=False explicitly: an unset option is inherited from the first caller)
_SCALAR = dict(error_model="numpy", fastmath=False)


# ----------------------------------------------------------------- scalar building blocks
# Scalar float helpers are compiled *without* fastmath (IEEE, fused multiply-adds only where
# written as _fma): a helper may run as its own compiled copy in one process and inlined in
# another (after a cache load), and both must give the same bits.

@intrinsic
def _as_float(typingctx, x):
    """Reinterpret the bits of an int32 (int64) as a float32 (float64)."""
    if x == types.int32:
        rt = types.float32
    elif x == types.int64:
        rt = types.float64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))

    return rt(x), codegen


@intrinsic
def _as_int(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (the inverse of _as_float)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: one instruction on FMA hardware, vectorizable)."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def _view(typingctx, A, off, shape):
    """The C-contiguous array of `shape` (an int or a 2-tuple of ints) whose first entry
    is A.flat[off]: a view into A's buffer, without a reference to it.  Making and passing
    such a view costs no atomic reference counting (a slice or reshape increments and
    decrements the count of A's buffer each time: ~30% of a 2-16-16-1 step at batch 32);
    the caller keeps A alive and the view in range, and never returns it."""
    if not (isinstance(A, types.Array) and A.layout == "C" and isinstance(off, types.Integer)):
        return None
    if isinstance(shape, types.Integer):
        dims = [shape]
    elif (isinstance(shape, types.BaseTuple) and len(shape) == 2
          and all(isinstance(t, types.Integer) for t in shape)):
        dims = list(shape)
    else:
        return None
    out = types.Array(A.dtype, len(dims), "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        res = context.make_array(out)(context, builder)
        intp = context.get_value_type(types.intp)
        if len(dims) == 1:
            shp = [context.cast(builder, args[2], sig.args[2], types.intp)]
        else:
            shp = [context.cast(builder, builder.extract_value(args[2], k), sig.args[2][k],
                                types.intp) for k in range(2)]
        item = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(A.dtype)))
        strides = [item] if len(dims) == 1 else [builder.mul(shp[1], item), item]
        first = context.cast(builder, args[1], sig.args[1], types.intp)
        context.populate_array(res, data=builder.gep(src.data, [first]), shape=shp,
                               strides=strides, itemsize=item, meminfo=None)
        return res._getvalue()

    return out(A, off, shape), codegen


@intrinsic
def _like(typingctx, x, ref):
    """x cast to the float dtype of ref (an array or a float scalar); inline, no call."""
    dt = ref.dtype if isinstance(ref, types.Array) else ref
    x = types.unliteral(x)
    if not (isinstance(dt, types.Float) and isinstance(x, (types.Number, types.Boolean))):
        return None

    def codegen(context, builder, sig, args):
        return context.cast(builder, args[0], sig.args[0], dt)

    return dt(x, ref), codegen


def _exp_split(x):
    """For x <= 0 or NaN: (s, q), exp(x) = s (1 + q), s = 2**n, q = expm1(r), |r| <= ln2/2.

    Branch-free, so loops calling it vectorize.  x below -87 (float32) / -708 (float64) is
    clamped there: exp gives exp(-87) = 1.6e-38 / exp(-708) = 3.3e-308 for every such x, so
    results below that (the smallest normal numbers, subnormals, 0) come out as that value
    (an absolute error under 2e-38 / 3.3e-308); NaN stays NaN.
    Taylor polynomials of degree 7 / 13 (truncation < 1e-8 / 1e-17 relative).
    """


@overload(_exp_split, jit_options=_SCALAR)
def _ov_exp_split(x):
    if x == types.float32:
        lo, l2e, half = np.float32(-87.0), np.float32(1.4426950408889634), np.float32(0.5)
        c1, c2, zero = np.float32(0.693359375), np.float32(-2.12194440e-4), np.float32(0.0)
        p2, p3, p4 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
        p5, p6, p7 = np.float32(1 / 120), np.float32(1 / 720), np.float32(1 / 5040)
        bias, shift = np.int32(127), np.int32(23)

        def impl32(x):
            x = lo if x < lo else x
            n = np.floor(_fma(x, l2e, half))
            n = zero if n != n else n
            r = _fma(-n, c2, _fma(-n, c1, x))
            p = _fma(_fma(_fma(_fma(_fma(p7, r, p6), r, p5), r, p4), r, p3), r, p2)
            q = _fma(r * r, p, r)
            s = _as_float(np.int32((np.int32(n) + bias) << shift))
            return s, q

        return impl32
    if x == types.float64:
        lo, l2e = -708.0, 1.4426950408889634
        # n + 1.5 * 2**52 holds the integer n in its low mantissa bits: 2**n's exponent
        # field from integer ops alone (AVX2 has no vector float64 -> int64 conversion,
        # so np.int64(n) ran as four scalar ones in every vectorized loop)
        magic = 6755399441055744.0
        c1, c2 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
        p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13 = (
            1.0 / math.factorial(k) for k in range(2, 14))
        bias, shift = np.int64(1023), np.int64(52)

        def impl64(x):
            x = lo if x < lo else x
            n = np.floor(_fma(x, l2e, 0.5))
            n = 0.0 if n != n else n
            r = _fma(-n, c2, _fma(-n, c1, x))
            p = _fma(p13, r, p12)
            p = _fma(p, r, p11)
            p = _fma(p, r, p10)
            p = _fma(p, r, p9)
            p = _fma(p, r, p8)
            p = _fma(p, r, p7)
            p = _fma(p, r, p6)
            p = _fma(p, r, p5)
            p = _fma(p, r, p4)
            p = _fma(p, r, p3)
            p = _fma(p, r, p2)
            q = _fma(r * r, p, r)
            s = _as_float((_as_int(n + magic) + bias) << shift)
            return s, q

        return impl64
    return None


def _log1p_unit(e):
    """log(1 + e) for e in [0, 1] (or NaN): 2 atanh(e / (2 + e)), an odd series in s <= 1/3
    (9 / 18 terms: truncation < 1e-9 / 1e-17 relative)."""


@overload(_log1p_unit, jit_options=_SCALAR)
def _ov_log1p_unit(e):
    if e == types.float32:
        two = np.float32(2.0)
        c0, c1, c2, c3, c4, c5, c6, c7, c8 = (np.float32(1.0 / (2 * k + 1)) for k in range(9))

        def impl32(e):
            s = e / (two + e)
            t = s * s
            p = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(c8, t, c7), t, c6), t, c5), t, c4),
                                    t, c3), t, c2), t, c1), t, c0)
            return two * s * p

        return impl32
    if e == types.float64:
        (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16,
         c17) = (1.0 / (2 * k + 1) for k in range(18))

        def impl64(e):
            s = e / (2.0 + e)
            t = s * s
            p = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(c17, t, c16), t, c15), t, c14), t,
                                         c13), t, c12), t, c11), t, c10), t, c9)
            p = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(p, t, c8), t, c7), t, c6), t,
                                              c5), t, c4), t, c3), t, c2), t, c1), t, c0)
            return 2.0 * s * p

        return impl64
    return None


@njit(**_SCALAR)
def _exp_nonpos(x):
    """exp(x) for x <= 0 (NaN propagates)."""
    s, q = _exp_split(x)
    return _fma(s, q, s)


@njit(**_SCALAR)
def _sigmoid(z):
    """1 / (1 + e^-z) from e = e^-|z|: no overflow for any z."""
    one = _like(1.0, z)
    e = _exp_nonpos(-abs(z))
    return (one if z >= 0 else e) / (one + e)


@njit(**_SCALAR)
def _tanh(z):
    """tanh z = -expm1(-2|z|) / (2 + expm1(-2|z|)), with the sign of z."""
    s, q = _exp_split(_like(-2.0, z) * abs(z))
    em1 = _fma(s, q, s - _like(1.0, z))
    return math.copysign(-em1 / (_like(2.0, z) + em1), z)


@njit(**_SCALAR)
def _g(z, act, al):
    """g(z) for an elementwise activation code (used by the rare loss pairings only)."""
    if act == SIGMOID:
        return _sigmoid(z)
    if act == TANH:
        return _tanh(z)
    if act == RELU:
        return _like(0.0, z) if z < 0 else z          # NaN stays NaN
    if act == LEAKY_RELU:
        return z if z > 0 else al * z
    return z


@njit(**_SCALAR)
def _dg(a, act, al):
    """g'(z) from the output a = g(z)."""
    one = _like(1.0, a)
    if act == SIGMOID:
        return a * (one - a)
    if act == TANH:
        return one - a * a
    if act == RELU:
        return one if a > 0 else _like(0.0, a)
    if act == LEAKY_RELU:
        return one if a > 0 else al
    return one


# ------------------------------------------------------------------------- row helpers

@njit(**_LOOP)
def _nchunks(n, per_chunk):
    """Chunks for n items, at least per_chunk each: a function of n only (never of the
    thread count), so that sums over chunks are the same for any number of threads."""
    c = n // per_chunk
    return 1 if c < 1 else (_MAX_CHUNKS if c > _MAX_CHUNKS else c)


#: chunked loops use at most this many chunks
_MAX_CHUNKS = 64


@njit(**_LOOP)
def _softmax_row(A, i):
    """A[i] = softmax(A[i]), the row max subtracted.  A NaN in the row makes it all NaN
    (the comparison skips it, but exp(NaN - max) then poisons the sum)."""
    n = A.shape[1]
    mx = _row_max(A, i)
    for j in range(n):
        A[i, j] = _exp_nonpos(A[i, j] - mx)
    s = _like(0.0, A)
    for j in range(n):
        s += A[i, j]
    inv = _like(1.0, A) / s
    for j in range(n):
        A[i, j] *= inv


# Row loops index 2-D arrays as A[i, j] rather than through row views (row = A[i]): each
# view costs an atomic increment and decrement of the array's reference count, which
# was ~30% of a 2-16-16-1 step at batch 32.

@njit(**_LOOP)
def _flat(A, r0, r1):
    """Rows r0:r1 of a C-contiguous 2-D array as one 1-D view (long loops vectorize well
    even when the rows are short: n_out = 1, 5, 10 ...)."""
    n = A.shape[1]
    return _view(A, r0 * n, (r1 - r0) * n)


@njit(**_LOOP)
def _zero_rows(A, r0, r1):
    """A[r0:r1] = 0 (for products that add into their output)."""
    zero = _like(0.0, A)
    for i in range(r0, r1):
        for j in range(A.shape[1]):
            A[i, j] = zero


@njit(**_LOOP)
def _add_bias_rows(A, b, r0, r1):
    for i in range(r0, r1):
        for j in range(A.shape[1]):
            A[i, j] += b[j]


@njit(**_LOOP)
def _sum8(t):
    """sum of t in float64: 8 interleaved accumulators, combined in a fixed order.  LLVM
    keeps them as 8 scalar chains (it does not vectorize them: see _ss_range, which
    needed an intrinsic); enough for the loss's blocks of at most _LOSS_BLOCK terms."""
    n = t.shape[0]
    n8 = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(0, n8, 8):
        s0 += t[i]
        s1 += t[i + 1]
        s2 += t[i + 2]
        s3 += t[i + 3]
        s4 += t[i + 4]
        s5 += t[i + 5]
        s6 += t[i + 6]
        s7 += t[i + 7]
    for i in range(n8, n):
        s0 += t[i]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


# A[r0:r1] = g(A[r0:r1] + b), in place, per activation

@njit(**_LOOP)
def _fwd_relu_rows(A, b, alpha, r0, r1):
    zero = _like(0.0, A)
    if A.shape[1] >= 16:                           # one fused pass over long rows
        for i in range(r0, r1):
            for j in range(A.shape[1]):
                z = A[i, j] + b[j]
                A[i, j] = zero if z < zero else z  # NaN stays NaN
    else:
        _add_bias_rows(A, b, r0, r1)
        f = _flat(A, r0, r1)
        for t in range(f.shape[0]):
            f[t] = zero if f[t] < zero else f[t]


@njit(**_LOOP)
def _fwd_leaky_rows(A, b, alpha, r0, r1):
    zero = _like(0.0, A)
    al = _like(alpha, A)
    if A.shape[1] >= 16:
        for i in range(r0, r1):
            for j in range(A.shape[1]):
                z = A[i, j] + b[j]
                A[i, j] = z if z > zero else al * z
    else:
        _add_bias_rows(A, b, r0, r1)
        f = _flat(A, r0, r1)
        for t in range(f.shape[0]):
            f[t] = f[t] if f[t] > zero else al * f[t]


@njit(**_LOOP)
def _fwd_sigmoid_rows(A, b, alpha, r0, r1):
    _add_bias_rows(A, b, r0, r1)
    f = _flat(A, r0, r1)
    for t in range(f.shape[0]):
        f[t] = _sigmoid(f[t])


@njit(**_LOOP)
def _fwd_tanh_rows(A, b, alpha, r0, r1):
    _add_bias_rows(A, b, r0, r1)
    f = _flat(A, r0, r1)
    for t in range(f.shape[0]):
        f[t] = _tanh(f[t])


@njit(**_LOOP)
def _row_max(A, i):
    """max of A[i]; a NaN in the row makes the softmax row all NaN anyway (the comparison
    skips it, but exp(NaN - max) then poisons the row's sum)."""
    mx = A[i, 0]
    for j in range(1, A.shape[1]):
        mx = A[i, j] if A[i, j] > mx else mx
    return mx


@njit(**_LOOP)
def _fwd_softmax_rows(A, b, alpha, r0, r1):
    one = _like(1.0, A)
    n = A.shape[1]
    for i in range(r0, r1):                    # z + b - max(z + b), row by row
        for j in range(n):
            A[i, j] += b[j]
        mx = _row_max(A, i)
        for j in range(n):
            A[i, j] -= mx
    f = _flat(A, r0, r1)                       # exp over the whole block
    for t in range(f.shape[0]):
        f[t] = _exp_nonpos(f[t])
    for i in range(r0, r1):                    # normalise, row by row
        s = _like(0.0, A)
        for j in range(n):
            s += A[i, j]
        inv = one / s
        for j in range(n):
            A[i, j] *= inv


# out[r0:r1] *= g'(A_prev[r0:r1]), per activation (identity: nothing to do); elementwise,
# so over the block as one 1-D loop

@njit(**_LOOP)
def _bwd_sigmoid_rows(A_prev, alpha, out, r0, r1):
    one = _like(1.0, out)
    o, a = _flat(out, r0, r1), _flat(A_prev, r0, r1)
    for t in range(o.shape[0]):
        o[t] *= a[t] * (one - a[t])


@njit(**_LOOP)
def _bwd_tanh_rows(A_prev, alpha, out, r0, r1):
    one = _like(1.0, out)
    o, a = _flat(out, r0, r1), _flat(A_prev, r0, r1)
    for t in range(o.shape[0]):
        o[t] *= one - a[t] * a[t]


@njit(**_LOOP)
def _bwd_relu_rows(A_prev, alpha, out, r0, r1):
    one = _like(1.0, out)
    zero = _like(0.0, out)
    o, a = _flat(out, r0, r1), _flat(A_prev, r0, r1)
    for t in range(o.shape[0]):
        o[t] *= one if a[t] > zero else zero      # a product: NaN / Inf in dZ stay


@njit(**_LOOP)
def _bwd_leaky_rows(A_prev, alpha, out, r0, r1):
    one = _like(1.0, out)
    zero = _like(0.0, out)
    al = _like(alpha, out)
    o, a = _flat(out, r0, r1), _flat(A_prev, r0, r1)
    for t in range(o.shape[0]):
        o[t] *= one if a[t] > zero else al


# loss_grad on rows r0:r1: A = g(Z), dZ written, the rows' loss returned (float64).
# buf: a float64 scratch of _LOSS_BLOCK entries.  Sums run in a fixed order.

_LOSS_BLOCK = 512


def _stack_array(context, builder, dtype, n):
    """Codegen: a 1-D C-contiguous array of n entries of dtype in the current function's
    stack frame (allocated once, in its entry block), with no meminfo."""
    ft = context.get_data_type(dtype)
    intp = context.get_value_type(types.intp)
    item = context.get_abi_sizeof(ft)
    slot = cgutils.alloca_once(builder, ir.ArrayType(ft, n))
    res = context.make_array(types.Array(dtype, 1, "C"))(context, builder)
    context.populate_array(res, data=builder.bitcast(slot, ft.as_pointer()),
                           shape=[ir.Constant(intp, n)], strides=[ir.Constant(intp, item)],
                           itemsize=ir.Constant(intp, item), meminfo=None)
    return res._getvalue()


@intrinsic
def _loss_scratch(typingctx):
    """A float64 scratch of _LOSS_BLOCK entries on the calling function's stack (no heap
    allocation per call: malloc and free were ~9% of a 2-16-16-1 step at batch 32).  Only
    for the function that calls it, which never returns it."""
    def codegen(context, builder, sig, args):
        return _stack_array(context, builder, types.float64, _LOSS_BLOCK)

    return types.Array(types.float64, 1, "C")(), codegen


@njit(**_LOOP)
def _loss_sigmoid_bce_rows(Z, Y, A, dZ, r0, r1, buf):
    """sigmoid + BCE from the logits, one exp per entry for A, dZ and J; elementwise, so
    over the block as 1-D loops, in pieces of _LOSS_BLOCK (the terms' scratch)."""
    zero = _like(0.0, Z)
    one = _like(1.0, Z)
    fm = _like(Z.shape[0], Z)
    z, y, a, d = _flat(Z, r0, r1), _flat(Y, r0, r1), _flat(A, r0, r1), _flat(dZ, r0, r1)
    J = 0.0
    for s0 in range(0, z.shape[0], _LOSS_BLOCK):
        s1 = min(z.shape[0], s0 + _LOSS_BLOCK)
        k = s1 - s0
        zz, yy, aa, dd, tt = (_view(z, s0, k), _view(y, s0, k), _view(a, s0, k),
                              _view(d, s0, k), _view(buf, 0, k))
        for t in range(zz.shape[0]):
            e = _exp_nonpos(-abs(zz[t]))
            at = (one if zz[t] >= 0 else e) / (one + e)
            aa[t] = at
            dd[t] = (at - yy[t]) / fm
            tt[t] = (zz[t] if zz[t] > 0 else zero) - yy[t] * zz[t] + _log1p_unit(e)
        J += _sum8(tt)
    return J


@njit(**_LOOP)
def _loss_softmax_ce_rows(Z, Y, A, dZ, r0, r1, buf):
    """softmax + cross-entropy: J = sum y (logsumexp(z) - z), the row max subtracted."""
    one = _like(1.0, Z)
    fm = _like(Z.shape[0], Z)
    n = Z.shape[1]
    for i in range(r0, r1):                    # a = z - max(z), row by row
        mx = _row_max(Z, i)
        for j in range(n):
            A[i, j] = Z[i, j] - mx
    f = _flat(A, r0, r1)                       # exp over the whole block
    for t in range(f.shape[0]):
        f[t] = _exp_nonpos(f[t])
    J = 0.0
    for i in range(r0, r1):
        s = _like(0.0, Z)
        for j in range(n):
            s += A[i, j]
        inv = one / s
        lse = _row_max(Z, i) + math.log(s)
        Jr = 0.0
        for j in range(n):
            aj = A[i, j] * inv
            A[i, j] = aj
            dZ[i, j] = (aj - Y[i, j]) / fm
            Jr += Y[i, j] * (lse - Z[i, j])
        J += Jr
    return J


@njit(**_LOOP)
def _loss_generic_rows(Z, Y, act, alpha, loss, A, dZ, r0, r1, buf):
    """Any other (activation, loss) pairing: A = g(Z), then the loss from A (and Z)."""
    zero = _like(0.0, Z)
    one = _like(1.0, Z)
    fm = _like(Z.shape[0], Z)
    al = _like(alpha, Z)
    acc = np.zeros(Z.shape[1], np.float64)     # one accumulator per column
    n = Z.shape[1]
    for i in range(r0, r1):
        for j in range(n):
            A[i, j] = _g(Z[i, j], act, al)
        if act == SOFTMAX:
            _softmax_row(A, i)
        if loss == BCE:
            for j in range(n):
                z = Z[i, j]
                dZ[i, j] = (A[i, j] - Y[i, j]) / fm
                acc[j] += ((z if z > 0 else zero) - Y[i, j] * z
                           + _log1p_unit(_exp_nonpos(-abs(z))))
        elif loss == CROSS_ENTROPY:
            mx = _row_max(Z, i)
            s = zero
            for j in range(n):
                s += _exp_nonpos(Z[i, j] - mx)
            lse = mx + math.log(s)
            for j in range(n):
                dZ[i, j] = (A[i, j] - Y[i, j]) / fm
                acc[j] += Y[i, j] * (lse - Z[i, j])
        elif loss == MSE:
            for j in range(n):
                r = A[i, j] - Y[i, j]
                dZ[i, j] = r * _dg(A[i, j], act, al) / fm
                acc[j] += 0.5 * (r * r)
        else:  # MAE
            for j in range(n):
                r = A[i, j] - Y[i, j]
                sg = one if r > 0 else (-one if r < 0 else r)   # np.sign; NaN kept
                dZ[i, j] = sg * _dg(A[i, j], act, al) / fm
                acc[j] += abs(r)
    J = 0.0
    for j in range(acc.shape[0]):
        J += acc[j]
    return J


#: the most float32 rows _colsum adds in float32 (more: in float64)
_COLSUM_F32_ROWS = 256


@njit(**_LOOP)
def _colsum(D, db, j0, j1):
    """db[j0:j1] = D[:, j0:j1].sum(0), rows added in order.

    float32 with more than _COLSUM_F32_ROWS rows sums in float64, rounded once at the end:
    a float32 running sum of m nearly equal terms drifts by up to ~m eps (0.1% at 100k
    rows, where dZ = c/m); below it the float32 sum's error stays under 1.6e-5 of the sum
    of the terms' magnitudes, and the step allocates nothing."""
    out = db[j0:j1]
    n = out.shape[0]
    if D.itemsize == 4 and D.shape[0] > _COLSUM_F32_ROWS:
        acc = np.zeros(n, np.float64)
        for i in range(D.shape[0]):
            for j in range(n):
                acc[j] += D[i, j0 + j]
        for j in range(n):
            out[j] = acc[j]
        return
    for j in range(n):
        out[j] = _like(0.0, db)
    for i in range(D.shape[0]):
        for j in range(n):
            out[j] += D[i, j0 + j]


@njit(**_LOOP)
def _scaled_rows(dW, W, c, k0, k1):
    """dW[k0:k1] = c W[k0:k1]."""
    for k in range(k0, k1):
        for j in range(dW.shape[1]):
            dW[k, j] = c * W[k, j]


#: lanes of _ss_range's sums: four AVX-512 or eight AVX2 registers of float64 (LLVM
#: splits the one vector type either way), enough independent chains of fused
#: multiply-adds to hide their latency
_SS_LANES = 32


@intrinsic
def _sq_lanes(typingctx, x, R, acc):
    """acc[k] = sum_{r < R} x[r _SS_LANES + k]**2 in float64 for k < _SS_LANES: one chain
    of ``llvm.fma`` per lane, from zero, r in order, on a vector of _SS_LANES float64 that
    stays in registers.  x: 1-D C-contiguous float32 / float64 with at least R _SS_LANES
    entries (not checked); acc: a float64 array of at least _SS_LANES entries."""
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
            and x.dtype in (types.float32, types.float64) and isinstance(R, types.Integer)
            and isinstance(acc, types.Array) and acc.dtype == types.float64
            and acc.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        L = _SS_LANES
        ft = context.get_value_type(x.dtype)
        f64 = ir.DoubleType()
        i64 = ir.IntType(64)
        vx, vd = ir.VectorType(ft, L), ir.VectorType(f64, L)
        xp = context.make_array(sig.args[0])(context, builder, args[0]).data
        ap = context.make_array(sig.args[2])(context, builder, args[2]).data
        n = context.cast(builder, args[1], sig.args[1], types.int64)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vd, [vd] * 3),
                                             f"llvm.fma.v{L}f64")

        def step(r, vals):
            ptr = builder.bitcast(builder.gep(xp, [builder.mul(r, ir.Constant(i64, L))]),
                                  vx.as_pointer())
            v = builder.load(ptr, align=context.get_abi_sizeof(ft))
            if x.dtype == types.float32:
                v = builder.fpext(v, vd)
            return [builder.call(fma, [v, v, vals[0]])]

        s, = counted_loop(builder, n, [(ir.Constant(vd, [0.0] * L), vd)], step, "sq")
        builder.store(s, builder.bitcast(ap, vd.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.void(x, R, acc), codegen


@intrinsic
def _lanes_scratch(typingctx):
    """A float64 scratch of _SS_LANES entries on the calling function's stack."""
    def codegen(context, builder, sig, args):
        return _stack_array(context, builder, types.float64, _SS_LANES)

    return types.Array(types.float64, 1, "C")(), codegen


@njit(**_LOOP)
def _ss_range(x):
    """sum of x**2 in float64, x a view: _SS_LANES lanes (lane k: the entries k, k + L,
    k + 2L ... in order, then the leftover entry k, each a fused multiply-add), combined
    by halving (lane k += lane k + w, w = L/2 ... 1).  Chains of operations fixed by the
    length alone, the same on every host."""
    n = x.shape[0]
    R = n // _SS_LANES
    acc = _lanes_scratch()
    _sq_lanes(x, R, acc)
    tail = _view(x, R * _SS_LANES, n - R * _SS_LANES)
    for t in range(tail.shape[0]):
        w = np.float64(tail[t])
        acc[t] = _fma(w, w, acc[t])
    w = _SS_LANES // 2
    while w >= 1:
        for k in range(w):
            acc[k] += acc[k + w]
        w //= 2
    return acc[0]


@njit(**_LOOP)
def _sgd_range(theta, grad, velocity, lr, momentum, nesterov):
    lr_ = _like(lr, theta)
    if momentum == 0.0:
        for i in range(theta.shape[0]):
            theta[i] -= lr_ * grad[i]
        return
    mu = _like(momentum, theta)
    if nesterov:
        for i in range(theta.shape[0]):
            g = lr_ * grad[i]
            v = mu * velocity[i] - g
            velocity[i] = v
            theta[i] += mu * v - g
    else:
        for i in range(theta.shape[0]):
            v = mu * velocity[i] - lr_ * grad[i]
            velocity[i] = v
            theta[i] += v


@njit(**_LOOP)
def _adam_range(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    b1 = _like(beta1, theta)
    b2 = _like(beta2, theta)
    a1 = _like(1.0 - beta1, theta)
    a2 = _like(1.0 - beta2, theta)
    c1 = _like(1.0 - beta1 ** t, theta)
    c2 = _like(1.0 - beta2 ** t, theta)
    lr_ = _like(lr, theta)
    ep = _like(eps, theta)
    for i in range(theta.shape[0]):
        g = grad[i]
        u = b1 * m1[i] + a1 * g
        v = b2 * m2[i] + a2 * g * g
        m1[i] = u
        m2[i] = v
        theta[i] -= lr_ * (u / c1) / (np.sqrt(v / c2) + ep)


def _named(tag):
    """Give a specialised kernel (a closure made per activation / loss code) a name of its
    own before it is compiled: numba names its machine-code symbols and cache files after
    ``__qualname__`` plus a per-process counter, so two specialisations compiled in
    different processes could carry one symbol name, and when both came back from the
    on-disk cache into one process, a caller would link to the wrong one (a leaky-ReLU
    step running the tanh forward)."""
    def rename(fn):
        fn.__name__ = f"{fn.__name__}_{tag}"
        fn.__qualname__ = f"{fn.__qualname__}_{tag}"
        return fn

    return rename


# ------------------------------------------------------------ kernels, per activation
# Built on first use of a code (_Table below); act / loss are closure constants.

def _fwd_rows_of(act):
    """A[r0:r1] = g(A[r0:r1] + b) for the activation code act (a constant: numba prunes the
    other branches; identity adds the bias), inlined into its callers."""
    @njit(**_LOOP)
    def fwd_rows(A, b, alpha, r0, r1):
        if act == RELU:
            _fwd_relu_rows(A, b, alpha, r0, r1)
        elif act == LEAKY_RELU:
            _fwd_leaky_rows(A, b, alpha, r0, r1)
        elif act == SIGMOID:
            _fwd_sigmoid_rows(A, b, alpha, r0, r1)
        elif act == TANH:
            _fwd_tanh_rows(A, b, alpha, r0, r1)
        elif act == SOFTMAX:
            _fwd_softmax_rows(A, b, alpha, r0, r1)
        else:
            _add_bias_rows(A, b, r0, r1)

    return fwd_rows


def _bwd_rows_of(act):
    """out[r0:r1] *= g'(A_prev[r0:r1]) for the activation code act (identity: nothing),
    inlined into its callers."""
    @njit(**_LOOP)
    def bwd_rows(A_prev, alpha, out, r0, r1):
        if act == SIGMOID:
            _bwd_sigmoid_rows(A_prev, alpha, out, r0, r1)
        elif act == TANH:
            _bwd_tanh_rows(A_prev, alpha, out, r0, r1)
        elif act == RELU:
            _bwd_relu_rows(A_prev, alpha, out, r0, r1)
        elif act == LEAKY_RELU:
            _bwd_leaky_rows(A_prev, alpha, out, r0, r1)

    return bwd_rows


@njit(**_LOOP)
def _times_w(X, W, A, add):
    """A = X @ W (+ A when add): cpu_long's product along long rows where ``long_rows``
    says so (the shape, the host and numba's threading layer decide, so every kernel
    gets the same bits), else one ?gemm."""
    if long_rows(X.shape[0], X.shape[1], W.shape[1], X.itemsize):
        long_forward(X, W, A, add)
    else:
        _gemm(X, W, A, False, False, 1.0 if add else 0.0)


@njit(**_LOOP)
def _xt_times(X, dZ, dW, add):
    """dW = X.T @ dZ (+ dW when add), chosen as _times_w."""
    if long_rows(X.shape[0], X.shape[1], dZ.shape[1], X.itemsize):
        long_gradient(X, dZ, dW, add)
    else:
        _gemm(X, dZ, dW, True, False, 1.0 if add else 0.0)


def _make_fwd(act):
    """(serial, parallel) A = g(X @ W + b) for one activation code."""
    if act == IDENTITY:
        @njit(**_SER)
        @_named(act)
        def fwd_identity(X, W, b, alpha, A):
            for i in range(A.shape[0]):     # A = b, then A += X @ W: no pass after BLAS
                for j in range(A.shape[1]):
                    A[i, j] = b[j]
            _times_w(X, W, A, True)

        return fwd_identity, fwd_identity

    rows = _fwd_rows_of(act)

    @njit(**_SER)
    @_named(act)
    def fwd_ser(X, W, b, alpha, A):
        _times_w(X, W, A, False)
        rows(A, b, alpha, 0, A.shape[0])

    @njit(**_PAR)
    @_named(act)
    def fwd_par(X, W, b, alpha, A):
        _times_w(X, W, A, False)
        m = A.shape[0]
        nch = _nchunks(m, 4)
        for c in prange(nch):
            r0 = c * m // nch
            r1 = (c + 1) * m // nch
            rows(A, b, alpha, r0, r1)

    return fwd_ser, fwd_par


#: dZ @ W.T as dZ @ (a copy of W.T) where W has at most _WT_MAX entries and dZ at most
#: _WT_MAX_COLS columns, on AVX-512 hosts: there OpenBLAS runs its SkylakeX small-matrix
#: kernels, which take the product without a transpose of W but not the one with (that
#: one packs both operands first).  Measured (float64, m x n_out x n_in, us, one call):
#: 32x10x64 0.82 -> 0.50 (the digits fit's), 32x1x16 0.16 -> 0.05, 209x5x7 0.99 -> 0.26,
#: 256x10x128 9.9 -> 6.0; not wider: 32x64x64 gained less (1.3x), 200x32x100 lost.
_WT_COPY = host_avx512()
_WT_MAX = 4096
_WT_MAX_COLS = 16


@intrinsic
def _wt_scratch(typingctx, W):
    """A scratch of _WT_MAX entries of W's dtype on the calling function's stack (as
    _loss_scratch)."""
    if not isinstance(W, types.Array):
        return None

    def codegen(context, builder, sig, args):
        return _stack_array(context, builder, W.dtype, _WT_MAX)

    return types.Array(W.dtype, 1, "C")(W), codegen


@njit(**_LOOP)
def _times_wt(dZ, W, out):
    """out = dZ @ W.T: dZ (m, n_out), W (n_in, n_out), out (m, n_in); one ?gemm, with W.T
    copied first where _WT_COPY and the shape say so.  Which way runs depends on the host
    and the shape alone, so every kernel that calls this (and the one-call step, through
    them) gets the same bits; the two ways agree to BLAS's rounding (the same bits on
    every shape measured but 200x32x100, which the limits leave out)."""
    n_in, n_out = W.shape
    if _WT_COPY and n_out <= _WT_MAX_COLS and n_in * n_out <= _WT_MAX:
        WT = _view(_wt_scratch(W), 0, (n_out, n_in))
        for k in range(n_in):
            for j in range(n_out):
                WT[j, k] = W[k, j]
        _gemm(dZ, WT, out, False, False, 0.0)
    else:
        _gemm(dZ, W, out, False, True, 0.0)


def _make_bwd(act):
    """(serial, parallel) dZ_prev = (dZ @ W.T) * g'(A_prev) for one activation code."""
    if act == IDENTITY:
        @njit(**_SER)
        @_named(act)
        def bwd_identity(dZ, W, A_prev, alpha, dZ_prev):
            _times_wt(dZ, W, dZ_prev)

        return bwd_identity, bwd_identity

    rows = _bwd_rows_of(act)

    @njit(**_SER)
    @_named(act)
    def bwd_ser(dZ, W, A_prev, alpha, dZ_prev):
        _times_wt(dZ, W, dZ_prev)
        rows(A_prev, alpha, dZ_prev, 0, dZ_prev.shape[0])

    @njit(**_PAR)
    @_named(act)
    def bwd_par(dZ, W, A_prev, alpha, dZ_prev):
        _times_wt(dZ, W, dZ_prev)
        m = dZ_prev.shape[0]
        nch = _nchunks(m, 4)
        for c in prange(nch):
            r0 = c * m // nch
            r1 = (c + 1) * m // nch
            rows(A_prev, alpha, dZ_prev, r0, r1)

    return bwd_ser, bwd_par


def _make_loss(act, loss):
    """(serial, parallel) loss_grad for one (activation, loss) pair.

    Both sum the same fixed chunks of rows, in the same order: J has the same bits
    whichever variant ran and whatever the thread count."""
    fused = 1 if (act == SIGMOID and loss == BCE) else (
        2 if (act == SOFTMAX and loss == CROSS_ENTROPY) else 0)

    @njit(**_SER)
    @_named(f"{act}_{loss}")
    def loss_ser(Z, Y, alpha, A, dZ):
        m = Z.shape[0]
        nch = _nchunks(m, 16)
        # one scratch for all chunks (softmax + CE needs none); the chunks' losses are
        # added in chunk order as they come, the order loss_par adds its partial sums in
        buf = _loss_scratch()
        J = 0.0
        for c in range(nch):
            r0 = c * m // nch
            r1 = (c + 1) * m // nch
            if fused == 1:
                J += _loss_sigmoid_bce_rows(Z, Y, A, dZ, r0, r1, buf)
            elif fused == 2:
                J += _loss_softmax_ce_rows(Z, Y, A, dZ, r0, r1, buf)
            else:
                J += _loss_generic_rows(Z, Y, act, alpha, loss, A, dZ, r0, r1, buf)
        return J / m

    @njit(**_PAR)
    @_named(f"{act}_{loss}")
    def loss_par(Z, Y, alpha, A, dZ):
        m = Z.shape[0]
        nch = _nchunks(m, 16)
        part = np.empty(nch, np.float64)
        for c in prange(nch):
            r0 = c * m // nch
            r1 = (c + 1) * m // nch
            buf = np.empty(_LOSS_BLOCK, np.float64)
            if fused == 1:
                part[c] = _loss_sigmoid_bce_rows(Z, Y, A, dZ, r0, r1, buf)
            elif fused == 2:
                part[c] = _loss_softmax_ce_rows(Z, Y, A, dZ, r0, r1, buf)
            else:
                part[c] = _loss_generic_rows(Z, Y, act, alpha, loss, A, dZ, r0, r1, buf)
        J = 0.0
        for c in range(nch):
            J += part[c]
        return J / m

    return loss_ser, loss_par


# ------------------------------------------------------------------ accumulate_delta

@njit(**_SER)
def _delta_ser(X, dZ, W, l2, dW, db):
    n_in = dW.shape[0]
    if l2 != 0.0:                      # dW = (l2/m) W, then dW += X.T @ dZ
        _scaled_rows(dW, W, _like(l2 / X.shape[0], dW), 0, n_in)
    _xt_times(X, dZ, dW, l2 != 0.0)
    _colsum(dZ, db, 0, dZ.shape[1])


@njit(**_PAR)
def _delta_par(X, dZ, W, l2, dW, db):
    n_in, n_out = dW.shape
    c_l2 = _like(l2 / X.shape[0], dW)
    # before the product (which then accumulates into dW, beta = 1): the chunks
    # c < nr set blocks of dW's rows to (l2/m) W, the others sum blocks of >= 16 of dZ's
    # columns into db (each column summed over the rows in order, by one thread)
    nr = _nchunks(n_in, 16) if l2 != 0.0 else 0
    nc = _nchunks(n_out, 16)
    for c in prange(nr + nc):
        if c < nr:
            _scaled_rows(dW, W, c_l2, c * n_in // nr, (c + 1) * n_in // nr)
        else:
            k = c - nr
            _colsum(dZ, db, k * n_out // nc, (k + 1) * n_out // nc)
    _xt_times(X, dZ, dW, l2 != 0.0)


# ----------------------------------------------------------------------- sum_squares

_SS_CHUNK = 4096


@njit(**_SER)
def _ss_ser(W):
    x = _view(W, 0, W.size)
    n = x.size
    nch = (n + _SS_CHUNK - 1) // _SS_CHUNK
    s = 0.0                               # the same chunks, added in the same order, as _ss_par
    for c in range(nch):
        s += _ss_range(_view(x, c * _SS_CHUNK, min(n, (c + 1) * _SS_CHUNK) - c * _SS_CHUNK))
    return s


@njit(**_PAR)
def _ss_par(W):
    x = W.reshape(W.size)
    n = x.size
    nch = (n + _SS_CHUNK - 1) // _SS_CHUNK
    part = np.empty(nch, np.float64)
    for c in prange(nch):
        part[c] = _ss_range(x[c * _SS_CHUNK:min(n, (c + 1) * _SS_CHUNK)])
    s = 0.0
    for c in range(nch):
        s += part[c]
    return s


# ------------------------------------------------------------ sgd_update, adam_update

@njit(**_SER)
def _sgd_ser(theta, grad, velocity, lr, momentum, nesterov):
    _sgd_range(theta, grad, velocity, lr, momentum, nesterov)


@njit(**_PAR)
def _sgd_par(theta, grad, velocity, lr, momentum, nesterov):
    n = theta.shape[0]
    nch = _nchunks(n, 8192)
    for c in prange(nch):
        i0 = c * n // nch
        i1 = (c + 1) * n // nch
        # velocity may be a placeholder of length 1 when momentum == 0
        v = velocity[i0:i1] if momentum != 0.0 else velocity
        _sgd_range(theta[i0:i1], grad[i0:i1], v, lr, momentum, nesterov)


@njit(**_SER)
def _adam_ser(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    _adam_range(theta, grad, m1, m2, lr, beta1, beta2, eps, t)


@njit(**_PAR)
def _adam_par(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    n = theta.shape[0]
    nch = _nchunks(n, 8192)
    for c in prange(nch):
        i0 = c * n // nch
        i1 = (c + 1) * n // nch
        _adam_range(theta[i0:i1], grad[i0:i1], m1[i0:i1], m2[i0:i1], lr, beta1, beta2, eps,
                    t)


# ------------------------------------------------------------- dispatch: size thresholds
# An output (for the updates: a vector) with at least this many entries goes to the
# parallel variant, below it to the serial one.
#
# Measured on the 2-core target (AMD EPYC, OpenBLAS 0.3.30 pthreads, numba's OpenMP
# layer; fastnn now depends on TBB, numba's first choice of layer, for cpu_long's
# products, and these thresholds were not measured again under it): a numba parallel
# region run between multithreaded OpenBLAS calls loses to the serial variant at every
# size tried (64K to 4M entries), by 1.2x to 9x per training step: OpenBLAS's idle
# workers spin (yielding) for ~0.1 s after each call and GOMP's workers spin without
# yielding, so the two pools take the second core from each other (4 ms scheduler
# stalls).  In isolation the parallel variants do win (e.g. Adam on 2.1M params: 1184 ->
# 471 us, sigmoid-BCE loss on 50K entries: 361 -> 205 us), so they are kept, tested, and
# used only for outputs so large (16M entries) that the contention cannot dominate.  On a
# machine with many cores, lower these before the first kernel call (each table entry reads
# its threshold when it is built; the parallel variants stay deterministic).

_PAR_MIN = 1 << 24
_FWD_PAR_MIN = {IDENTITY: 0, SIGMOID: _PAR_MIN, TANH: _PAR_MIN, RELU: _PAR_MIN,
                LEAKY_RELU: _PAR_MIN, SOFTMAX: _PAR_MIN}   # identity: one variant only
_BWD_PAR_MIN = _PAR_MIN         # dZ_prev entries
_LOSS_PAR_MIN = _PAR_MIN        # Z entries
_DELTA_PAR_MIN = _PAR_MIN       # dW entries or dZ entries
_SS_PAR_MIN = _PAR_MIN
_SGD_PAR_MIN = _PAR_MIN
_ADAM_PAR_MIN = _PAR_MIN


class _Table(dict):
    """code -> (serial, parallel, threshold) kernels, built on first use of a code."""

    def __init__(self, build):
        super().__init__()
        self._build = build

    def __missing__(self, key):
        value = self._build(key)
        self[key] = value
        return value


def _build_fwd(act):
    if act not in (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX):
        raise ValueError(f"unknown activation code {act!r}")
    return (*_make_fwd(int(act)), _FWD_PAR_MIN[act])


def _build_bwd(act):
    if act not in (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU):
        raise ValueError(f"activation code {act!r} has no elementwise derivative")
    return (*_make_bwd(int(act)), _BWD_PAR_MIN)


def _build_loss(key):
    act, loss = divmod(key, 8)
    if act not in (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX):
        raise ValueError(f"unknown activation code {act!r}")
    if loss not in (BCE, CROSS_ENTROPY, MSE, MAE):
        raise ValueError(f"unknown loss code {loss!r}")
    if act == SOFTMAX and loss in (MSE, MAE):
        raise ValueError("softmax has no elementwise derivative: use it with cross_entropy")
    return (*_make_loss(int(act), int(loss)), _LOSS_PAR_MIN)


_FWD = _Table(_build_fwd)
_BWD = _Table(_build_bwd)
_LOSS = _Table(_build_loss)


# ------------------------------------------------------------------------ the interface

def linear_forward(A_prev, W, b, act, alpha, A):
    ser, par, big = _FWD[act]
    (ser if A.size < big else par)(A_prev, W, b, alpha, A)


def activation_backward(dZ, W, A_prev, act, alpha, dZ_prev):
    ser, par, big = _BWD[act]
    (ser if dZ_prev.size < big else par)(dZ, W, A_prev, alpha, dZ_prev)


def loss_grad(Z, Y, act, alpha, loss, A, dZ):
    ser, par, big = _LOSS[act * 8 + loss]
    return (ser if Z.size < big else par)(Z, Y, alpha, A, dZ)


def accumulate_delta(A_prev, dZ, W, l2, dW, db):
    if dW.size < _DELTA_PAR_MIN and dZ.size < _DELTA_PAR_MIN:
        _delta_ser(A_prev, dZ, W, l2, dW, db)
    else:
        _delta_par(A_prev, dZ, W, l2, dW, db)


def sum_squares(W):
    return (_ss_ser if W.size < _SS_PAR_MIN else _ss_par)(W)


def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    (_sgd_ser if theta.size < _SGD_PAR_MIN else _sgd_par)(
        theta, grad, velocity, lr, momentum, nesterov)


def adam_update(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    (_adam_ser if theta.size < _ADAM_PAR_MIN else _adam_par)(
        theta, grad, m1, m2, lr, beta1, beta2, eps, t)


# ------------------------------------------------------------------------ array helpers
# host arrays, exactly as the reference backend makes them
from .reference import empty, to_device, to_host, zeros  # noqa: E402,F401


@njit(**_SCALAR)
def _plus_penalty(J, l2, m, ss):
    """(J + P, P) with the L2 term P = l2/(2m) ss, in IEEE arithmetic, rounded as the
    per-kernel step's Python does (no fused multiply-add, which the kernels' fastmath
    "contract" would allow); for cpu_step."""
    P = l2 / (2.0 * m) * ss
    return J + P, P


# ------------------------------------------------- the optional one-call training step

from .cpu_step import (fits as train_step_fits, train_step,  # noqa: E402,F401 - needs the above
                       train_step_function, train_step_skinny, train_steps)
from .cpu_skinny import forward_function as skinny_forward_function  # noqa: E402,F401
