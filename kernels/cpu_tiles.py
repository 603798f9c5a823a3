"""Register-tiled matrix products for skinny layers (cpu backend), callable from compiled code.

    _mm(A, a0, ars, aps, M, K, B, b0, N, C, c0)

adds a product into C, all three operands flat (1-D, C-contiguous, one float dtype)::

    C[c0 + i N + j] += sum_{p < K} A[a0 + i ars + p aps] * B[b0 + p N + j]
    for i < M, j < N

so with strides (ars, aps) = (n, 1) A is a row-major (M, n) block and the product is a
forward ``Z += A_prev @ W``; with (1, n) A is the transpose of one and the product is a
weight gradient ``dW += A_prev.T @ dZ``.  B and C are row-major with N columns.

Why: at a skinny layer (N <= 32 columns) BLAS spends as long packing the wide operand as
multiplying (bench/results/2026-11-24-vm-skinny-tiles.md); these tiles read A and B where
they lie.  They are used by the step and inference of networks whose layers are all
skinny (``cpu_skinny.py``), which then call no BLAS at all: OpenBLAS's worker threads
spin after each call and slow the threads that follow by about 2x.

Tiles: the columns that fill three vectors in tiles of R rows by 3 vectors; the columns
left over in tiles of 8 rows (two vectors as 6 + 2 rows, or one vector, then pieces half,
a quarter ... of a vector wide, down to 1), so that enough independent
chains hide the latency of the fused multiply-add; rows left over one at a time.  The
accumulators stay in registers through the sum over p, which runs in chunks of KB terms
whose rows of B stay in L1; each chunk's sum is an in-order chain of fused multiply-adds
from zero, added to C in chunk order, so every entry of C is the same chain of operations
whichever tile computes it, and float32 errors grow like (KB + K/KB) eps, not K eps.

Vectors: AVX-512's (16 float32 / 8 float64 entries, R = 6) where the host has AVX-512F,
else AVX2's (8 / 4, R = 4): ``VECTOR_BYTES``, from the host CPU, as numba's on-disk cache
is keyed.  The width changes which tile computes an entry, not its chain of operations,
so both widths give the same bits (tested).

Compile time: ``_mm`` compiles into each caller as one call to an external symbol
(``fastnn_tile_mm_s`` / ``_d``), not as linked code.  The products themselves are two
``cfunc``s (one per dtype), compiled, or loaded from Numba's on-disk cache, once per
process and dtype by ``install(dtype)``, which must run before any code that calls
``_mm`` is compiled or loaded.  Linked in the ordinary way, each caller would optimize
the products' code again: seconds per caller.
"""
import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._codegen import counted_loop

#: rows of the narrower tiles (R, of the three-vector ones, is set by the vector width below)
R2 = 8
#: bytes of B's chunk (KB rows of N entries) kept in L1 across the row tiles
_CHUNK_BYTES = 16384
_SYMBOLS = {types.float32: "fastnn_tile_mm_s", types.float64: "fastnn_tile_mm_d"}
_OPTS = dict(error_model="numpy", nogil=True)


def _tile_of(vl):
    """The tile intrinsic of products whose whole vectors hold vl entries (one intrinsic
    object per width: numba caches an intrinsic's typing by its argument types)."""

    @intrinsic
    def tile(typingctx, rows, nv, lanes, A, a0, ars, aps, B, b0, kk, bs, C, c0, cs):
        return _tile_typing(vl, rows, nv, lanes, A, a0, ars, aps, B, b0, kk, bs, C, c0, cs)

    return tile


