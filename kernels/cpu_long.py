"""Products along long rows (cpu backend): a skinny layer on wide inputs, such as the
first layer of a network on 64x64x3 images (K = 12288 inputs, N = 20 units).

    long_forward(X, W, A, add)       A = X @ W  (+ A when add)      X (m, K), W (K, N), A (m, N)
    long_gradient(X, dZ, dW, add)    dW = X.T @ dZ  (+ dW when add)   dZ (m, N), dW (K, N)

all C-contiguous, one float dtype (shapes checked by the callers).  ``long_rows(m, K, N,
itemsize)`` says when the cpu kernels take these instead of BLAS (``_times_w`` and
``_xt_times`` of cpu.py): float32, N <= MAX_WIDTH, K >= MIN_K, m >= MIN_M, W of at least
MIN_W_BYTES, m K N >= MIN_WORK, an AVX-512 host and numba's TBB threading layer.  It
depends on the shape, the host and the threading layer alone, so the per-kernel step and
the one-call step compute the same bits.

Why: with N this small, OpenBLAS's kernels fill a third of their vectors with padding
(20 columns = one 16-lane vector and a quarter of another) and ran the two 12288-deep
products of the 64x64 images' step at about half the machine's peak
(bench/results/2026-11-25-vm-zen5-digits.md).  Here every vector lane does useful work:

* forward: dot products along the rows of X.  W is transposed a block of KB rows at a
  time into an L1 scratch WT (N, KB) (VL x VL transposes in registers, ``_transpose``);
  tiles of 4 rows of X by 5 rows of WT keep 20 vector accumulators (9 loads per 20 fused
  multiply-adds), added into lane sums P (m, N, VL) that stay in L2.  Lane q of P[i, j]
  is one chain of ``llvm.fma`` over k = q, q + VL, ... < Kv = K - K % VL, in order of k,
  from zero; A[i, j] = the VL lanes summed by halving (lane q + VL/2 into q, then VL/4
  ...), then the k >= Kv terms added in order.
* gradient: dW.T in blocks of 4 vectors of X's columns by 5 of dZ's: 20 accumulators,
  4 loads and 5 broadcasts per 20 fused multiply-adds; each entry is one chain of
  ``llvm.fma`` over the m examples, in order, from zero (a multiply and an add per term
  for the K - Kv columns left over).  The block goes back into dW's rows through an L1
  scratch and the same transposes.

Every entry is one fixed chain of operations whichever tile, block or thread computes
it: the bits depend on the shape alone, not on the thread count.  The rows (forward) or
the column blocks (gradient) are split into shares that numba's threads take: one per
thread for the forward, each transposing W for itself (the blocks stay in L1), four per
thread for the gradient.

Threads: only under TBB (``_PARALLEL``).  GNU OpenMP's idle workers spin and stall
OpenBLAS's threads (a 12288-20-512-10 step took 11 ms against 1.5 ms), and a child
forked after OpenMP started cannot use it; the workqueue layer cannot serve two Python
threads at once.  OpenBLAS's own workers spin after a product large enough for two
threads and slow TBB's the same way: a long skinny layer followed by wide ones loses
5-12% against BLAS alone (12288-20-512-10), which a rule on one layer's shape cannot
see.  Under another layer the kernels keep BLAS, and the functions, called directly, run
on one thread.

Vectors: 64 bytes (AVX-512's zmm: VL = 16 float32 or 8 float64).  Elsewhere LLVM splits
each vector in two and the 20 accumulators no longer fit the registers; the functions
stay correct there (tests call them on any host), but the kernels keep BLAS.

Compile time: as ``cpu_tiles``' products, the heavy code is ``cfunc``s (per dtype) whose
symbols (``fastnn_long_fwd_s`` ...) the two small parallel drivers call; ``install()``
compiles them, or loads them from numba's on-disk cache, and registers the symbols when
this module is imported, before any code that calls them can be compiled or loaded.
Linked into each kernel that calls them, they would be optimized again per kernel.
"""
import ctypes

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._codegen import counted_loop
from .cpu_blas import host_avx512

