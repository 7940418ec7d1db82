"""The benchmarks vad knows (``dataset=ucf_crime|xd_violence|shanghaitech``): per dataset the
module holding its official split (``catalogue()``: train and test :class:`~vad.types.Video`
records from the shipped annotation files, ground truth by the dataset's rule) and its anomaly
classes. Modules are imported when asked for: a command reads only its dataset's files."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from vad.types import Video


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    module: str  # holds CLASSES and catalogue()
    # Snippets of the test videos whose lengths no shipped file gives, in all (ShanghaiTech's 155
    # normal test videos: 7,809, from RTFM's gt-sh.npy); None: every test length is known.
    unknown_test_snippets: int | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(import_module(self.module).CLASSES)

    def catalogue(self) -> tuple[tuple[Video, ...], tuple[Video, ...]]:
        """(train, test) videos of the official split, in the official list order."""
        return import_module(self.module).catalogue()


DATASETS = {d.name: d for d in (Dataset("ucf_crime", "UCF-Crime", "vad.data.ucf_crime"),
                                Dataset("xd_violence", "XD-Violence", "vad.data.xd_violence"),
                                Dataset("shanghaitech", "ShanghaiTech", "vad.data.shanghaitech", 7809))}


# Feature layouts of one benchmark: reading them under another dataset= is a mistake.
LAYOUT_DATASETS = {"xd_i3d": "xd_violence", "sh_i3d": "shanghaitech", "ucf_crime_npy": "ucf_crime",
                   "sultani_txt": "ucf_crime", "capstone_h5": "ucf_crime", "tencrop_npy": "ucf_crime",
                   "percrop_npy": "ucf_crime"}


def dataset(name: str) -> Dataset:
    """The dataset called ``name`` (``dataset.name``)."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]
