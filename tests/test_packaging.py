"""Packaging: kernels/ ships as fastnn.kernels, never as a top-level `kernels`."""
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_wheel_contains_fastnn_kernels_and_no_top_level_kernels(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("fastnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("__init__", "reference", "cpu", "cpu_blas", "cpu_step", "cuda"):
        assert f"fastnn/kernels/{module}.py" in names
    assert not [n for n in names if n.startswith("kernels/")]
    assert "fastnn/network.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_fastnn_kernels_imports_from_outside_the_repo(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c",
         "import fastnn.kernels, fastnn.kernels.reference, fastnn;"
         "print(fastnn.kernels.__file__); import importlib.util as u;"
         "print(u.find_spec('kernels') is None or 'fastnn' in str(u.find_spec('kernels').origin))"],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert pathlib.Path(out[0]).parent.name == "kernels"
    assert out[1] == "True"