#: bytes of each vector (AVX-512)
VECTOR_BYTES = 64
#: the kernels take these products (``long_rows``) for float32 layers of at most
#: MAX_WIDTH units, at least MIN_K inputs and MIN_W_BYTES of weights, and batches of at
#: least MIN_M rows: where they won against OpenBLAS on the target (bench/results/
#: 2026-11-25-vm-zen5-long-rows.md); float64 won less reliably and stays with BLAS
MAX_WIDTH = 24
MIN_K = 4096
MIN_W_BYTES = 128 * 1024
MIN_M = 8
#: ... and products of at least MIN_WORK multiply-adds (m K N): below it, waking TBB's
#: second thread costs more than the product gains (64x12288x20: 225 us vs BLAS's 150)
MIN_WORK = 1 << 25
#: bytes of the forward's WT block kept in L1 (KB rows of W), measured best at 20-25 KB
_WT_BYTES = 25600
_OPTS = dict(error_model="numpy", nogil=True)
_SYMBOLS = {
    types.float32: ("fastnn_long_fwd_s", "fastnn_long_grad_s"),
    types.float64: ("fastnn_long_fwd_d", "fastnn_long_grad_d"),
}


_AVX512 = host_avx512()


@njit(inline="always", **_OPTS)
def long_rows(m, K, N, itemsize):
    """Whether the cpu kernels compute X @ W and X.T @ dZ (X (m, K), W (K, N), entries of
    itemsize bytes) here: a function of the shape, the host and numba's threading layer."""
    return (_AVX512 and itemsize == 4 and N <= MAX_WIDTH and K >= MIN_K and m >= MIN_M
            and K * N * itemsize >= MIN_W_BYTES and m * K * N >= MIN_WORK and _parallel())


# --------------------------------------------------------------------- vector intrinsics

class _Vec:
    """Codegen helpers for vectors of VL entries of one float dtype."""

    def __init__(self, context, builder, dt):
        self.b = builder
        ft = context.get_value_type(dt)
        self.vl = VECTOR_BYTES // context.get_abi_sizeof(ft)
        self.vt = ir.VectorType(ft, self.vl)
        self.al = context.get_abi_sizeof(ft)
        self.i32, self.i64 = ir.IntType(32), ir.IntType(64)
        self.mt = ir.VectorType(ir.IntType(1), self.vl)
        sfx = f"v{self.vl}" + ("f32" if dt == types.float32 else "f64")
        mod = builder.module
        vt, i32, mt = self.vt, self.i32, self.mt
        self.fma = cgutils.get_or_insert_function(mod, ir.FunctionType(vt, [vt] * 3),
                                                  "llvm.fma." + sfx)
        self.mload = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vt, [vt.as_pointer(), i32, mt, vt]),
            f"llvm.masked.load.{sfx}.p0{sfx}")
        self.mstore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), i32, mt]),
            f"llvm.masked.store.{sfx}.p0{sfx}")

    def const(self, v):
        return ir.Constant(self.i64, v)

    def at(self, base, *offsets):
        """Pointer to base[sum(offsets)] as a vector pointer."""
        off = offsets[0]
        for o in offsets[1:]:
            off = self.b.add(off, o)
        return self.b.bitcast(self.b.gep(base, [off]), self.vt.as_pointer())

    def load(self, ptr):
        return self.b.load(ptr, align=self.al)

    def store(self, val, ptr):
        self.b.store(val, ptr, align=self.al)

    def splat(self, x):
        b = self.b
        v = b.insert_element(ir.Constant(self.vt, ir.Undefined), x, ir.Constant(self.i32, 0))
        return b.shuffle_vector(v, ir.Constant(self.vt, ir.Undefined),
                                ir.Constant(ir.VectorType(self.i32, self.vl), [0] * self.vl))

    def lanes_below(self, n):
        """Mask of the lanes q < n (n: i64)."""
        b = self.b
        iota = ir.Constant(ir.VectorType(self.i64, self.vl), list(range(self.vl)))
        nv = b.insert_element(ir.Constant(ir.VectorType(self.i64, self.vl), ir.Undefined), n,
                              ir.Constant(self.i32, 0))
        nv = b.shuffle_vector(nv, ir.Constant(ir.VectorType(self.i64, self.vl), ir.Undefined),
                              ir.Constant(ir.VectorType(self.i32, self.vl), [0] * self.vl))
        return b.icmp_signed("<", iota, nv)