def _tile_typing(vl, rows, nv, lanes, A, a0, ars, aps, B, b0, kk, bs, C, c0, cs):
    """C[c0 + r cs + v lanes + q] += sum_{p < kk} A[a0 + r ars + p aps]
    * B[b0 + p bs + v lanes + q], for r < rows, v < nv, q < lanes.

    rows, nv, lanes: literal ints (lanes 0: a whole vector, vl entries).  The rows x nv
    vector sums start from zero, run in order of p as chains of ``llvm.fma`` and stay in
    registers; each is then added to C (one IEEE add).  No bounds checks: the caller
    keeps every index in range."""
    lits = (rows, nv, lanes)
    if not all(isinstance(x, types.IntegerLiteral) for x in lits):
        return None
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (A, B, C)):
        return None
    dt = C.dtype
    if dt not in _SYMBOLS or A.dtype != dt or B.dtype != dt:
        return None
    NR, NV, L = (x.literal_value for x in lits)
    L = L or vl

    def codegen(context, builder, sig, args):
        ft = context.get_value_type(dt)
        vt = ir.VectorType(ft, L) if L > 1 else ft
        i32, i64 = ir.IntType(32), ir.IntType(64)
        al = context.get_abi_sizeof(ft)
        ap, bp, cp = (context.make_array(sig.args[i])(context, builder, args[i]).data
                      for i in (3, 7, 11))
        a0v, arsv, apsv, b0v, kkv, bsv, c0v, csv = (
            context.cast(builder, args[i], sig.args[i], types.int64)
            for i in (4, 5, 6, 8, 9, 10, 12, 13))
        sfx = (f"v{L}" if L > 1 else "") + ("f32" if dt == types.float32 else "f64")
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3),
                                             "llvm.fma." + sfx)

        def vload(ptr):
            if L == 1:
                return builder.load(ptr)
            return builder.load(builder.bitcast(ptr, vt.as_pointer()), align=al)

        def vstore(val, ptr):
            if L == 1:
                builder.store(val, ptr)
            else:
                builder.store(val, builder.bitcast(ptr, vt.as_pointer()), align=al)

        def const(v):
            return ir.Constant(i64, v)

        def step(p, vals):
            apos, bpos, acc = vals[0], vals[1], vals[2:]
            bv = [vload(builder.gep(bp, [builder.add(bpos, const(v * L))])) for v in range(NV)]
            nxt = []
            for r in range(NR):
                x = builder.load(builder.gep(ap, [builder.add(apos, builder.mul(const(r), arsv))]))
                if L > 1:
                    x = builder.insert_element(ir.Constant(vt, ir.Undefined), x,
                                               ir.Constant(i32, 0))
                    x = builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined),
                                               ir.Constant(ir.VectorType(i32, L), [0] * L))
                for v in range(NV):
                    nxt.append(builder.call(fma, [x, bv[v], acc[r * NV + v]]))
            return [builder.add(apos, apsv), builder.add(bpos, bsv)] + nxt

        out = counted_loop(builder, kkv, [(a0v, i64), (b0v, i64)]
                           + [(ir.Constant(vt, None), vt)] * (NR * NV), step, "tile")
        acc = out[2:]

        for r in range(NR):
            row = builder.add(c0v, builder.mul(const(r), csv))
            for v in range(NV):
                ptr = builder.gep(cp, [builder.add(row, const(v * L))])
                vstore(builder.fadd(vload(ptr), acc[r * NV + v]), ptr)
        return context.get_dummy_value()

    sig = types.none(rows, nv, lanes, A, types.int64, types.int64, types.int64, B,
                     types.int64, types.int64, types.int64, C, types.int64, types.int64)
    return sig, codegen


