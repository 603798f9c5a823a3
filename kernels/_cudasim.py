"""Thread safety for numba-cuda's CUDA simulator, installed by kernels/cuda.py when it runs
on the simulator (``NUMBA_ENABLE_CUDASIM=1``); nothing here runs on a GPU.

1. A thread-safe shared-memory allocator.

Under the simulator every GPU thread of a block is a Python thread, and
``cuda.shared.array`` looks its array up by the caller's (file, line) in a per-launch dict:
``get``, and on a miss ``np.empty`` and store.  Two threads that miss at the same time
each store their own array, so threads of one block end up with different "shared"
arrays and a tiled product reads tiles nobody wrote.  The smaller the interpreter's switch
interval (tests/test_cuda_sim.py lowers it to 0.1 ms for speed), the likelier.  On a GPU
shared memory is one block-wide allocation, so this is the simulator's bug, not the
kernels'; ``install()`` replaces the lookup with a locked one (same keys, same arrays).

2. One host thread in the backend at a time (``serialize``).  The simulator cannot run
two kernels at once: during a launch it swaps the kernel module's ``cuda`` global for its
fake one, which another host thread's ``cuda.to_device`` would then meet.  So under the
simulator every public function of kernels/cuda.py holds one re-entrant lock; threads
using one network (or several) take turns, as they would queue on a GPU's stream.
"""
import functools
import inspect
import sys
import threading

import numpy as np

_lock = threading.Lock()


def install():
    """Patch ``FakeCUDAShared.array`` (idempotent); call only with NUMBA_ENABLE_CUDASIM=1."""
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    original = FakeCUDAShared.array
    if getattr(original, "_fastnn_locked", False):
        return

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)  # errors / dynamic memory
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with _lock:
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, _np_dtype(dtype))
        return res

    array._fastnn_locked = True
    FakeCUDAShared.array = array


def _np_dtype(dtype):
    """The simulator's own conversion of a numba type (or a NumPy dtype) to a NumPy dtype."""
    from numba.cuda.simulator import kernelapi

    if isinstance(dtype, kernelapi.types.Type):
        return kernelapi.numpy_support.as_dtype(dtype)
    return np.dtype(dtype)


_backend_lock = threading.RLock()


def serialize(namespace):
    """Wrap every public function defined in the module `namespace` (its globals) so that
    one host thread at a time runs in it (idempotent)."""
    module = namespace["__name__"]
    for name, fn in list(namespace.items()):
        if (name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module
                or getattr(fn, "_fastnn_serialized", False)):
            continue
        namespace[name] = _locked(fn)


def _locked(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _backend_lock:
            return fn(*args, **kwargs)

    wrapper._fastnn_serialized = True
    return wrapper