def _ints(context, builder, sig, args, idx):
    return [context.cast(builder, args[i], sig.args[i], types.int64) for i in idx]


def _data(context, builder, sig, args, idx):
    return [context.make_array(sig.args[i])(context, builder, args[i]).data for i in idx]


def _arrays_ok(*arrays, ndims=None):
    """C-contiguous arrays of one float dtype, 1-D (or of the given ndims)."""
    ndims = ndims or (1,) * len(arrays)
    if not all(isinstance(a, types.Array) and a.ndim == d and a.layout == "C"
               for a, d in zip(arrays, ndims)):
        return False
    dt = arrays[0].dtype
    return dt in _SYMBOLS and all(a.dtype == dt for a in arrays)


@intrinsic
def _dot_tile(typingctx, R, C, X, x0, xs, WT, w0, ws, nv, P, p0, ps):
    """P[p0 + r ps + c VL + q] += X[x0 + r xs + v VL + q] * WT[w0 + c ws + v VL + q],
    for v < nv in order, as fused multiply-adds, for r < R, c < C, q < VL (R, C: literal).
    The R x C vector sums stay in registers through the loop over v."""
    if not all(isinstance(a, types.IntegerLiteral) for a in (R, C)) or not _arrays_ok(X, WT, P):
        return None
    NR, NC = R.literal_value, C.literal_value

    def codegen(context, builder, sig, args):
        vec = _Vec(context, builder, X.dtype)
        xp, wp, pp = _data(context, builder, sig, args, (2, 5, 9))
        x0v, xsv, w0v, wsv, nvv, p0v, psv = _ints(context, builder, sig, args,
                                                  (3, 4, 6, 7, 8, 10, 11))
        c, VL = vec.const, vec.vl
        pptr = [vec.at(pp, p0v, builder.mul(c(r), psv), c(k * VL))
                for r in range(NR) for k in range(NC)]
        xrow = [builder.add(x0v, builder.mul(c(r), xsv)) for r in range(NR)]
        wrow = [builder.add(w0v, builder.mul(c(k), wsv)) for k in range(NC)]

        def body(v, acc):
            off = builder.mul(v, c(VL))
            xv = [vec.load(vec.at(xp, xrow[r], off)) for r in range(NR)]
            wv = [vec.load(vec.at(wp, wrow[k], off)) for k in range(NC)]
            return [builder.call(vec.fma, [xv[r], wv[k], acc[r * NC + k]])
                    for r in range(NR) for k in range(NC)]

        acc = counted_loop(builder, nvv, [(vec.load(p), vec.vt) for p in pptr], body,
                           "dot")
        for p, a in zip(pptr, acc):
            vec.store(a, p)
        return context.get_dummy_value()

    i = types.int64
    return types.none(R, C, X, i, i, WT, i, i, i, P, i, i), codegen


@intrinsic
def _grad_tile(typingctx, C, V, dZ, d0, ds, X, x0, xs, m, T, t0, ts):
    """T[t0 + c ts + v VL + q] = sum_{p < m} dZ[d0 + p ds + c] * X[x0 + p xs + v VL + q]
    for c < C, v < V, q < VL (C, V: literal): each a chain of fused multiply-adds in
    order of p from zero, kept in registers."""
    if not all(isinstance(a, types.IntegerLiteral) for a in (C, V)) or not _arrays_ok(dZ, X, T):
        return None
    NC, NV = C.literal_value, V.literal_value

    def codegen(context, builder, sig, args):
        vec = _Vec(context, builder, X.dtype)
        dp, xp, tp = _data(context, builder, sig, args, (2, 5, 9))
        d0v, dsv, x0v, xsv, mv, t0v, tsv = _ints(context, builder, sig, args,
                                                 (3, 4, 6, 7, 8, 10, 11))
        c, VL = vec.const, vec.vl
        zero = ir.Constant(vec.vt, None)

        def body(p, vals):
            xpos, dpos, acc = vals[0], vals[1], vals[2:]
            xv = [vec.load(vec.at(xp, xpos, c(v * VL))) for v in range(NV)]
            nxt = []
            for k in range(NC):
                d = vec.splat(builder.load(builder.gep(dp, [builder.add(dpos, c(k))])))
                nxt.extend(builder.call(vec.fma, [d, xv[v], acc[k * NV + v]]) for v in range(NV))
            return [builder.add(xpos, xsv), builder.add(dpos, dsv)] + nxt

        out = counted_loop(builder, mv, [(x0v, vec.i64), (d0v, vec.i64)]
                           + [(zero, vec.vt)] * (NC * NV), body, "grad")
        for k in range(NC):
            for v in range(NV):
                vec.store(out[2 + k * NV + v], vec.at(tp, t0v, builder.mul(c(k), tsv), c(v * VL)))
        return context.get_dummy_value()

    i = types.int64
    return types.none(C, V, dZ, i, i, X, i, i, i, T, i, i), codegen


