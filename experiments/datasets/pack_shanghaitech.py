"""Pack the public ShanghaiTech (weakly-supervised split) files into what the repository ships.

Run once, from the repository root, on a folder holding the public files (``SH_Train.txt``,
``SH_Test.txt``, RTFM's ``shanghai-i3d-{train,test}-10crop.list``, ``test_frame_mask/*.npy``,
``gt-sh.npy``, ``{test,train}_videos.tsv``; sources in ``tests/data/shanghaitech/README.md``):

    python experiments/datasets/pack_shanghaitech.py SRC

Writes the package data ``vad/resources/shanghaitech/`` (the split files and lists as they are,
the 107 masks as one ``test_frame_mask.npz`` of uint8 arrays keyed by video name) and the
test-only reference ``tests/data/shanghaitech/`` (``gt-sh.npz``: ``np.packbits`` of
``gt-sh.npy``'s 0/1 values and its length; ``{test,train}_videos.tsv`` for the per-video lengths and offsets).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np

from vad.io import atomic_path

FILES = ("SH_Train.txt", "SH_Test.txt", "shanghai-i3d-train-10crop.list", "shanghai-i3d-test-10crop.list")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    src = parser.parse_args().src
    package, tests = Path("vad/resources/shanghaitech"), Path("tests/data/shanghaitech")
    package.mkdir(parents=True, exist_ok=True)
    tests.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(src / name, package / name)
    masks = {p.stem: np.load(p) for p in sorted((src / "test_frame_mask").glob("*.npy"))}
    assert len(masks) == 107 and all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in masks.values())
    with atomic_path(package / "test_frame_mask.npz") as tmp:
        np.savez_compressed(tmp, **masks)
    gt = np.load(src / "gt-sh.npy")
    assert set(np.unique(gt)) == {0.0, 1.0}
    with atomic_path(tests / "gt-sh.npz") as tmp:
        np.savez_compressed(tmp, bits=np.packbits(gt.astype(np.uint8)), length=np.int64(len(gt)))
    for name in ("test_videos.tsv", "train_videos.tsv"):
        shutil.copyfile(src / name, tests / name)
    print(f"gt-sh.npy: {len(gt)} frames, {int(gt.sum())} anomalous, "
          f"sha256 {hashlib.sha256((src / 'gt-sh.npy').read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
