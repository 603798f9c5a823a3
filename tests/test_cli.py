"""The command line: train -> save -> predict round trips on CSV / .npz / .npy, one-line
errors with exit code 2 for bad input, --plot and History.plot, demo, bench, --help."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import cli

BACKEND = os.environ.get("FASTNN_TEST_BACKEND", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def _iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def write_csv(path, rows, header=None):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def iris_csv(tmp_path):
    X, y = _iris()
    rows = [[*map(str, x), SPECIES[t]] for x, t in zip(X, y)]
    return write_csv(tmp_path / "iris.csv", rows, ["sepal_l", "sepal_w", "petal_l", "petal_w",
                                                   "species"])


def run(argv, capsys):
    """cli.main in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_column(path_or_text, column=0, from_text=False):
    lines = path_or_text.splitlines() if from_text else open(path_or_text).read().splitlines()
    rows = list(csv.reader(lines))
    return rows[0], [r[column] for r in rows[1:]]


TRAIN = ["--epochs", "60", "--lr", "0.01", "--layers", "16", "--quiet", "--backend", BACKEND]


# ---------------------------------------------------------------- round trips

def test_csv_round_trip_with_header_and_text_labels(iris_csv, tmp_path, capsys):
    model, preds = tmp_path / "iris.fnn", tmp_path / "preds.csv"
    code, out, err = run(["train", iris_csv, "--label", "species", "--output", model] + TRAIN,
                         capsys)
    assert code == 0, err
    assert "val_accuracy" in out and os.path.exists(model)
    assert "150 rows x 4 features" in err and "3 classes" in err
    code, _, err = run(["predict", "--model", model, "--input", iris_csv, "--output", preds],
                       capsys)
    assert code == 0, err
    header, labels = read_column(preds)
    assert header == ["species"]
    _, y = _iris()
    assert np.mean(np.array(labels) == SPECIES[y]) > 0.9
    # probabilities to stdout, one column per class
    code, out, _ = run(["predict", "-m", model, "-i", iris_csv, "--proba"], capsys)
    assert code == 0
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == [f"proba_{s}" for s in SPECIES]
    P = np.array(rows[1:], dtype=float)
    assert P.shape == (150, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    # the saved model is an ordinary fastnn model taking raw (unstandardized) features
    net = fn.load(model)
    X, _ = _iris()
    np.testing.assert_array_equal(SPECIES[net.predict(X)], labels)


def test_csv_without_header_label_index_and_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (300, 3)) * [1, 10, 100]
    y = 3 * X[:, 0] - 0.2 * X[:, 1] + 0.01 * X[:, 2] + 50
    data = write_csv(tmp_path / "reg.csv", np.column_stack([y, X]).tolist())
    model = tmp_path / "reg.fnn"
    code, out, err = run(["train", data, "--label", "0", "--loss", "mse", "--output", model,
                          "--epochs", "100", "--lr", "0.01", "--layers", "none", "--quiet",
                          "--backend", BACKEND], capsys)
    assert code == 0, err
    assert "regression" in err and "val_loss" in out
    code, out, _ = run(["predict", "-m", model, "-i", data], capsys)  # label column dropped
    assert code == 0
    header, values = read_column(out, from_text=True)
    assert header == ["prediction"]
    pred = np.array(values, dtype=float)
    assert 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2) > 0.99
    features_only = write_csv(tmp_path / "x.csv", X.tolist())
    code, out2, _ = run(["predict", "-m", model, "-i", features_only], capsys)
    assert code == 0 and out2 == out
    code, _, err = run(["predict", "-m", model, "-i", features_only, "--proba"], capsys)
    assert code == 2 and "regression" in err