@intrinsic
def _transpose(typingctx, ADD, S, s0, ss, nr, D, d0, ds, nc):
    """D[d0 + j ds + q] = S[s0 + q ss + j] (+ D[...] when ADD, a literal bool) for
    q < nr, j < nc (both <= VL): loads of S's nr rows, a VL x VL transpose in registers
    (log2 VL rounds of interleaving shuffles), masked stores of nc rows of D."""
    if not isinstance(ADD, types.BooleanLiteral) or not _arrays_ok(S, D):
        return None
    add = ADD.literal_value

    def codegen(context, builder, sig, args):
        vec = _Vec(context, builder, S.dtype)
        sp, dp = _data(context, builder, sig, args, (1, 5))
        s0v, ssv, nrv, d0v, dsv, ncv = _ints(context, builder, sig, args, (2, 3, 4, 6, 7, 8))
        c, VL, al = vec.const, vec.vl, ir.Constant(vec.i32, vec.al)
        zero = ir.Constant(vec.vt, None)
        cols = vec.lanes_below(ncv)
        lanes = vec.lanes_below(nrv)
        rows = []
        for q in range(VL):
            # rows and columns past nr / nc are never touched, not even by a masked-off
            # access: such an access past the scratch's end lands in memory that the other
            # thread may be writing (a W2 forward on 2 threads took 1240 us with the
            # all-false masked stores, 321 us without)
            pre = builder.block
            with builder.if_then(builder.icmp_signed("<", c(q), nrv)):
                got = builder.call(vec.mload, [vec.at(sp, s0v, builder.mul(c(q), ssv)), al,
                                               cols, zero])
                blk = builder.block
            phi = builder.phi(vec.vt)
            phi.add_incoming(zero, pre)
            phi.add_incoming(got, blk)
            rows.append(phi)
        h = VL // 2
        i32v = ir.VectorType(vec.i32, VL)
        lo = ir.Constant(i32v, [x for p in range(h) for x in (p, VL + p)])
        hi = ir.Constant(i32v, [x for p in range(h) for x in (h + p, VL + h + p)])
        for _ in range(VL.bit_length() - 1):
            rows = [builder.shuffle_vector(rows[i], rows[i + h], sh)
                    for i in range(h) for sh in (lo, hi)]
        for j in range(VL):
            with builder.if_then(builder.icmp_signed("<", c(j), ncv)):
                ptr = vec.at(dp, d0v, builder.mul(c(j), dsv))
                val = rows[j]
                if add:
                    val = builder.fadd(builder.call(vec.mload, [ptr, al, lanes, zero]), val)
                builder.call(vec.mstore, [val, ptr, al, lanes])
        return context.get_dummy_value()

    i = types.int64
    return types.none(ADD, S, i, i, i, D, i, i, i), codegen


# ------------------------------------------------------------------------- the products

