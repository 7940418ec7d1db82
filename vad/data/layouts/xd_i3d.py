"""XD-Violence features as the field's repositories distribute them (Roc-Ng/XDVioDet and its
followers): ``<name>__<k>.npy`` I3D RGB, k = 0..4 (5 crops, 0 = centre), each (T, 1024), and
``<name>__vggish.npy`` VGGish audio, (T, 128), anywhere under the root (found by file name).

Videos, labels and test ground truth come from :mod:`vad.data.xd_violence`; the lists
(``rgb.list``, ``rgb_test.list``, paths of the authors' machine) only choose and order videos.
Where the RGB features have one snippet more than the audio, the last RGB snippet is dropped,
as the repositories do (whichever streams a run reads, so RGB and RGB + audio runs score the
same snippets). A test video's features must have the T its ground truth was built for.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from vad.constants import CLIP_FRAMES, FIXED_DIMS
from vad.data.layouts.base import Layout, files_by_key
from vad.data.layouts.npy import load_npy, snippet_count
from vad.data.layouts.tencrop_npy import list_name
from vad.data.xd_violence import catalogue, class_of
from vad.types import Entry, Video

log = logging.getLogger(__name__)

N_CROPS = 5
AUDIO = "AUDIO"
AUDIO_DIM = FIXED_DIMS[AUDIO]
FEATURE_FILE = re.compile(r"__(\d+|vggish)\.npy$")
RGB_LINE = re.compile(r"(.+)__(\d+)\.npy$")
LISTS = {"train": "rgb.list", "test": "rgb_test.list"}
OTHER_EXTRACTION = ("features of another extraction? VadCLIP's CLIP features have one snippet more "
                    "for 57 videos: use the I3D features of the XD-Violence repositories")


class XdI3d(Layout):
    """``<name>__<k>.npy`` (T, 1024) per crop, k = 0..4, and ``<name>__vggish.npy`` (T, 128)."""

    name = "xd_i3d"
    kind = "clips"
    options = ("train_list", "test_list", "crops")
    root_hint = "the folder holding the <name>__<k>.npy RGB and <name>__vggish.npy audio files, in any sub-folders"
    hint = " (D = 1024 for I3D RGB)"

    def __init__(self, root: Path, train_list: Path | None = None, test_list: Path | None = None,
                 crops: str = "mean"):
        super().__init__(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")
        self.lists = {"train": train_list, "test": test_list}
        self.crops = str(crops)
        # file name -> its one path under the root
        self.index = files_by_key(self.root, lambda file: file if FEATURE_FILE.search(file) else None,
                                  "files named {}")
        self.trimmed: set[str] = set()  # videos whose last RGB snippet is dropped
        self._entries: list[Entry] | None = None

    def _listed(self, split: str) -> list[Video]:
        """The split's videos in the order of ``data.<split>_list`` (every crop listed), or the
        shipped order."""
        shipped = catalogue()[split == "test"]
        path = self.lists[split]
        if path is None:
            return list(shipped)
        path, option = Path(path), f"data.{split}_list"
        if not path.is_file():
            raise FileNotFoundError(f"{option}={path} does not exist: give the {split} list "
                                    f"({LISTS[split]}), or null for the shipped order")
        known = {v.path: v for v in shipped}
        crops: dict[str, list[int]] = {}
        first: dict[str, int] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            match = RGB_LINE.match(list_name(line.strip()))
            if match is None:
                audio = " (an audio list? give the RGB list: audio files are found by name)" \
                    if line.strip().endswith("__vggish.npy") else ""
                raise ValueError(f"{path}:{lineno}: expected a path ending in <name>__<k>.npy, as in "
                                 f"{LISTS[split]}, found {line.strip()!r}{audio}")
            name, k = match.group(1), int(match.group(2))
            first.setdefault(name, lineno)
            crops.setdefault(name, []).append(k)
        videos = []
        for name, ks in crops.items():
            where = f"{path}:{first[name]}"
            if sorted(ks) != list(range(N_CROPS)):
                raise ValueError(f"{where}: {name} is listed with crops {ks}, expected each of "
                                 f"__0 .. __{N_CROPS - 1} once; list the video's {N_CROPS} crop files")
            video = known.get(name)
            if video is None:
                if split == "test":
                    raise ValueError(f"{where}: {name} is not an XD-Violence test video, so it has no "
                                     f"frame ground truth; fix {option}, or set it to null")
                try:
                    video = Video(name, class_of(name), 0)
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from err
            videos.append(video)
        return videos

    def entries(self) -> list[Entry]:
        """Train then test videos; a video without shipped length gets 16 * T of its features,
        and the videos whose RGB has one snippet more than their audio are noted here."""
        if self._entries is None:
            entries = []
            for split in ("train", "test"):
                for video in self._listed(split):
                    rgb = snippet_count(self.index.get(f"{video.path}__0.npy"))
                    audio = snippet_count(self.index.get(f"{video.path}__vggish.npy"))
                    if rgb is not None and audio is not None and rgb == audio + 1:
                        self.trimmed.add(video.path)
                        rgb = audio
                    if video.frames == 0 and rgb:
                        video = Video(video.path, video.cls, CLIP_FRAMES * rgb, video.spans)
                    entries.append(Entry(video, split))
            if self.trimmed:
                log.info("%d videos: RGB has one snippet more than audio, the last RGB snippet dropped "
                         "(as the XD-Violence repositories do)", len(self.trimmed))
            self._entries = entries
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        if any(file.endswith("__vggish.npy") for file in self.index):
            return ("RGB", AUDIO)
        return ("RGB",)

    def file(self, name: str, suffix: str) -> Path:
        """``<name>__<suffix>.npy`` where the root holds it, else beside the video's crop 0 (or
        directly under the root), the place a message names."""
        file = f"{name}__{suffix}.npy"
        if file in self.index:
            return self.index[file]
        first = self.index.get(f"{name}__0.npy")
        return (first.parent if first is not None else self.root) / file

    def source(self, entry: Entry, stream: str) -> str:
        if stream == AUDIO:
            return str(self.file(entry.video.path, "vggish"))
        return str(self.file(entry.video.path, "0"))[:-len("0.npy")] + f"{{0..{N_CROPS - 1}}}.npy"

    def _check_length(self, entry: Entry, path: Path, snippets: int, note: str = "") -> None:
        """A test video's features must have the T of its ground truth (catalogue frames)."""
        frames = entry.video.frames
        if frames and frames != CLIP_FRAMES * snippets:
            raise ValueError(f"{path}: expected T={frames // CLIP_FRAMES} snippets ({frames} ground-truth "
                             f"frames = {CLIP_FRAMES} * T), found T={snippets}{note}; {OTHER_EXTRACTION}")

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream == AUDIO:
            return self._audio(entry)
        if stream != "RGB":
            raise ValueError(f"data={self.name} has the RGB and AUDIO streams, found {stream}: "
                             "use modality=RGB or RGB_AUDIO")
        self.entries()  # notes the videos to trim
        crops = []
        for k in range(N_CROPS):
            path = self.file(entry.video.path, str(k))
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: crop {k} of {entry.video.path} "
                                        f"({entry.split}); restore it, or check data.root and the lists")
            array = load_npy(path)
            if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
                raise ValueError(f"{path}: expected (T, D) float features of one crop{self.hint}, "
                                 f"found {array.shape}; re-export the crop")
            if crops and array.shape != crops[0].shape:
                raise ValueError(f"{path}: expected the shape of crop 0, {crops[0].shape}, found "
                                 f"{array.shape}; every crop of a video needs the same snippets")
            crops.append(array.astype(np.float32, copy=False))
        clips = np.stack(crops, axis=1)
        note = ""
        if entry.video.path in self.trimmed:
            clips = clips[:-1]
            note = (f" after dropping the last RGB snippet to match "
                    f"{self.file(entry.video.path, 'vggish')}")
        self._check_length(entry, self.file(entry.video.path, "0"), len(clips), note)
        return clips

    def _audio(self, entry: Entry) -> np.ndarray:
        """(T, 1, 128) VGGish features (no crops); repeated per RGB crop unless crops=mean, so
        that crops=one and crops=all pair them with every RGB crop."""
        path = self.file(entry.video.path, "vggish")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: audio of {entry.video.path} ({entry.split}); "
                                    "restore it, check data.root, or use modality=RGB")
        array = load_npy(path)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"{path}: expected (T, {AUDIO_DIM}) VGGish features, found {array.shape}; "
                             "re-export the audio features")
        rgb_path = self.file(entry.video.path, "0")
        rgb = snippet_count(rgb_path)
        if rgb is not None and rgb not in (len(array), len(array) + 1):
            raise ValueError(f"{path}: {len(array)} audio snippets but {rgb_path} has {rgb} RGB snippets; "
                             "expected the same T (or RGB one more, its last snippet then dropped): "
                             "features of different videos or extractions? re-extract one of them")
        self._check_length(entry, path, len(array))
        audio = array.astype(np.float32, copy=False)[:, None]
        return audio if self.crops == "mean" else np.broadcast_to(audio, (len(audio), N_CROPS, audio.shape[-1]))