@pytest.mark.parametrize("ext", ["npz", "npy"])
def test_npz_and_npy_round_trip(ext, tmp_path, capsys):
    X, y = _iris()
    data = tmp_path / f"iris.{ext}"
    if ext == "npz":
        np.savez(data, X=X, y=y)
    else:
        np.save(data, np.column_stack([X, y]))
    model = tmp_path / "m.fnn"
    code, out, err = run(["train", data, "--output", model] + TRAIN, capsys)
    assert code == 0, err
    assert "3 classes" in err
    code, out, err = run(["predict", "-m", model, "-i", data], capsys)
    assert code == 0, err
    _, labels = read_column(out, from_text=True)
    assert np.mean(np.array(labels, dtype=int) == y) > 0.9


def test_binary_bce_and_lbfgs(tmp_path, capsys):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    data = tmp_path / "bc.npz"
    np.savez(data, X=X, y=np.where(y == 1, "benign", "malignant"))
    model = tmp_path / "bc.fnn"
    code, out, err = run(["train", data, "--loss", "bce", "--optimizer", "lbfgs", "--epochs",
                          "40", "--layers", "8", "--l2", "1", "--quiet", "--output", model,
                          "--backend", BACKEND], capsys)
    assert code == 0, err
    code, out, _ = run(["predict", "-m", model, "-i", data, "--proba"], capsys)
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == ["proba_benign", "proba_malignant"]
    P = np.array(rows[1:], dtype=float)
    assert np.mean(np.where(P[:, 1] > 0.5, 0, 1) == y) > 0.95


# ---------------------------------------------------------------- bad input: exit 2, one line