@njit(inline="always", **_OPTS)
def _aligned(buf, n):
    """The n entries of buf (n + VL allocated) from its first 64-byte boundary: the
    scratches are read and written in whole vectors, which would each straddle two cache
    lines from a 16- or 32-byte boundary."""
    o = (-(buf.ctypes.data // buf.itemsize)) % (VECTOR_BYTES // buf.itemsize)
    return buf[o:o + n]


def _make(VL):
    """(forward, gradient) for vectors of VL entries (per dtype: a constant)."""
    CW = 4 * VL                                  # the gradient's block of X's columns
    ZERO = np.float32(0) if VL == VECTOR_BYTES // 4 else np.float64(0)

    @njit(**_OPTS)
    def forward_rows(X, W, P, A, add, r0, r1):
        """A[r0:r1] of forward (see the module docstring); P: the lane sums, (m, N, VL)."""
        K = X.shape[1]
        N = W.shape[1]
        Kv = K - K % VL
        KB = max(VL, _WT_BYTES // (N * X.itemsize) // VL * VL)
        Xf = X.reshape(X.size)
        Wf = W.reshape(W.size)
        NVL = N * VL
        P[r0 * NVL:r1 * NVL] = 0
        WT = _aligned(np.empty(N * KB + VL, X.dtype), N * KB)
        R4 = r0 + (r1 - r0) // 4 * 4
        C5 = N - N % 5
        for kb in range(0, Kv, KB):
            kk = min(KB, Kv - kb)
            for k0 in range(0, kk, VL):
                for j0 in range(0, N, VL):
                    _transpose(False, Wf, (kb + k0) * N + j0, N, VL, WT, j0 * KB + k0, KB,
                               min(VL, N - j0))
            nv = kk // VL
            for i0 in range(r0, R4, 4):
                for j0 in range(0, C5, 5):
                    _dot_tile(4, 5, Xf, i0 * K + kb, K, WT, j0 * KB, KB, nv, P,
                              i0 * NVL + j0 * VL, NVL)
                for j0 in range(C5, N):
                    _dot_tile(4, 1, Xf, i0 * K + kb, K, WT, j0 * KB, KB, nv, P,
                              i0 * NVL + j0 * VL, NVL)
            for i0 in range(R4, r1):
                for j0 in range(0, C5, 5):
                    _dot_tile(1, 5, Xf, i0 * K + kb, K, WT, j0 * KB, KB, nv, P,
                              i0 * NVL + j0 * VL, NVL)
                for j0 in range(C5, N):
                    _dot_tile(1, 1, Xf, i0 * K + kb, K, WT, j0 * KB, KB, nv, P,
                              i0 * NVL + j0 * VL, NVL)
        for i in range(r0, r1):
            for j in range(N):
                base = i * NVL + j * VL
                h = VL // 2
                while h > 0:
                    for q in range(h):
                        P[base + q] += P[base + q + h]
                    h //= 2
                t = P[base]
                for k in range(Kv, K):
                    t += X[i, k] * W[k, j]
                A[i, j] = t + A[i, j] if add else t

    @njit(**_OPTS)
    def gradient_blocks(X, dZ, dW, add, c0, c1):
        """The column blocks c0:c1 of dW (CW columns of X each, whole vectors only), and
        the K - Kv columns left over if c1 is the last."""
        m, K = X.shape
        N = dZ.shape[1]
        Kv = K - K % VL
        Xf = X.reshape(X.size)
        dZf = dZ.reshape(dZ.size)
        dWf = dW.reshape(dW.size)
        T = _aligned(np.empty(N * CW + VL, X.dtype), N * CW)
        C5 = N - N % 5
        for blk in range(c0, c1):
            k0 = blk * CW
            w = min(CW, Kv - k0)
            if w == CW:
                for j0 in range(0, C5, 5):
                    _grad_tile(5, 4, dZf, j0, N, Xf, k0, K, m, T, j0 * CW, CW)
                for j0 in range(C5, N):
                    _grad_tile(1, 4, dZf, j0, N, Xf, k0, K, m, T, j0 * CW, CW)
            else:
                for v in range(0, w, VL):
                    for j0 in range(0, C5, 5):
                        _grad_tile(5, 1, dZf, j0, N, Xf, k0 + v, K, m, T, j0 * CW + v, CW)
                    for j0 in range(C5, N):
                        _grad_tile(1, 1, dZf, j0, N, Xf, k0 + v, K, m, T, j0 * CW + v, CW)
            for kq in range(0, w, VL):
                for j0 in range(0, N, VL):
                    if add:
                        _transpose(True, T, j0 * CW + kq, CW, min(VL, N - j0), dWf,
                                   (k0 + kq) * N + j0, N, VL)
                    else:
                        _transpose(False, T, j0 * CW + kq, CW, min(VL, N - j0), dWf,
                                   (k0 + kq) * N + j0, N, VL)
        if c1 * CW >= Kv:                    # the last blocks' range: the columns left over
            for k in range(Kv, K):
                for j in range(N):
                    acc = ZERO
                    for p in range(m):
                        acc += dZ[p, j] * X[p, k]
                    dW[k, j] = acc + dW[k, j] if add else acc

    return forward_rows, gradient_blocks


# ------------------------------------------------ the products as C functions, and calls

# globals only, so that numba's on-disk cache finds them again in the next process
_forward_f32, _gradient_f32 = _make(VECTOR_BYTES // 4)
_forward_f64, _gradient_f64 = _make(VECTOR_BYTES // 8)


def _fwd_f32(Xp, m, K, Wp, N, Pp, Ap, flags, s0, s1):
    _forward_f32(carray(Xp, (m, K)), carray(Wp, (K, N)), carray(Pp, (m * N * 16,)),
                 carray(Ap, (m, N)), flags & 1 != 0, s0, s1)


def _fwd_f64(Xp, m, K, Wp, N, Pp, Ap, flags, s0, s1):
    _forward_f64(carray(Xp, (m, K)), carray(Wp, (K, N)), carray(Pp, (m * N * 8,)),
                 carray(Ap, (m, N)), flags & 1 != 0, s0, s1)


def _grad_f32(Xp, m, K, Dp, N, Gp, flags, s0, s1):
    _gradient_f32(carray(Xp, (m, K)), carray(Dp, (m, N)), carray(Gp, (K, N)), flags & 1 != 0,
                  s0, s1)


def _grad_f64(Xp, m, K, Dp, N, Gp, flags, s0, s1):
    _gradient_f64(carray(Xp, (m, K)), carray(Dp, (m, N)), carray(Gp, (K, N)), flags & 1 != 0,
                  s0, s1)


_installed = {}


def install():
    """Compile (or load from numba's on-disk cache) the products of both dtypes and
    register their symbols with LLVM; idempotent.  Runs when this module is imported,
    before any code that calls them can be compiled or loaded (an unregistered symbol
    would be a jump to address 0)."""
    if _installed:
        return
    from numba.np.ufunc.parallel import _launch_threads

    import numba

    _launch_threads()                    # registers get_num_threads (see _threads)
    _PARALLEL.value = 1 if numba.threading_layer() == "tbb" else 0
    ll.add_symbol("fastnn_long_parallel", ctypes.addressof(_PARALLEL))
    for dt, fns in ((types.float32, (_fwd_f32, _grad_f32)), (types.float64, (_fwd_f64, _grad_f64))):
        P, i = types.CPointer(dt), types.int64
        sigs = (types.void(P, i, i, P, i, P, P, i, i, i), types.void(P, i, i, P, i, P, i, i, i))
        for name, fn, sig in zip(_SYMBOLS[dt], fns, sigs):
            compiled = cfunc(sig, cache=True, **_OPTS)(fn)
            ll.add_symbol(name, compiled.address)
            _installed[name] = compiled      # keeps the machine code alive


@intrinsic
def _forward_call(typingctx, X, W, P, A, flags, s0, s1):
    """One call to the installed forward of the arrays' dtype: rows s0:s1 (flags: 1 add),
    P the lane sums, m N VL entries."""
    if not _arrays_ok(X, W, P, A, ndims=(2, 2, 1, 2)):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = context.get_value_type(X.dtype).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, i64, i64, ptr, i64, ptr, ptr, i64, i64, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[X.dtype][0])
        xp, wp, tp, ap = _data(context, builder, sig, args, (0, 1, 2, 3))
        f, a0, a1 = _ints(context, builder, sig, args, (4, 5, 6))
        xa = context.make_array(X)(context, builder, args[0])
        m, K = cgutils.unpack_tuple(builder, xa.shape, 2)
        wa = context.make_array(W)(context, builder, args[1])
        N = cgutils.unpack_tuple(builder, wa.shape, 2)[1]
        builder.call(fn, [xp, m, K, wp, N, tp, ap, f, a0, a1])
        return context.get_dummy_value()

    return types.none(X, W, P, A, flags, s0, s1), codegen


@intrinsic
def _gradient_call(typingctx, X, dZ, dW, flags, s0, s1):
    """One call to the installed gradient of the arrays' dtype (flags: 1 add), column
    blocks s0:s1."""
    if not _arrays_ok(X, dZ, dW, ndims=(2, 2, 2)):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = context.get_value_type(X.dtype).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, i64, i64, ptr, i64, ptr, i64, i64, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[X.dtype][1])
        xp, dp, gp = _data(context, builder, sig, args, (0, 1, 2))
        f, a0, a1 = _ints(context, builder, sig, args, (3, 4, 5))
        xa = context.make_array(X)(context, builder, args[0])
        m, K = cgutils.unpack_tuple(builder, xa.shape, 2)
        da = context.make_array(dZ)(context, builder, args[1])
        N = cgutils.unpack_tuple(builder, da.shape, 2)[1]
        builder.call(fn, [xp, m, K, dp, N, gp, f, a0, a1])
        return context.get_dummy_value()

    return types.none(X, dZ, dW, flags, s0, s1), codegen


#: 1 where numba's threading layer is TBB, else 0; compiled code reads it as the external
#: symbol fastnn_long_parallel.  Only TBB serves these products: GNU OpenMP's idle
#: workers spin, which took a 12288-20-512-10 step from 1.5 to 11 ms by stalling
#: OpenBLAS's threads, and a child forked after it started cannot use it; the workqueue
#: layer cannot serve two Python threads at once
_PARALLEL = ctypes.c_int64(0)


def _flag(builder):
    mod = builder.module
    flag = mod.globals.get("fastnn_long_parallel")
    if flag is None:
        flag = ir.GlobalVariable(mod, ir.IntType(64), "fastnn_long_parallel")
        flag.linkage = "external"
    return builder.icmp_signed("!=", builder.load(flag), ir.Constant(ir.IntType(64), 0))


@intrinsic
def _parallel(typingctx):
    """Whether the products may run on numba's threads (_PARALLEL)."""
    def codegen(context, builder, sig, args):
        return _flag(builder)

    return types.boolean(), codegen


@intrinsic
def _threads(typingctx):
    """The threads the products use: numba's thread count where _PARALLEL (read from its
    threading layer's C function, as numba's own parallel loops read it: its
    get_num_threads() goes through a ctypes pointer, which keeps a function out of the
    on-disk cache), else 1."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(cgutils.intp_t, []), "get_num_threads")
        n = builder.call(fn, [])
        return builder.select(_flag(builder), n, ir.Constant(cgutils.intp_t, 1))

    return types.intp(), codegen


@njit(parallel=True, cache=True, **_OPTS)
def long_forward(X, W, A, add):
    """A = X @ W (+ A when add): the rows in one share of whole tiles of 4 per thread;
    each share transposes W for itself (two shares per thread were faster called back to
    back, 295 against 356 us, but slower inside W2's step, 830-860 against 590-600 us)."""
    m = X.shape[0]
    N = W.shape[1]
    VL = VECTOR_BYTES // X.itemsize
    P = _aligned(np.empty(m * N * VL + VL, X.dtype), m * N * VL)
    nt = max(1, min(_threads(), m // 4))
    f = 1 if add else 0
    if nt == 1:
        _forward_call(X, W, P, A, f, 0, m)
    else:
        for t in prange(nt):
            _forward_call(X, W, P, A, f, t * (m // 4) // nt * 4,
                          m if t == nt - 1 else (t + 1) * (m // 4) // nt * 4)


@njit(parallel=True, cache=True, **_OPTS)
def long_gradient(X, dZ, dW, add):
    """dW = X.T @ dZ (+ dW when add): X's column blocks in four shares per thread (TBB's
    threads take them as they come; one each took W2's step from 590-600 to 880 us)."""
    K = X.shape[1]
    VL = VECTOR_BYTES // X.itemsize
    CW = 4 * VL
    nb = (K - K % VL + CW - 1) // CW
    nt = max(1, min(4 * _threads(), nb))
    f = 1 if add else 0
    if nt == 1:
        _gradient_call(X, dZ, dW, f, 0, nb)
    else:
        for t in prange(nt):
            _gradient_call(X, dZ, dW, f, t * nb // nt, (t + 1) * nb // nt)


install()