def _make_product(VL, R):
    """The product for whole vectors of VL entries (``VL`` of the dtype: a constant, so
    that numba compiles only the tiles that width uses) and three-vector tiles of R rows."""
    _tile = _tile_of(VL)

    def piece_of(rows):
        @njit(inline="always", **_OPTS)
        def piece(h, A, a0, ars, aps, B, b0, kk, N, C, c0):
            """One column piece h entries wide (h <= VL, a power of two) of `rows` rows:
            the literal widths the tile needs, one branch each."""
            if h == VL:
                _tile(rows, 1, 0, A, a0, ars, aps, B, b0, kk, N, C, c0, N)
            elif h == 8:
                _tile(rows, 1, 8, A, a0, ars, aps, B, b0, kk, N, C, c0, N)
            elif h == 4:
                _tile(rows, 1, 4, A, a0, ars, aps, B, b0, kk, N, C, c0, N)
            elif h == 2:
                _tile(rows, 1, 2, A, a0, ars, aps, B, b0, kk, N, C, c0, N)
            else:
                _tile(rows, 1, 1, A, a0, ars, aps, B, b0, kk, N, C, c0, N)

        return piece

    piece_r2, piece_1 = piece_of(R2), piece_of(1)

    @njit(inline="always", **_OPTS)
    def rest_tiles(nr, A, a0, ars, aps, B, b0, kk, W, N, C, c0):
        """W columns (fewer than three vectors' worth) of nr (R2 or 1) rows of C, whose
        rows (and B's) are N apart, over one chunk of p: two vectors (six rows, then two:
        12 accumulators at most), then pieces VL, VL/2, ..., 1 wide, each at most once
        (eight rows, so that enough independent chains hide the latency of the fused
        multiply-add)."""
        j = 0
        if j + 2 * VL <= W:
            if nr == R2:
                _tile(6, 2, 0, A, a0, ars, aps, B, b0 + j, kk, N, C, c0 + j, N)
                _tile(2, 2, 0, A, a0 + 6 * ars, ars, aps, B, b0 + j, kk, N, C,
                      c0 + 6 * N + j, N)
            else:
                _tile(1, 2, 0, A, a0, ars, aps, B, b0 + j, kk, N, C, c0 + j, N)
            j += 2 * VL
        h = VL
        while h >= 1:
            if j + h <= W:
                if nr == R2:
                    piece_r2(h, A, a0, ars, aps, B, b0 + j, kk, N, C, c0 + j)
                else:
                    piece_1(h, A, a0, ars, aps, B, b0 + j, kk, N, C, c0 + j)
                j += h
            h //= 2

    def product(A, a0, ars, aps, M, K, B, b0, N, C, c0):
        """The body of _mm (see the module docstring), on flat arrays: the columns that
        fill tiles of three vectors in groups of R rows, the rest in groups of R2 rows."""
        N3 = N - N % (3 * VL)
        KB = max(16, min(256, _CHUNK_BYTES // (max(N, 1) * C.itemsize)))
        for kc in range(0, K, KB):
            kk = min(KB, K - kc)
            ak = a0 + kc * aps
            bk = b0 + kc * N
            if N3 > 0:
                i = 0
                while i + R <= M:
                    for j in range(0, N3, 3 * VL):
                        _tile(R, 3, 0, A, ak + i * ars, ars, aps, B, bk + j, kk, N, C,
                              c0 + i * N + j, N)
                    i += R
                while i < M:
                    for j in range(0, N3, 3 * VL):
                        _tile(1, 3, 0, A, ak + i * ars, ars, aps, B, bk + j, kk, N, C,
                              c0 + i * N + j, N)
                    i += 1
            if N3 < N:
                i = 0
                while i + R2 <= M:
                    rest_tiles(R2, A, ak + i * ars, ars, aps, B, bk + N3, kk, N - N3, N, C,
                               c0 + i * N + N3)
                    i += R2
                while i < M:
                    rest_tiles(1, A, ak + i * ars, ars, aps, B, bk + N3, kk, N - N3, N, C,
                               c0 + i * N + N3)
                    i += 1

    # a name per dtype and width: compiled code is cached and linked by name
    product.__name__ = product.__qualname__ = f"fastnn_tile_product_{VL}_{R}"
    return njit(**_OPTS)(product)


def _vector_bytes():
    """Bytes of the tiles' whole vectors: 64 (AVX-512's zmm registers) where the host has
    AVX-512F, else 32 (AVX2's ymm).  A function of the host CPU alone, as numba's on-disk
    cache is keyed by it."""
    from .cpu_blas import host_avx512

    return 64 if host_avx512() else 32


def products(vector_bytes):
    """(float32 product, float64 product) for whole vectors of vector_bytes (32 or 64):
    three-vector tiles of 6 rows (18 accumulators of AVX-512's 32 registers) or 4 (12 of
    AVX2's 16), the faster on W3's products (bench/results/2026-11-25-vm-zen5.md)."""
    R = 6 if vector_bytes == 64 else 4
    return _make_product(vector_bytes // 4, R), _make_product(vector_bytes // 8, R)


#: the width of this host's tiles
VECTOR_BYTES = _vector_bytes()
_product_f32, _product_f64 = products(VECTOR_BYTES)


# the two products as C functions of pointers: _mm's external symbols (globals only, so
# that numba's on-disk cache finds them again in the next process)
def _mm_f32(Ap, na, a0, ars, aps, M, K, Bp, nb, b0, N, Cp, nc, c0):
    _product_f32(carray(Ap, (na,)), a0, ars, aps, M, K, carray(Bp, (nb,)), b0, N,
                 carray(Cp, (nc,)), c0)


def _mm_f64(Ap, na, a0, ars, aps, M, K, Bp, nb, b0, N, Cp, nc, c0):
    _product_f64(carray(Ap, (na,)), a0, ars, aps, M, K, carray(Bp, (nb,)), b0, N,
                 carray(Cp, (nc,)), c0)


def _signature(dt):
    P, i = types.CPointer(dt), types.int64
    return types.void(P, i, i, i, i, i, i, P, i, i, i, P, i, i)


_installed = {}


def install(dtype):
    """Compile (or load from the on-disk cache) the product of a NumPy float dtype and
    register its symbol with LLVM; idempotent.  Call before compiling or loading code that
    uses _mm on that dtype."""
    dt = types.float32 if dtype == np.float32 else types.float64
    if dt not in _installed:
        fn = cfunc(_signature(dt), cache=True, **_OPTS)(
            _mm_f32 if dt == types.float32 else _mm_f64)
        ll.add_symbol(_SYMBOLS[dt], fn.address)
        _installed[dt] = fn            # keeps the machine code alive


@intrinsic
def _mm(typingctx, A, a0, ars, aps, M, K, B, b0, N, C, c0):
    """C[c0 + i N + j] += sum_{p < K} A[a0 + i ars + p aps] * B[b0 + p N + j] (i < M,
    j < N): one call to the installed product of C's dtype."""
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (A, B, C)):
        return None
    dt = C.dtype
    if dt not in _SYMBOLS or A.dtype != dt or B.dtype != dt:
        return None
    ints = (a0, ars, aps, M, K, b0, N, c0)
    if not all(isinstance(x, types.Integer) for x in ints):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = context.get_value_type(dt).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, i64, i64, i64, i64, i64, i64, ptr, i64,
                                               i64, i64, ptr, i64, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[dt])
        arrs = {i: context.make_array(sig.args[i])(context, builder, args[i]) for i in (0, 6, 9)}

        def n(i):
            return context.cast(builder, args[i], sig.args[i], types.int64)

        def data(i):
            a = arrs[i]
            return a.data, cgutils.unpack_tuple(builder, a.shape, 1)[0]

        (ap, na), (bp, nb), (cp, nc) = data(0), data(6), data(9)
        builder.call(fn, [ap, na, n(1), n(2), n(3), n(4), n(5), bp, nb, n(7), n(8), cp, nc,
                          n(10)])
        return context.get_dummy_value()

    return types.none(A, a0, ars, aps, M, K, B, b0, N, C, c0), codegen