def _bad_inputs(tmp_path, iris_csv):
    nonnum = write_csv(tmp_path / "nonnum.csv", [["1", "2", "0"], ["3", "abc", "1"]],
                       ["a", "b", "y"])
    ragged = write_csv(tmp_path / "ragged.csv", [["1", "2", "0"], ["3", "4"]], ["a", "b", "y"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    npz = tmp_path / "bad.npz"
    np.savez(npz, A=np.ones(3))
    garbage = tmp_path / "garbage.fnn"
    garbage.write_bytes(b"not a model")
    return {
        "non-numeric": (["train", nonnum], "'abc' is not a number"),
        "ragged": (["train", ragged], "ragged"),
        "missing label column": (["train", iris_csv, "--label", "colour"], "no label column"),
        "label index out of range": (["train", iris_csv, "--label", "9"], "no label column"),
        "missing file": (["train", tmp_path / "nope.csv"], "no such file"),
        "empty file": (["train", empty], "empty"),
        "npz without X/y": (["train", npz], "needs 'X'"),
        "text labels for regression": (["train", iris_csv, "--loss", "mse"], "numeric labels"),
        "bad model file": (["predict", "-m", garbage, "-i", iris_csv], "not a fastnn model"),
        "missing model": (["predict", "-m", tmp_path / "no.fnn", "-i", iris_csv], "no such"),
        "bad layers": (["train", iris_csv, "--layers", "16,x"], "--layers"),
        "unknown command": (["frobnicate"], "invalid choice"),
        "features that overflow": (["train", write_csv(
            tmp_path / "huge.csv", [[repr((i + 1) * 1e306), str(i % 2)] for i in range(20)],
            ["a", "y"])], "too large to standardize"),
        "unusable backend": (["train", iris_csv, "--backend", "nope-gpu"], "nope-gpu"),
    }


CASES = ["non-numeric", "ragged", "missing label column", "label index out of range",
         "missing file", "empty file", "npz without X/y", "text labels for regression",
         "bad model file", "missing model", "bad layers", "unknown command",
         "features that overflow", "unusable backend"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_code_2(case, tmp_path, iris_csv, capsys):
    argv, expected = _bad_inputs(tmp_path, iris_csv)[case]
    try:
        code, out, err = run(argv + ["--quiet"] * (argv[0] == "train" and case != "bad layers"),
                             capsys)
    except SystemExit as exc:  # argparse usage errors exit from parse_args
        code = exc.code
        out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in err


def test_bad_predict_input(tmp_path, iris_csv, capsys):
    model = tmp_path / "iris.fnn"
    assert run(["train", iris_csv, "--output", model, "--epochs", "1", "--quiet",
                "--backend", BACKEND], capsys)[0] == 0
    wrong = write_csv(tmp_path / "wrong.csv", [["1", "2"], ["3", "4"]])
    nonnum = write_csv(tmp_path / "nn.csv", [["1", "2", "x", "4"]])
    for path, expected in ((wrong, "expects 4"), (nonnum, "'x' is not a number")):
        code, _, err = run(["predict", "-m", model, "-i", path], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_cuda_without_a_gpu_is_one_line(iris_csv, tmp_path, capsys):
    if "cuda" in fn.available_backends():
        pytest.skip("the cuda backend is available here")
    for argv in (["train", iris_csv, "--quiet"], ["predict", "-m", tmp_path / "m.fnn", "-i",
                                                   iris_csv]):
        code, _, err = run(argv + ["--backend", "cuda"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "cuda" in err and "Traceback" not in err


def test_predict_takes_header_columns_by_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = (X @ [1.0, 2.0, -1.0] > 0).astype(int)
    train = write_csv(tmp_path / "abc.csv", [[*map(repr, r.tolist()), t] for r, t in zip(X, y)],
                      ["a", "b", "c", "label"])
    model = tmp_path / "m.fnn"
    assert run(["train", train, "-o", model, *TRAIN], capsys)[0] == 0
    code, want, _ = run(["predict", "-m", model, "-i", train, "--proba"], capsys)
    assert code == 0
    shuffled = write_csv(tmp_path / "cba.csv",
                         [[t, *map(repr, r[::-1].tolist())] for r, t in zip(X, y)],
                         ["label", "c", "b", "a"])
    code, got, _ = run(["predict", "-m", model, "-i", shuffled, "--proba"], capsys)
    assert code == 0 and got == want
    partial = write_csv(tmp_path / "ab.csv", [list(map(repr, r[:2].tolist())) for r in X],
                        ["a", "b"])
    code, _, err = run(["predict", "-m", model, "-i", partial], capsys)
    assert code == 2 and "not ['c']" in err


def test_standardization_that_float32_cannot_hold_is_saved_in_float64(tmp_path, capsys):
    """Timestamps: the means are 1e9 times the spread; folded into float32 weights the
    model would predict one class for every row."""
    rng = np.random.default_rng(0)
    t = 1.6e12 + 1000 * rng.standard_normal(400)
    data = write_csv(tmp_path / "ts.csv", [[repr(float(v)), int(v > 1.6e12)] for v in t],
                     ["t", "label"])
    model, pred = tmp_path / "ts.fnn", tmp_path / "pred.csv"
    code, _, err = run(["train", data, "-o", model, "--epochs", "30", "--quiet",
                        "--backend", BACKEND], capsys)
    assert code == 0 and "saved in float64" in err
    assert fn.load(model).dtype == np.float64
    assert run(["predict", "-m", model, "-i", data, "-o", pred], capsys)[0] == 0
    _, got = read_column(pred)
    assert np.mean(np.array(got, dtype=int) == (t > 1.6e12)) > 0.95
    # ordinary features keep float32
    X, y = _iris()
    iris = write_csv(tmp_path / "iris.csv", [[*map(str, x), c] for x, c in zip(X, y)])
    code, _, err = run(["train", iris, "-o", model, *TRAIN], capsys)
    assert code == 0 and "float64" not in err and fn.load(model).dtype == np.float32


def test_subprocess_bad_csv_no_traceback(tmp_path):
    """The real entry point: `python -m fastnn` on a bad CSV prints one line, exits 2."""
    bad = write_csv(tmp_path / "bad.csv", [["1", "2", "0"], ["3", "oops", "1"]], ["a", "b", "y"])
    proc = subprocess.run([sys.executable, "-m", "fastnn", "train", bad, "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fastnn: error: {bad}: line 3, column 'b': 'oops' is not a number (features must "
        "be numeric)"]
    assert proc.stdout == ""


# ---------------------------------------------------------------- plots

def test_train_plot_writes_png(iris_csv, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    code, out, err = run(["train", iris_csv, "--output", tmp_path / "m.fnn", "--plot", png,
                          "--epochs", "3", "--quiet", "--backend", BACKEND], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(iris_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, _, err = run(["train", iris_csv, "--plot", tmp_path / "c.png", "--quiet",
                        "--output", tmp_path / "m.fnn"], capsys)
    assert code == 2 and "fastnn[plot]" in err and len(err.strip().splitlines()) == 1
    history = fn.History()
    history._record(0, {"loss": 1.0})
    with pytest.raises(ImportError, match=r"fastnn\[plot\]"):
        history.plot()


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    X, y = _iris()
    net = fn.Network([fn.Dense(8, "relu"), fn.Dense(3, "softmax")], n_inputs=4, seed=0,
                     backend=BACKEND)
    history = net.fit(X, y, epochs=4, validation_data=(X, y), progress=False)
    fig = history.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert labels == ["loss", "val_loss", "val_accuracy"]
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        fn.History().plot()


# ---------------------------------------------------------------- demo, bench, help

def test_demo_still_works(capsys):
    code, out, _ = run(["demo", "--epochs", "2", "--quiet", "--backend", BACKEND], capsys)
    assert code == 0 and "test accuracy" in out


def test_bench_calls_compare_main(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "compare.py"
    fake.write_text("CALLS = []\ndef main(argv):\n    print('compare', argv)\n    return 0\n")
    monkeypatch.setattr(cli, "_compare_path", lambda: str(fake))
    code, out, _ = run(["bench", "--workloads", "W1"], capsys)
    assert code == 0 and "compare ['--quick', '--workloads', 'W1']" in out
    code, out, _ = run(["bench", "--full"], capsys)
    assert code == 0 and "compare []" in out


def test_bench_without_the_suite(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_compare_path", lambda: None)
    code, out, err = run(["bench"], capsys)
    assert code == 1 and "bench/compare.py" in err and len(err.strip().splitlines()) == 1


def test_bench_finds_the_repository_suite():
    path = cli._compare_path()
    if not os.path.exists(os.path.join(ROOT, "bench", "compare.py")):
        pytest.skip("bench/compare.py is not in this checkout")
    assert os.path.samefile(path, os.path.join(ROOT, "bench", "compare.py"))


@pytest.mark.parametrize("argv, expected", [
    ([], ["demo", "train", "predict", "bench", "examples:"]),
    (["train"], ["--layers", "--activation", "--loss", "--epochs", "--batch-size", "--lr",
                 "--l2", "--backend", "--label", "--validation-split", "--output", "--plot",
                 ".npz", "header"]),
    (["predict"], ["--model", "--input", "--output", "--proba"]),
    (["demo"], ["--epochs"]),
])
def test_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out


def test_no_command_prints_help(capsys):
    code, out, err = run([], capsys)   # a usage error: help on stderr, as argparse's errors
    assert code == 2 and "usage: fastnn" in err and out == ""


# ---------------------------------------------------------------- review findings

def test_pandas_style_numeric_header_is_detected(tmp_path, capsys):
    """pandas' DataFrame(X).assign(target=y).to_csv(index=False) writes 0,1,...,target:
    a header with numbers in it; predict's file with header 0,1,... lists the features
    (eight or more all-numeric names: fewer could be a row of data)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300] % 3
    names = [str(j) for j in range(64)]
    data = write_csv(tmp_path / "d.csv", [[*map(str, x), str(t)] for x, t in zip(X, y)],
                     names + ["target"])
    new = write_csv(tmp_path / "new.csv", [[*map(str, x)] for x in X[:5]], names)
    model = tmp_path / "m.fnn"
    code, _, err = run(["train", data, "-o", model, *TRAIN], capsys)
    assert code == 0 and "300 rows x 64 features" in err and "3 classes" in err
    code, out, _ = run(["predict", "-m", model, "-i", new], capsys)
    header, column = read_column(out, from_text=True)
    assert code == 0 and header == ["target"] and len(column) == 5
    assert set(column) <= {"0", "1", "2"}


@pytest.mark.parametrize("bad", ["nan", "inf", "NA"])
@pytest.mark.parametrize("loss", ["auto", "mse"])
def test_a_label_that_is_not_a_finite_number_is_an_error(tmp_path, capsys, bad, loss):
    rows = [[str(i), str(i * 0.5 + 0.25)] for i in range(30)]
    rows[4][1] = bad
    data = write_csv(tmp_path / "r.csv", rows, ["x", "y"])
    code, _, err = run(["train", data, "--loss", loss, "-o", tmp_path / "m.fnn", *TRAIN], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a finite number" in err or "missing value" in err
    assert not (tmp_path / "m.fnn").exists()


def test_a_class_named_like_a_missing_value_is_a_class_among_class_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    names = np.array(["none", "mild", "severe"])[np.arange(60) % 3]
    data = write_csv(tmp_path / "s.csv", [[*map(str, x), c] for x, c in zip(X, names)],
                     ["a", "b", "severity"])
    code, _, err = run(["train", data, "-o", tmp_path / "m.fnn", *TRAIN], capsys)
    assert code == 0 and "3 classes" in err


def test_damaged_npz_inputs_are_one_line_errors(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    whole = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(whole[:len(whole) // 2])
    np.savez_compressed(tmp_path / "c.npz", X=X, y=y)
    flipped = bytearray((tmp_path / "c.npz").read_bytes())
    flipped[100] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    np.savez(tmp_path / "obj.npz", X=np.array([[1, "a"]], dtype=object), y=np.array([1]))
    for name in ["trunc.npz", "flip.npz", "obj.npz"]:
        code, _, err = run(["train", tmp_path / name, "-o", tmp_path / "m.fnn", *TRAIN], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (name, err)
        assert name in err and "fastnn: error:" in err
    model = tmp_path / "m.fnn"
    assert run(["train", tmp_path / "d.npz", "-o", model, *TRAIN], capsys)[0] == 0
    for name in ["trunc.npz", "flip.npz"]:
        code, _, err = run(["predict", "-m", model, "-i", tmp_path / name], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (name, err)


def test_a_float32_fold_of_large_regression_targets_is_saved_in_float64(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = 1e9 + 10 * (X[:, 0] - X[:, 1])
    data = tmp_path / "big.csv"
    np.savetxt(data, np.c_[X, y], delimiter=",", header="a,b,y", comments="", fmt="%.10g")
    model = tmp_path / "m.fnn"
    code, _, err = run(["train", data, "-o", model, "--epochs", "60", "--quiet"], capsys)
    assert code == 0 and "saved in float64" in err
    net = fn.load(model)
    rmse = np.sqrt(np.mean((net.predict(X).ravel() - y) ** 2))
    assert net.dtype == np.float64 and rmse < 0.2 * y.std()
    # predict prints the float64 values in full
    code, out, _ = run(["predict", "-m", model, "-i", data], capsys)
    _, column = read_column(out, from_text=True)
    X_read = np.loadtxt(data, delimiter=",", skiprows=1)[:, :2]   # the file's digits
    np.testing.assert_array_equal(np.array(column, dtype=float), net.predict(X_read).ravel())


def test_option_values_are_checked_before_anything_runs(iris_csv, tmp_path, capsys):
    for option in (["--lr", "inf"], ["--l2", "nan"], ["--momentum", "1"], ["--momentum", "5"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["train", iris_csv, "-o", str(tmp_path / "m.fnn"), *option])
        err = capsys.readouterr().err
        assert info.value.code == 2 and "fastnn train: error: argument" in err, option
    with pytest.raises(SystemExit):
        cli.main(["demo", "--epochs", "0"])
    assert "fastnn demo: error: argument --epochs" in capsys.readouterr().err
    # --plot: an unknown format before training; no extension: matplotlib adds .png
    pytest.importorskip("matplotlib")
    code, out, err = run(["train", iris_csv, "-o", tmp_path / "m.fnn", "--plot",
                          tmp_path / "c.xyz", *TRAIN], capsys)
    assert code == 2 and "'xyz'" in err and not (tmp_path / "m.fnn").exists()
    code, out, _ = run(["train", iris_csv, "-o", tmp_path / "m.fnn", "--plot", tmp_path / "c",
                        *TRAIN], capsys)
    assert code == 0 and (tmp_path / "c.png").exists() and f"{tmp_path / 'c.png'}" in out


def test_outputs_that_would_overwrite_an_input_or_name_a_directory_are_refused(
        iris_csv, tmp_path, capsys):
    code, _, err = run(["train", iris_csv, "-o", iris_csv, *TRAIN], capsys)
    assert code == 2 and "would be overwritten" in err
    code, _, err = run(["train", iris_csv, "-o", str(tmp_path / "nowhere") + "/", *TRAIN],
                       capsys)
    assert code == 2 and "is a directory" in err
    model = tmp_path / "m.fnn"
    assert run(["train", iris_csv, "-o", model, *TRAIN], capsys)[0] == 0
    before = open(iris_csv).read()
    code, _, err = run(["predict", "-m", model, "-i", iris_csv, "-o", iris_csv], capsys)
    assert code == 2 and "would be overwritten" in err and open(iris_csv).read() == before


def test_bench_with_an_unknown_workload_is_a_one_line_error(capsys):
    if cli._compare_path() is None:
        pytest.skip("no source checkout beside this installation")
    code = cli.main(["bench", "--workloads", "W9"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "W9" in err


def test_a_diverged_training_is_reported_once(iris_csv, tmp_path, capsys):
    code, _, err = run(["train", iris_csv, "-o", tmp_path / "m.fnn", "--optimizer", "sgd",
                        "--lr", "1e30", "--quiet"], capsys)
    assert code == 1 and err.count("training diverged") == 1


@pytest.mark.parametrize("cell", ["", "NA", "x"])
def test_a_first_data_row_with_a_bad_cell_is_an_error_not_a_header(tmp_path, capsys, cell):
    rows = [["0.5", cell, "1.0", "1"]] + [[str(i), str(i + 1), str(i + 2), str(i % 2)]
                                          for i in range(20)]
    data = write_csv(tmp_path / "d.csv", rows)
    code, _, err = run(["train", data, "-o", tmp_path / "m.fnn", *TRAIN], capsys)
    assert code == 2 and "line 1" in err


def test_a_headerless_row_of_class_names_is_data(tmp_path, capsys):
    """0,1,yes: positions, then a name; but 'yes' recurs in its column, so it is a label."""
    rng = np.random.default_rng(0)
    rows = [["0", "1", "yes"]] + [[str(rng.integers(3)), str(rng.integers(3)),
                                   ["yes", "no"][i % 2]] for i in range(30)]
    data = write_csv(tmp_path / "d.csv", rows)
    code, _, err = run(["train", data, "-o", tmp_path / "m.fnn", *TRAIN], capsys)
    assert code == 0 and "31 rows x 2 features" in err


def test_main_restores_the_warning_display(iris_csv, tmp_path, capsys):
    import warnings

    before = warnings.showwarning
    assert run(["train", iris_csv, "-o", tmp_path / "m.fnn", *TRAIN], capsys)[0] == 0
    assert warnings.showwarning is before
