"""The backend registry: "reference" | "cpu" | "cuda" -> a kernels module.

A backend is imported only when first asked for, checked to export every name in
``fastnn.kernels.KERNEL_NAMES``, and never swapped for another silently.
"""
import importlib
import threading

from . import kernels

BACKENDS = ("cpu", "reference", "cuda")
DEFAULT_BACKEND = "cpu"

_modules = {}
_lock = threading.Lock()


def _simulated():
    """Whether numba runs CUDA on its simulator: numba reads NUMBA_ENABLE_CUDASIM once, when
    it is imported, so the variable set later has no effect (and is not looked at)."""
    try:   # where kernels/cuda.py reads it
        from numba.cuda import config
    except Exception:  # pragma: no cover - older layouts, or numba.cuda not importable
        from numba.core import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _cuda_problem():
    """Why the cuda backend cannot run here, or None when it can."""
    if _simulated():
        try:
            from numba import cuda  # noqa: F401
        except Exception as exc:  # pragma: no cover - depends on the install
            return f"the CUDA simulator could not be imported ({exc})"
        return None
    try:
        from numba import cuda
    except Exception as exc:
        return (f"numba.cuda could not be imported ({exc}); install the extra: "
                "pip install 'fastnn[cuda]'")
    try:
        if not cuda.is_available():
            return ("no usable NVIDIA GPU / CUDA driver was found (numba.cuda.is_available() "
                    "is False); set NUMBA_ENABLE_CUDASIM=1 to run on the CUDA simulator")
    except Exception as exc:  # pragma: no cover - driver errors
        return f"the CUDA driver failed to initialise ({exc})"
    return None


def get_backend(name):
    """The kernels module for a backend name; raises ValueError for an unknown or unusable one."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, one of {BACKENDS}; got {type(name).__name__}")
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    with _lock:
        module = _modules.get(name)
        if module is None:
            if name == "cuda":
                problem = _cuda_problem()
                if problem is not None:
                    raise RuntimeError(f"backend='cuda' is not available: {problem}")
            try:
                module = importlib.import_module(f".kernels.{name}", __package__)
            except ImportError as exc:   # e.g. the driver went away since the check
                raise RuntimeError(f"backend={name!r} is not available: {exc}") from None
            missing = [k for k in kernels.KERNEL_NAMES if not hasattr(module, k)]
            if missing:
                raise RuntimeError(f"backend {name!r} lacks kernels {missing}")
            _modules[name] = module
    return module


def available_backends():
    """The backends that work in this process, the default first."""
    names = ["cpu", "reference"]
    if _cuda_problem() is None:
        names.append("cuda")
    return names
