"""save / load: one file, bit-for-bit, checked, atomic, never unpickled."""
import json
import os
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn.io import FORMAT_VERSION


@pytest.fixture
def net():
    return fn.Network([fn.Dense(7, "leaky_relu", alpha=0.2), fn.Dense(3, "softmax")], n_inputs=5,
                      dtype="float64", backend="reference", seed=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_round_trip_is_bitwise(tmp_path, dtype, backend):
    net = fn.Network([fn.Dense(9, "tanh"), fn.Dense(4, "leaky_relu", alpha=0.3),
                      fn.Dense(2, "sigmoid")], n_inputs=6, loss="bce", dtype=dtype,
                     backend=backend, seed=1)
    X = np.random.default_rng(0).standard_normal((11, 6))
    path = tmp_path / "model.fnn"
    net.save(path)
    back = fn.load(path)
    assert back.get_config() == net.get_config()
    assert back.dtype == np.dtype(dtype) and back.backend == backend
    np.testing.assert_array_equal(back.get_flat_params(), net.get_flat_params())
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert os.listdir(tmp_path) == ["model.fnn"]  # no temporary left behind, no suffix added


def test_load_onto_another_backend(tmp_path, net):
    net.save(tmp_path / "m")
    back = fn.load(tmp_path / "m", backend="cpu")
    assert back.backend == "cpu"
    X = np.random.default_rng(0).standard_normal((4, 5))
    np.testing.assert_allclose(back.forward(X), net.forward(X), rtol=1e-12)


def test_save_overwrites_atomically(tmp_path, net):
    path = tmp_path / "m"
    net.save(path)
    net.set_flat_params(net.get_flat_params() + 1)
    net.save(path)
    np.testing.assert_array_equal(fn.load(path).get_flat_params(), net.get_flat_params())


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    members.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **members)


def test_corrupted_parameters_are_detected(tmp_path, net):
    path = tmp_path / "m"
    net.save(path)
    with np.load(path) as data:
        theta = data["theta"].copy()
    theta[0] += 1
    _rewrite(path, theta=theta)
    with pytest.raises(fn.ModelFileError, match="checksum"):
        fn.load(path)


def test_newer_version_is_refused(tmp_path, net):
    path = tmp_path / "m"
    net.save(path)
    _rewrite(path, version=np.array([FORMAT_VERSION + 1]))
    with pytest.raises(fn.ModelFileError, match="newer"):
        fn.load(path)


def test_truncated_file_is_refused(tmp_path, net):
    path = tmp_path / "m"
    net.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(fn.ModelFileError, match="truncated or corrupted|not a fastnn"):
        fn.load(path)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(fn.ModelFileError):
        fn.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(fn.ModelFileError, match="not a fastnn model"):
        fn.load(other)
    with pytest.raises(FileNotFoundError):
        fn.load(tmp_path / "missing")


def test_load_never_unpickles(tmp_path, net):
    """An object array in the file cannot be read: allow_pickle=False."""
    path = tmp_path / "m"
    net.save(path)
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    members["config"] = np.array([{"evil": 1}], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **members)
    with pytest.raises(fn.ModelFileError):
        fn.load(path)


def test_file_is_a_plain_zip_with_json_architecture(tmp_path, net):
    path = tmp_path / "m"
    net.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(
            ["format.npy", "version.npy", "config.npy", "theta.npy", "checksum.npy"])
    with np.load(path) as data:
        config = json.loads(data["config"].tobytes())
    assert config["layers"][0] == {"units": 7, "activation": "leaky_relu", "alpha": 0.2,
                                   "init": "auto", "init_epsilon": 0.12}
    assert config["n_inputs"] == 5 and config["loss"] == "cross_entropy"


# ---------------------------------------------------------------- review findings

def test_seed_is_checked_on_assignment_so_every_saved_file_loads(tmp_path, net):
    for bad, error in [(-1, ValueError), (2.0, TypeError), ("abc", TypeError), (True, TypeError),
                       ([1, 2], TypeError)]:
        with pytest.raises(error, match="seed"):
            net.seed = bad
        assert net.seed == 3
    net.seed = np.int64(5)   # e.g. from rng.integers: kept as a plain int
    assert type(net.seed) is int
    net.save(tmp_path / "m")
    assert fn.load(tmp_path / "m").seed == 5
    net.seed = None
    net.save(tmp_path / "m")
    assert fn.load(tmp_path / "m").seed is None


def test_save_takes_a_name_near_the_length_limit(tmp_path, net):
    path = tmp_path / ("m" * 240 + ".fnn")   # 244 bytes: legal, and 18 more would not be
    net.save(path)
    np.testing.assert_array_equal(fn.load(path).get_flat_params(), net.get_flat_params())
    assert os.listdir(tmp_path) == [path.name]


def test_save_writes_through_a_symlink_and_keeps_the_permissions(tmp_path, net):
    target = tmp_path / "real.fnn"
    net.save(target)
    os.chmod(target, 0o600)
    link = tmp_path / "link.fnn"
    link.symlink_to(target)
    other = fn.Network([fn.Dense(7, "leaky_relu", alpha=0.2), fn.Dense(3, "softmax")],
                       n_inputs=5, dtype="float64", backend="reference", seed=9)
    other.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(fn.load(target).get_flat_params(), other.get_flat_params())
    assert os.stat(target).st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="directory"):
        net.save(str(tmp_path / "nowhere") + "/")


def test_load_from_a_pipe_says_so(tmp_path, net):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR)   # a writer, so that opening for reading does not block
    try:
        with pytest.raises(fn.ModelFileError, match="not a regular file"):
            fn.load(path)
    finally:
        os.close(fd)


def test_errors_from_inside_a_member_name_the_path(tmp_path, net):
    path = tmp_path / "m.fnn"
    net.save(path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, np.zeros(3, np.complex64))
    members["theta.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(fn.ModelFileError) as info:
        fn.load(path)
    assert repr(str(path)) in str(info.value) and "complex64" in str(info.value)
    assert "object" not in str(info.value)


def test_a_network_pickled_on_a_backend_not_available_here_unpickles_on_cpu(net):
    import pickle

    state = net.__getstate__()
    state["backend"] = "no-such-backend"
    clone = fn.Network.__new__(fn.Network)
    with pytest.warns(UserWarning, match="unpickled on 'cpu'"):
        clone.__setstate__(state)
    assert clone.backend == "cpu"
    np.testing.assert_array_equal(clone.get_flat_params(), net.get_flat_params())
    assert pickle.loads(pickle.dumps(clone)).backend == "cpu"


def test_load_from_a_fifo_without_a_writer_does_not_wait(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "fifo"
    os.mkfifo(path)
    code = ("import sys, fastnn\n"
            "try:\n"
            "    fastnn.load(sys.argv[1])\n"
            "except fastnn.ModelFileError as e:\n"
            "    assert 'not a regular file' in str(e), e\n"
            "else:\n"
            "    raise SystemExit('no error')\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
