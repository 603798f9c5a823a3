"""The cuda backend in the normal test suite.

* In this (normal) process there is no simulator: ``cuda`` must be absent from
  ``available_backends()`` and ``get_backend("cuda")`` must say what is missing.
* The cuda kernels themselves are tested on numba's CUDA simulator, in a separate pytest
  process with ``NUMBA_ENABLE_CUDASIM=1`` in its environment (the variable must be set
  before numba is imported, and must not leak into the other tests).  To put more tests
  under the simulator, add their files to ``SIM_TEST_FILES`` (run in full) or to
  ``SIM_MARKED_TEST_FILES`` (only their tests marked ``cudasim`` run).
"""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CUDASIM

ROOT = Path(__file__).resolve().parent.parent

#: test files run in full under the simulator (each must keep to tiny shapes when CUDASIM)
SIM_TEST_FILES = [
    "tests/test_kernels.py",
    "tests/test_cuda_backend.py",
]
#: test files of which only the tests marked ``@pytest.mark.cudasim`` run under the simulator
SIM_MARKED_TEST_FILES = ["tests/test_backends.py"]

#: hypothesis examples per @given test under the simulator (every GPU thread is a Python
#: thread there, so an example costs ~0.1-1 s); registered as the profile "cudasim"
SIM_HYPOTHESIS_EXAMPLES = 20
#: the subprocess is killed after this long (it normally takes 1-2 minutes on 2 cores)
SIM_TIMEOUT_S = 900

# The child registers a hypothesis profile before pytest loads conftest.py (which loads the
# profile named by HYPOTHESIS_PROFILE), and lowers the interpreter's thread switch interval:
# the simulator's block manager busy-waits on its threads, and with the default 5 ms
# interval every syncthreads() costs a few ms per thread; 0.1 ms makes the run ~2.5x faster.
_CHILD = """\
import sys
sys.setswitchinterval(1e-4)
from hypothesis import HealthCheck, settings
settings.register_profile("cudasim", max_examples={examples}, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def _sim_env():
    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["HYPOTHESIS_PROFILE"] = "cudasim"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _run_sim_pytest(args):
    code = _CHILD.format(examples=SIM_HYPOTHESIS_EXAMPLES)
    cmd = [sys.executable, "-c", code, "-q", "-rfEs", "-p", "no:cacheprovider",
           "-W", "ignore::pytest.PytestAssertRewriteWarning",
           "--durations=5", *args]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=_sim_env(), capture_output=True, text=True,
                           timeout=SIM_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
        pytest.fail(f"simulator pytest run exceeded {SIM_TIMEOUT_S}s: {' '.join(args)}\n"
                    f"{out[-6000:]}")
    return r, time.perf_counter() - t0


@pytest.mark.skipif(CUDASIM, reason="already inside the simulator run")
@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda (NVIDIA's CUDA target for numba) is not installed")
def test_cuda_kernels_under_the_simulator():
    """tests/test_kernels.py and tests/test_cuda_backend.py pass with NUMBA_ENABLE_CUDASIM=1."""
    runs = [list(SIM_TEST_FILES)]
    if SIM_MARKED_TEST_FILES:
        runs.append([*SIM_MARKED_TEST_FILES, "-m", "cudasim"])
    for args in runs:
        r, seconds = _run_sim_pytest(args)
        tail = (r.stdout + r.stderr)[-8000:]
        # exit 5 (nothing collected: no test marked cudasim yet) is fine for the marked run
        ok = (0, 5) if "-m" in args else (0,)
        assert r.returncode in ok, (
            f"simulator pytest run failed (exit {r.returncode}, {seconds:.0f}s): "
            f"{' '.join(args)}\n{tail}")
        print(f"simulator run {' '.join(args)}: {seconds:.0f}s\n{tail[-1500:]}")


def _gpu_usable():
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


@pytest.mark.skipif(CUDASIM, reason="the simulator provides the cuda backend")
def test_cuda_backend_absent_without_gpu_says_what_is_missing():
    import fastnn
    from fastnn.backend import get_backend

    if _gpu_usable():  # a real GPU: the backend must then be offered and work
        assert "cuda" in fastnn.available_backends()
        assert get_backend("cuda").__name__.endswith(".cuda")
        return
    assert "cuda" not in fastnn.available_backends()
    with pytest.raises(RuntimeError) as info:
        get_backend("cuda")
    msg = str(info.value)
    assert "cuda" in msg
    assert any(s in msg for s in ("GPU", "numba-cuda", "numba.cuda", "fastnn[cuda]")), msg
    assert "NUMBA_ENABLE_CUDASIM" in msg or "fastnn[cuda]" in msg, msg


@pytest.mark.skipif(CUDASIM, reason="the simulator provides the cuda backend")
def test_cuda_kernels_module_refuses_to_import_without_gpu():
    if _gpu_usable():
        pytest.skip("a usable GPU is present")
    with pytest.raises(ImportError, match="GPU|numba-cuda"):
        importlib.import_module("fastnn.kernels.cuda")


@pytest.mark.skipif(CUDASIM, reason="needs a process without the simulator")
def test_missing_numba_cuda_is_named():
    """Without the numba-cuda package the error names it and the extra to install."""
    code = ("import sys\n"
            "sys.modules['numba.cuda'] = None  # as if numba-cuda were not installed\n"
            "import fastnn\n"
            "assert 'cuda' not in fastnn.available_backends()\n"
            "try:\n"
            "    fastnn.get_backend('cuda')\n"
            "except RuntimeError as e:\n"
            "    assert 'numba.cuda' in str(e) and 'fastnn[cuda]' in str(e), e\n"
            "else:\n"
            "    raise SystemExit('get_backend did not raise')\n"
            "try:\n"
            "    import fastnn.kernels.cuda\n"
            "except ImportError as e:\n"
            "    assert 'numba-cuda' in str(e), e\n"
            "else:\n"
            "    raise SystemExit('import did not raise')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(CUDASIM, reason="needs a process without the simulator")
def test_the_simulator_variable_set_after_numba_was_imported_is_not_taken_for_it():
    """numba reads NUMBA_ENABLE_CUDASIM once, at import: setting it later does not make
    the cuda backend available, and asking for it is the usual RuntimeError."""
    code = ("import os, numba, fastnn\n"
            "os.environ['NUMBA_ENABLE_CUDASIM'] = '1'\n"
            "assert 'cuda' not in fastnn.available_backends(), fastnn.available_backends()\n"
            "try:\n"
            "    fastnn.Network([fastnn.Dense(1)], 2, backend='cuda')\n"
            "except RuntimeError as e:\n"
            "    assert \"backend='cuda' is not available\" in str(e), e\n"
            "else:\n"
            "    raise SystemExit('no RuntimeError')\n")
    if _gpu_usable():
        pytest.skip("a usable GPU is present")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
