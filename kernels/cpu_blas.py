"""The BLAS under the cpu kernels: ``_gemm``, one ?gemm call from compiled code.

Compiled kernels call two symbols, ``fastnn_cblas_sgemm`` and ``fastnn_cblas_dgemm``, with
the ILP64 CBLAS signature (row-major)::

    void gemm(int order, int transA, int transB, int64 M, int64 N, int64 K, T alpha,
              const T *A, int64 lda, const T *B, int64 ldb, T beta, T *C, int64 ldc)

registered with LLVM (``llvmlite.binding.add_symbol``) at import, before any kernel is
compiled or loaded from Numba's on-disk cache, so that cached machine code always finds
them, whichever library is behind them:

* ``"numpy"``: the OpenBLAS that NumPy's wheels bundle (``scipy_cblas_?gemm64_`` of
  ``libscipy_openblas64_``), the library ``np.matmul`` runs.  Preferred: it is NumPy's
  own (one BLAS thread pool for NumPy and fastnn) and, measured on the benchmark shapes,
  the faster of the two here (e.g. 256x784x256 sgemm 0.73 ms vs 0.89 ms; 12288x209x20
  weight gradient 1.98 ms vs 2.34 ms, both with 2 threads).
* ``"scipy"``: where NumPy has no bundled OpenBLAS (conda, macOS Accelerate builds ...),
  a small Numba ``cfunc`` with that signature that calls Numba's ``numba_xxgemm`` (SciPy's
  BLAS, the one ``np.dot`` uses inside ``@njit``).

``FASTNN_BLAS=scipy`` in the environment forces the second (tests compare the two).
``BLAS_SOURCE`` says which one this process uses.
"""
import ctypes
import glob
import os

import llvmlite.binding as ll
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

#: CBLAS enum values
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_SYMBOLS = {"s": "fastnn_cblas_sgemm", "d": "fastnn_cblas_dgemm"}


def _numpy_openblas():
    """{"s": address, "d": address} of NumPy's bundled ILP64 OpenBLAS cblas ?gemm, or None."""
    import numpy

    here = os.path.dirname(os.path.abspath(numpy.__file__))
    patterns = [os.path.join(here, os.pardir, "numpy.libs", "libscipy_openblas64_*"),
                os.path.join(here, ".dylibs", "libscipy_openblas64_*")]
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            lib = ctypes.CDLL(path)
            return {k: ctypes.cast(getattr(lib, f"scipy_cblas_{k}gemm64_"), ctypes.c_void_p).value
                    for k in "sd"}
        except (OSError, AttributeError):
            continue
    return None


# ------------------------------------------------------------------ the SciPy fallback

