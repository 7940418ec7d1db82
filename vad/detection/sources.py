"""Where ``vad.detect`` reads frames: the sources a user names (:func:`parse_sources`) and one
reader per source (:class:`ClipSource`) that turns its frames into prepared 16-frame clips.

Sources: a video file, a folder of videos (recursive, the extensions of
``vad.data.layouts.videos``), a ``.txt`` list (one file, folder, URL or camera per line; relative
paths from the list's folder), an ``rtsp://`` / ``http(s)://`` URL (read by OpenCV's FFmpeg
backend) or a camera index (``0``).

Threads and the drop policy
---------------------------
A :class:`ClipSource` runs two threads: a *reader* that only decodes frames and cuts them into
clips, and a *preparer* that makes a clip's network inputs (flow, movement, preprocessing; see
:class:`vad.extraction.pipeline.ClipPreparer`). Between them is a queue of 2 raw clips, after
them a queue of ``queue_clips`` prepared clips that :meth:`ClipSource.get` takes from.
For a live source (URL, camera, or a file with ``realtime=true``) both queues drop their OLDEST
clip when a new one arrives and they are full: a consumer slower than the stream loses whole
clips (counted in ``clips_dropped``), memory stays bounded and the reader never waits, so a
camera's frames are never left to pile up in the driver and the scores stay recent. A file read
without ``realtime`` is read at the consumer's pace instead (the queues wait; nothing is dropped).
A clip after a gap (dropped clips, a reconnection) starts the preparer afresh (``reset``).

Time: a file's frame ``i`` is at ``i / fps`` (header fps); a live frame at the wall-clock seconds
since the source opened. ``realtime=true`` delivers a file's frame ``i`` no earlier than
``i / fps`` seconds after its first frame, as a camera would.

Ends: end of file; a file that cannot be decoded, is empty or shorter than one clip, a camera
that cannot be opened, or a URL that cannot be opened after ``reconnect_retries`` more attempts
set ``error``. A live stream that stops is reopened up to ``reconnect_retries`` times,
``reconnect_delay_s`` apart (a log line each); when that fails it ends with ``end_reason`` saying
so (its clips so far stay valid).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from vad.cli import UserError
from vad.constants import CLIP_FRAMES, DEFAULT_FPS

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
NETWORK_TIMEOUT_S = 10.0  # OpenCV/FFmpeg open and read timeouts of a URL
_RAW_CLIPS = 2            # decoded clips waiting for the preparer
_EXPECTED = ("expected a video file, a folder of videos, a .txt list of videos, an rtsp:// or "
             "http(s):// URL, or a camera index such as 0")


@dataclass(frozen=True)
class Source:
    """One thing to read: ``spec`` (a file's absolute path, the URL, or the camera index as a
    string), ``kind`` (``file``, ``url`` or ``camera``) and ``name``, a folder name unique
    among the run's sources (no separators; a URL's credentials never appear in it)."""

    spec: str
    kind: str
    name: str

    @property
    def label(self) -> str:
        """The source for messages: the path, ``camera N``, or the URL with its password masked."""
        if self.kind == "camera":
            return f"camera {self.spec}"
        if self.kind == "url":
            parts = urlsplit(self.spec)
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
                return parts._replace(netloc=netloc).geturl()
        return self.spec


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "source"


def _is_url(text: str) -> bool:
    return text.lower().startswith(URL_SCHEMES)


def _url_name(url: str) -> str:
    parts = urlsplit(url)
    pieces = [parts.hostname or "", str(parts.port or ""), parts.path, parts.query]
    return _safe(" ".join(p for p in pieces if p))


def _as_list(source) -> list:
    if isinstance(source, (str, int, os.PathLike)):
        return [source]
    try:
        return list(source)
    except TypeError:
        raise UserError(f"source={source!r}: {_EXPECTED}") from None


def _expand(spec, where: str = "source", base: Path | None = None) -> list[tuple[str, str, str, str]]:
    """``[(spec, kind, short name, long name)]`` of one user item (a folder gives many)."""
    from vad.data.layouts.videos import EXTENSIONS, list_videos

    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise UserError(f"{where}={spec!r}: {_EXPECTED}")
    if isinstance(spec, int):
        if spec < 0:
            raise UserError(f"{where}={spec}: a camera index is >= 0")
        return [(str(spec), "camera", f"camera{spec}", f"camera{spec}")]
    text = os.fspath(spec).strip()
    if re.fullmatch(r"\d+", text):
        return [(str(int(text)), "camera", f"camera{int(text)}", f"camera{int(text)}")]
    if _is_url(text):
        return [(text, "url", _url_name(text), _url_name(text))]
    if "://" in text:
        raise UserError(f"{where}={text}: unsupported URL scheme; {_EXPECTED}")
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_dir():
        videos = list_videos(path)
        if not videos:
            raise UserError(f"{where}={text}: no videos ({' '.join(EXTENSIONS)}) under this folder")
        return [(str(p.resolve()), "file", _safe(p.stem), _safe(str(Path(rel).with_suffix(""))))
                for rel, p in videos]
    if path.is_file() and path.suffix.lower() == ".txt":
        if base is not None:
            raise UserError(f"{where}={text}: a list file inside a list file; list videos, "
                            "folders, URLs or cameras")
        items = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                items += _expand(line, f"{path} line {number}", path.parent)
        if not items:
            raise UserError(f"{where}={text}: the list names no video")
        return items
    if path.is_file():
        return [(str(path.resolve()), "file", _safe(path.stem), _safe(path.stem))]
    raise UserError(f"{where}={text}: no such file or folder; {_EXPECTED}")


def parse_sources(source) -> list[Source]:
    """The sources named by ``source`` (one item or a list; see the module doc), in order, with
    unique names: a file's stem, its path in its folder when stems collide, then ``-2``, ``-3``.
    A missing path, an empty folder or list, or an unknown URL scheme raises :class:`UserError`."""
    found = [item for spec in _as_list(source) for item in _expand(spec)]
    if not found:
        raise UserError(f"source=[]: no source given; {_EXPECTED}")
    shorts = [short for _, _, short, _ in found]
    names, taken = [], set()
    for spec, kind, short, long in found:
        name = short if shorts.count(short) == 1 else long
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}-{n}"
        taken.add(unique)
        names.append(Source(spec, kind, unique))
    return names


@dataclass
class StreamClip:
    """One prepared clip of a source: its ``index`` among the source's clips (dropped ones
    count, so gaps show), first frame ``start_frame``, ``time_s`` of its last frame (see the
    module doc), ``arrived`` (``time.perf_counter()`` when its 16th frame was read), the network
    ``inputs`` (:meth:`ClipPreparer.prepare`, with ``"movement"`` when computed) and its RGB
    ``frames`` (16, H, W, 3) uint8 for snapshots."""

    source: Source
    index: int
    start_frame: int
    time_s: float
    arrived: float
    inputs: dict
    frames: np.ndarray


class _Slots:
    """A bounded FIFO between two threads. ``put`` drops the oldest item when full
    (``drop=True``, returns 1) or waits for room; ``finish`` = no more items (``get`` drains
    them, then gives None); ``close`` = discard everything and stop waiting."""

    def __init__(self, capacity: int, drop: bool):
        self.capacity, self.drop = int(capacity), bool(drop)
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._finished = self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def done(self) -> bool:
        return self._closed or (self._finished and not self._items)

    def put(self, item) -> int:
        with self._cond:
            while not self.drop and len(self._items) >= self.capacity and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return 0
            dropped = 0
            if len(self._items) >= self.capacity:
                self._items.popleft()
                dropped = 1
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float = 0.0):
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._items and not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if self._closed or not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


@dataclass
class _RawClip:
    index: int
    start_frame: int
    time_s: float
    arrived: float
    frames: np.ndarray
    epoch: int  # reconnections before it: a new epoch starts the preparer afresh


class ClipSource:
    """Reads one :class:`Source` into prepared clips on its own threads (policy: module doc).

    ``start()`` starts reading (:func:`vad.detection.streaming.run_stream` calls it);
    ``get(timeout)`` gives the next :class:`StreamClip` or None (none ready yet, or ``finished``);
    ``stop()`` ends it and joins its threads. Counters: ``frames_in``, ``fps_in`` (over the last
    32 frames), ``clips_read``, ``clips_dropped``, ``reconnects``; ``fps`` is the header's.
    ``error`` (None or a message naming the source and the fix) and ``end_reason`` say why it
    ended; ``ended`` = the reader stopped, ``finished`` = ended and every clip taken, ``closed`` =
    ``stop()`` was called. ``wake`` is set whenever a clip is queued or the source ends.
    The source owns ``preparer`` and closes it when it ends."""

    def __init__(self, source, preparer, size=None, realtime: bool = False, queue_clips: int = 4,
                 reconnect_retries: int = 5, reconnect_delay_s: float = 1.0):
        if not isinstance(source, Source):
            found = parse_sources(source)
            if len(found) != 1:
                raise UserError(f"source={source!r} names {len(found)} videos: a ClipSource reads one")
            source = found[0]
        if int(queue_clips) < 1:
            raise UserError(f"queue_clips={queue_clips}: expected an integer >= 1")
        if int(reconnect_retries) < 0 or float(reconnect_delay_s) < 0:
            raise UserError(f"reconnect_retries={reconnect_retries} reconnect_delay_s="
                            f"{reconnect_delay_s}: expected values >= 0")
        self.source, self.preparer = source, preparer
        self.size = tuple(int(v) for v in size) if size else None
        self.realtime = bool(realtime)
        self.live = source.kind != "file" or self.realtime
        self.queue_clips = int(queue_clips)
        self.reconnect_retries, self.reconnect_delay_s = int(reconnect_retries), float(reconnect_delay_s)
        self.frames_in = self.clips_read = self.clips_dropped = self.reconnects = 0
        self.fps = 0.0
        self.error: str | None = None
        self.end_reason: str | None = None
        self.wake = threading.Event()
        self._raw = _Slots(_RAW_CLIPS, drop=self.live)
        self._ready = _Slots(self.queue_clips, drop=self.live)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._times: deque = deque(maxlen=32)
        self._threads: list[threading.Thread] = []
        self.closed = False

    # ------------------------------------------------------------------ consumer side
    def start(self) -> "ClipSource":
        """Start the reader and preparer threads (once; later calls do nothing)."""
        if not self._threads:
            name = self.source.name
            self._threads = [threading.Thread(target=self._read, name=f"vad-source-{name}", daemon=True),
                             threading.Thread(target=self._prepare, name=f"vad-prepare-{name}", daemon=True)]
            for thread in self._threads:
                thread.start()
        return self

    def get(self, timeout: float = 0.0) -> StreamClip | None:
        return self._ready.get(timeout)

    @property
    def queued(self) -> int:
        """Prepared clips waiting (never more than ``queue_clips``)."""
        return len(self._ready)

    @property
    def ended(self) -> bool:
        return bool(self._threads) and not self._threads[0].is_alive()

    @property
    def finished(self) -> bool:
        return bool(self._threads) and self._ready.done and not self._threads[1].is_alive()

    @property
    def fps_in(self) -> float:
        with self._lock:
            times = list(self._times)
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def stop(self, timeout: float = NETWORK_TIMEOUT_S + 5) -> None:
        """End reading now, discard queued clips and join the threads."""
        self.closed = True
        self._stop.set()
        self._raw.close()
        self._ready.close()
        for thread in self._threads:
            thread.join(timeout)
        if self.end_reason is None:
            self.end_reason = "stopped"

    def stats(self) -> dict:
        return {"source": self.source.label, "kind": self.source.kind, "frames_in": self.frames_in,
                "fps_in": round(self.fps_in, 2), "clips_read": self.clips_read,
                "clips_dropped": self.clips_dropped, "reconnects": self.reconnects,
                "error": self.error, "end_reason": self.end_reason}

    # ------------------------------------------------------------------ reader thread
    def _capture(self) -> cv2.VideoCapture:
        kind, spec = self.source.kind, self.source.spec
        if kind == "camera":
            return cv2.VideoCapture(int(spec))
        if kind == "url":
            ms = int(NETWORK_TIMEOUT_S * 1000)
            return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                           cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        return cv2.VideoCapture(spec)

    def _open(self) -> cv2.VideoCapture | None:
        """The first opening: a URL gets ``reconnect_retries`` more attempts; else sets ``error``."""
        label = self.source.label
        attempts = 1 + self.reconnect_retries if self.source.kind == "url" else 1
        for attempt in range(1, attempts + 1):
            capture = self._capture()
            if capture.isOpened():
                return capture
            capture.release()
            if attempt < attempts:
                log.warning("%s: cannot open it (attempt %d/%d); retrying in %.1f s", label,
                            attempt, attempts, self.reconnect_delay_s)
                if self._stop.wait(self.reconnect_delay_s):
                    return None
        if self.source.kind == "camera":
            self.error = (f"camera {self.source.spec} cannot be opened (no such device?): check the "
                          "index (ls /dev/video*) or give a video file or a stream URL")
        elif self.source.kind == "url":
            self.error = (f"cannot open {label} after {attempts} attempts: check the address and "
                          "that the camera or server is up and reachable from here")
        else:
            self.error = (f"{label}: unreadable (OpenCV cannot open it as a video): give a video "
                          "file (.mp4 .avi .mkv .mov .mpg)")
        return None

    def _reopen(self) -> cv2.VideoCapture | None:
        """A live stream stopped: up to ``reconnect_retries`` reopenings; None when they fail."""
        label = self.source.label
        for attempt in range(1, self.reconnect_retries + 1):
            log.warning("%s: stream stopped after %d frames; reconnecting in %.1f s (attempt %d/%d)",
                        label, self.frames_in, self.reconnect_delay_s, attempt, self.reconnect_retries)
            if self._stop.wait(self.reconnect_delay_s):
                return None
            capture = self._capture()
            if capture.isOpened():
                self.reconnects += 1
                log.warning("%s: reconnected (attempt %d/%d)", label, attempt, self.reconnect_retries)
                return capture
            capture.release()
        self.end_reason = (f"{label} stopped after {self.frames_in} frames and could not be reopened "
                           f"after {self.reconnect_retries} attempts")
        log.warning("%s", self.end_reason)
        return None

    def _read(self) -> None:
        from vad.video.decode import to_rgb

        label = self.source.label
        try:
            capture = self._open()
            if capture is None:
                return
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = fps
            if self.source.kind == "file" and not 0 < fps <= 1000:
                log.warning("%s: the header gives fps=%s; timing it at %.0f fps", label, fps, DEFAULT_FPS)
                fps = DEFAULT_FPS
            opened = time.perf_counter()
            clip, filled, start_frame = None, 0, 0
            while not self._stop.is_set():
                ok, frame = capture.read()
                if not ok or frame is None:
                    capture.release()
                    capture = None if self.source.kind == "file" else self._reopen()
                    if capture is None:
                        break
                    clip, filled = None, 0  # the partial clip spans the break: dropped
                    continue
                now = time.perf_counter()
                if self.source.kind == "file":
                    time_s = self.frames_in / fps
                    if self.realtime:
                        if self._stop.wait(max(0.0, opened + time_s - now)):
                            break
                        now = time.perf_counter()
                else:
                    time_s = now - opened
                rgb = to_rgb(frame, self.size)
                if clip is None or rgb.shape != clip.shape[1:]:
                    if clip is not None and self.source.kind == "file":
                        raise ValueError(f"the frame size changes from {clip.shape[1:3]} to {rgb.shape[:2]}")
                    clip, filled = np.empty((CLIP_FRAMES, *rgb.shape), np.uint8), 0
                if filled == 0:
                    start_frame = self.frames_in
                clip[filled] = rgb
                filled += 1
                with self._lock:
                    self.frames_in += 1
                    self._times.append(now)
                if filled == CLIP_FRAMES:
                    raw = _RawClip(self.clips_read, start_frame, time_s, time.perf_counter(), clip,
                                   self.reconnects)
                    self.clips_read += 1
                    self._count_dropped(self._raw.put(raw))
                    clip, filled = None, 0
            if capture is not None:
                capture.release()
            if self.source.kind == "file" and self.error is None and not self._stop.is_set():
                if self.frames_in == 0:
                    self.error = f"{label}: empty (no decodable frame): give a video with frames"
                elif self.clips_read == 0:
                    self.error = (f"{label}: too short ({self.frames_in} frames < {CLIP_FRAMES}): a "
                                  f"detector scores clips of {CLIP_FRAMES} frames")
                else:
                    self.end_reason = "end of file"
        except Exception as exc:  # noqa: BLE001 - reported as the source's error
            self.error = f"{label}: {exc}"
        finally:
            if self.end_reason is None:
                self.end_reason = self.error or ("stopped" if self._stop.is_set() else "ended")
            self._raw.finish()

    def _count_dropped(self, dropped: int) -> None:
        if dropped:
            with self._lock:
                self.clips_dropped += dropped

    # ------------------------------------------------------------------ preparer thread
    def _prepare(self) -> None:
        last = None
        try:
            while not self._raw.done:
                raw = self._raw.get(timeout=0.5)
                if raw is None:
                    continue
                if last is not None and (raw.index != last.index + 1 or raw.epoch != last.epoch):
                    self.preparer.reset()
                last = raw
                inputs = self.preparer.prepare(raw.frames)
                clip = StreamClip(self.source, raw.index, raw.start_frame, raw.time_s, raw.arrived,
                                  inputs, raw.frames)
                self._count_dropped(self._ready.put(clip))
                self.wake.set()
        except Exception as exc:  # noqa: BLE001 - reported as the source's error
            self.error = f"{self.source.label}: cannot prepare its clips ({exc})"
            self._stop.set()
            self._raw.close()
        finally:
            self.preparer.close()
            self._ready.finish()
            self.wake.set()


__all__ = ["URL_SCHEMES", "ClipSource", "Source", "StreamClip", "parse_sources"]
