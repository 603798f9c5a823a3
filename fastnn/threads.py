"""One knob for the number of CPU threads fastnn uses.

``set_num_threads(n)`` sets Numba's thread count (the parallel kernels' ``prange`` loops) and
limits the BLAS thread pools (numpy's and scipy's OpenBLAS, or whichever BLAS is loaded; the
cpu backend's kernels call NumPy's bundled OpenBLAS, or SciPy's BLAS where NumPy has none:
``fastnn.kernels.cpu.BLAS_SOURCE``) to the same n, so that the pools never ask for more
cores than the user allowed.  The BLAS limit is a threadpoolctl
``threadpool_limits`` object kept alive in this module until the next call.

Numba's thread count is per Python thread (a thread that calls ``set_num_threads`` changes
it for itself and for the threads it starts afterwards), as in numba itself.
"""
import threading

import numba

__all__ = ["set_num_threads", "get_num_threads"]

_lock = threading.Lock()
_blas_limits = None  # the live threadpoolctl.threadpool_limits, or None


def _load_blas():
    """Load scipy's BLAS (the cpu kernels' fallback) so that threadpoolctl limits it too."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except Exception:  # pragma: no cover - scipy is a dependency; stay usable without it
        pass


def set_num_threads(n):
    """Use n threads: Numba's parallel kernels and the BLAS pools (1 <= n <= max).

    max is ``numba.config.NUMBA_NUM_THREADS`` (the cores Numba saw at import, or the
    ``NUMBA_NUM_THREADS`` environment variable).  Raises ValueError for anything else
    (a non-integer n included).
    """
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be a positive int; got n={n!r}")
    n = int(n)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"n must be between 1 and {limit} (numba.config.NUMBA_NUM_THREADS); "
                         f"got n={n}")
    global _blas_limits
    from threadpoolctl import threadpool_limits

    with _lock:
        _load_blas()
        numba.set_num_threads(n)
        if _blas_limits is not None:
            _blas_limits.restore_original_limits()
        _blas_limits = threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The number of threads Numba's parallel kernels use (as set by set_num_threads)."""
    return numba.get_num_threads()