@intrinsic
def _xxgemm_colmajor(typingctx, kind, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """Numba's ``numba_xxgemm`` (column-major, SciPy's BLAS) on raw pointers."""
    def codegen(context, builder, sig, args):
        i8 = ir.IntType(8)
        vp = cgutils.voidptr_t
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [i8, i8, i8, intp, intp, intp, vp, vp, intp,
                                                vp, intp, vp, vp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        a_slot = cgutils.alloca_once_value(builder, args[6])
        b_slot = cgutils.alloca_once_value(builder, args[11])

        def ch(v):
            return builder.trunc(v, i8)

        def ptr(v):
            return builder.bitcast(v, vp)

        def n(v, t):
            return context.cast(builder, v, t, types.intp)

        a = sig.args
        builder.call(fn, [ch(args[0]), ch(args[1]), ch(args[2]), n(args[3], a[3]),
                          n(args[4], a[4]), n(args[5], a[5]), ptr(a_slot), ptr(args[7]),
                          n(args[8], a[8]), ptr(args[9]), n(args[10], a[10]), ptr(b_slot),
                          ptr(args[12]), n(args[13], a[13])])
        return context.get_dummy_value()

    return types.void(kind, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), codegen


def _scipy_adapter(k):
    """A cfunc with the row-major ILP64 CBLAS signature that runs SciPy's column-major
    ?gemm on the transposed problem: C.T = op(B).T op(A).T."""
    T = types.float32 if k == "s" else types.float64
    P = types.CPointer(T)
    sig = types.void(types.int32, types.int32, types.int32, types.int64, types.int64,
                     types.int64, T, P, types.int64, P, types.int64, T, P, types.int64)
    kind = ord(k)

    def adapter(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
        cta = ord("t") if ta == _TRANS else ord("n")
        ctb = ord("t") if tb == _TRANS else ord("n")
        _xxgemm_colmajor(kind, ctb, cta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc)

    return cfunc(sig, nopython=True)(adapter)


def _install():
    import scipy.linalg.cython_blas  # noqa: F401 - numba_xxgemm finds SciPy's BLAS through it

    found = None if os.environ.get("FASTNN_BLAS", "").lower() == "scipy" else _numpy_openblas()
    if found is not None:
        for k, name in _SYMBOLS.items():
            ll.add_symbol(name, found[k])
        return "numpy", None
    keep = {k: _scipy_adapter(k) for k in _SYMBOLS}
    for k, name in _SYMBOLS.items():
        ll.add_symbol(name, keep[k].address)
    return "scipy", keep


#: "numpy" or "scipy": the library behind the kernels' ?gemm in this process
BLAS_SOURCE, _adapters = _install()


def host_avx512():
    """Whether the host CPU has AVX-512F, as llvmlite reads it (False where it cannot).
    Numba keys its on-disk cache by the host CPU's features, so code compiled with this
    as a constant is never loaded on a host where it is not true."""
    try:
        return bool(ll.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:   # llvmlite cannot read the features on this platform
        return False


# ------------------------------------------------------------------ the kernels' entry

@intrinsic
def _gemm(typingctx, X, Y, C, tx, ty, beta):
    """C = op(X) @ op(Y) + beta C, op(M) = M.T when tx / ty; C-contiguous 2-D float arrays.

    One call to ``fastnn_cblas_?gemm`` (row-major; leading dimensions are the stored row
    lengths, at least 1).  Returns 0.
    """
    arrays = (X, Y, C)
    if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in arrays):
        return None
    dtype = C.dtype
    if dtype not in (types.float32, types.float64) or X.dtype != dtype or Y.dtype != dtype:
        return None
    name = _SYMBOLS["s" if dtype == types.float32 else "d"]

    def codegen(context, builder, sig, args):
        xa, ya, ca = (context.make_array(t)(context, builder, v)
                      for t, v in zip(sig.args[:3], args[:3]))
        xs = cgutils.unpack_tuple(builder, xa.shape, 2)
        ys = cgutils.unpack_tuple(builder, ya.shape, 2)
        cs = cgutils.unpack_tuple(builder, ca.shape, 2)
        txv = context.cast(builder, args[3], sig.args[3], types.boolean)
        tyv = context.cast(builder, args[4], sig.args[4], types.boolean)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        ft = context.get_value_type(dtype)
        ptr = ft.as_pointer()
        one64 = ir.Constant(i64, 1)

        def ld(v):  # leading dimension >= 1 (BLAS rejects 0 even for empty matrices)
            v = builder.sext(v, i64) if v.type.width < 64 else v
            return builder.select(builder.icmp_signed(">", v, one64), v, one64)

        def trans(flag):
            return builder.select(flag, ir.Constant(i32, _TRANS), ir.Constant(i32, _NO_TRANS))

        k = builder.select(txv, xs[0], xs[1])
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, ft, ptr, i64,
                                               ptr, i64, ft, ptr, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), trans(txv), trans(tyv), cs[0], cs[1], k,
                          ir.Constant(ft, 1.0), xa.data, ld(xs[1]), ya.data, ld(ys[1]),
                          context.cast(builder, args[5], sig.args[5], dtype), ca.data,
                          ld(cs[1])])
        return ir.Constant(i32, 0)

    return types.int32(X, Y, C, tx, ty, beta), codegen
