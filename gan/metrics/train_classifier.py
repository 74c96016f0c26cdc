"""`python -m gan.metrics.train_classifier --dataset NAME`: train a data set's domain classifier once, to a file.

The network behind a data set's classifier FID, KID, precision/recall and modes is trained by the project's
recipe (gan.metrics.classifier.DEFAULT_RECIPE) and then travels as this file, named by its fingerprint, so that
every machine and every trial of a study scores with the same weights. mnist5k's file ships with the package
(made by this command); for another data set, train it here (on a GPU with --device cuda if you like) and give
the file to a study with `python -m study.run --classifier PATH`. Without --out the file goes where a study's
driver on this machine looks first (the classifier cache, $GAN_STUDY_CACHE).

A data set that cannot be loaded is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gan.metrics.classifier import DEFAULT_RECIPE, ClassifierWeights, cache_path, digit_source, train_classifier

EXIT_USAGE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from gan.data import DATASETS

    parser = argparse.ArgumentParser(prog="python -m gan.metrics.train_classifier",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=DATASETS,
                        help="the data set (Stacked MNIST: its channel digits' classifier)")
    parser.add_argument("--data-root", help="where torchvision data sets are (default $GAN_STUDY_DATA)")
    parser.add_argument("--out", help="the weights file to write (default: the classifier cache of this machine)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from gan.data import DatasetUnavailable, load_dataset

    args = parse_args(argv)
    try:
        splits = digit_source(load_dataset(args.dataset, args.data_root, download=True))
    except DatasetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out) if args.out else cache_path(splits, DEFAULT_RECIPE)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    weights = ClassifierWeights.of(train_classifier(splits, DEFAULT_RECIPE, args.device), splits, DEFAULT_RECIPE)
    weights.save(out)
    print(f"classifier {weights.fingerprint} of {splits.name} (training split {weights.data_fingerprint}): test "
          f"accuracy {weights.test_accuracy:.4f}, trained in {time.time() - started:.0f} s on {args.device}; "
          f"written to {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
