"""The command line: ``python -m fastnn <command>`` (also the ``fastnn`` script)."""
import argparse
import sys
import time


def _demo(args):
    import numpy as np

    import fastnn as fn
    from fastnn.datasets import digits

    X_train, X_test, y_train, y_test, name = digits(seed=args.seed)
    print(f"fastnn {fn.__version__} demo: {name}")
    print(f"train {X_train.shape[0]} / test {X_test.shape[0]} examples; backend={args.backend!r}")
    net = fn.Network([fn.Dense(64, "relu"), fn.Dense(10, "softmax")], n_inputs=X_train.shape[1],
                     loss="cross_entropy", backend=args.backend, seed=args.seed)
    net.summary()
    t0 = time.perf_counter()
    history = net.fit(X_train, y_train, optimizer=fn.Adam(lr=3e-3), epochs=args.epochs,
                      batch_size=32, validation_data=(X_test, y_test), progress=not args.quiet,
                      seed=args.seed)
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    print(f"test accuracy: {accuracy:.4f}  ({len(history.loss)} epochs, final loss "
          f"{history.loss[-1]:.4f})")
    print(f"time: {seconds:.2f} s (including the first call's JIT compile or cache load)")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="fastnn: train and run fully connected neural networks fast.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="train a digits classifier and print its test accuracy",
                          description="Train a 64-64-10 ReLU/softmax network on scikit-learn's "
                                      "digits (70/30 split), with a progress bar; print the test "
                                      "accuracy and the time taken.")
    demo.add_argument("--epochs", type=int, default=30, help="epochs to train (default 30)")
    demo.add_argument("--backend", default="cpu", choices=["cpu", "reference", "cuda"],
                      help="kernels backend (default cpu)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)
