"""report.html: self-contained, and in a real headless Chromium its video loads and plays, its
timeline decodes, its event rows are there and a click on a row seeks the video."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from tests.videos import moving_square, write_video
from vad.detection.annotate import annotate_video
from vad.detection.events import Event as Ev
from vad.detection.outputs import timeline_png
from vad.detection.report_html import write_report_html

FPS, FRAMES = 30.0, 150
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_S = 30  # per DevTools answer: a hung browser fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run folder as vad.detect writes it: two videos (one in a folder whose name needs quoting),
    each with annotated.mp4 and timeline.png, and report.html on top."""
    root = tmp_path_factory.mktemp("run")
    scores = (0.5 + 0.45 * np.sin(np.arange(FRAMES) / 12)).astype(np.float32)
    events = [Ev(30, 60, FPS, 0.95, 40, 0.8), Ev(105, 135, FPS, 0.93, 120, 0.78)]
    videos = []
    for k, name in enumerate(["plain", "vidéo #2 été"]):
        src = write_video(root / f"src{k}.avi", moving_square(FRAMES, 120, 160, dx=2, seed=k), fps=FPS)
        folder = root / name
        annotate_video(src, folder / "annotated.mp4", scores, events[: k + 1], FPS, threshold=0.7)
        timeline_png(folder / "timeline.png", scores, FPS, events[: k + 1], 0.7, spans=[(31, 60)], title=name)
        videos.append({"name": name, "source": str(src), "video": folder / "annotated.mp4",
                       "timeline": folder / "timeline.png", "events": events[: k + 1], "fps": FPS,
                       "frames": FRAMES, "duration_s": FRAMES / FPS, "max_score": float(scores.max()),
                       "speed": 12.5 + k, "threshold": 0.7, "spans": [(31, 60)],
                       "metrics": {"frame_auc": 0.91 - k / 10, "precision": 1.0, "recall": 0.5 * (k + 1)}})
    videos[1]["events"] = [e.as_dict() for e in videos[1]["events"]]  # as events.json holds them
    path = root / "report.html"
    write_report_html(path, videos, {"title": "detect run", "checkpoint": "run/checkpoints/best.ckpt",
                                     "mode": "video", "threshold": 0.7,
                                     "skipped": [{"source": "bad.avi", "error": "unreadable"}]})
    return path, videos


def test_report_is_self_contained(report):
    path, videos = report
    text = path.read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(re.match(r"data:|#|[^:/]+/", link) for link in links), links  # inline, anchors, relative
    outside_data = re.sub(r'"data:[^"]*"', "", text)
    assert "://" not in outside_data and "url(" not in outside_data and "@import" not in outside_data
    assert not list(path.parent.glob(".*tmp*")), "no temp file left"
    images = re.findall(r'<img[^>]* src="data:image/png;base64,([^"]+)"', text)
    assert [base64.b64decode(i) for i in images] == [Path(v["timeline"]).read_bytes() for v in videos]
    sources = re.findall(r'<video[^>]* src="([^"]+)"', text)
    assert sources == ["plain/annotated.mp4", quote("vidéo #2 été") + "/annotated.mp4"]
    assert "%23" in sources[1] and " " not in sources[1]  # '#' and spaces would break a relative URL
    assert text.isascii()


def test_report_tables(report):
    path, videos = report
    text = path.read_text()
    starts = re.findall(r'<tr data-video="player-(\d)" data-start="([0-9.]+)" data-end="([0-9.]+)"', text)
    assert [(int(v), float(a), float(b)) for v, a, b in starts] == [
        (0, 1.0, 2.0), (1, 1.0, 2.0), (1, 3.5, 4.5)]
    summary = text.split('<table class="summary">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", summary.split("<tbody>")[1])
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows]
    assert [c[1:] for c in cells] == [["0:05.000", "1", "0.950", "12.5", "0.910", "1.000", "0.500"],
                                      ["0:05.000", "2", "0.950", "13.5", "0.810", "1.000", "1.000"]]
    assert "frame AUC" in summary and "event recall" in summary
    assert "bad.avi" in text and "unreadable" in text and "run/checkpoints/best.ckpt" in text
    assert "Ground truth: 0:01.000–0:02.000 (frames 31–60)" in text.replace("&#8211;", "–")


def _above(fd: int, low: int) -> int:
    """``fd`` moved to the lowest free number >= ``low``."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    os.close(fd)
    return moved


class DevTools:
    """The Chrome DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, messages
    separated by NUL), stdlib only."""

    def __init__(self, profile: Path):
        self.log = profile.with_name("chromium.log")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser's ends above fd 4, so that moving them onto 3 and 4 never clobbers one
        to_browser_r, from_browser_w = (_above(fd, 10) for fd in (to_browser_r, from_browser_w))
        args = [CHROMIUM, "--headless", "--remote-debugging-pipe", "--autoplay-policy=no-user-gesture-required",
                "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--mute-audio",
                f"--user-data-dir={profile}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
        # the browser expects the pipe on fds 3 and 4: bash puts them there (dash takes no fd >= 10)
        shell = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.process = subprocess.Popen(["bash", "-c", shell, "bash", *args], pass_fds=(to_browser_r, from_browser_w),
                                        stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                if not select.select([self._from_browser], [], [], TIMEOUT_S)[0]:
                    raise RuntimeError(f"chromium gave no answer to {method} in {TIMEOUT_S} s")
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe during {method}: {self.log.read_text()[-2000:]}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


PROBE = """(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const until = async (test, ms) => { const end = Date.now() + ms; while (!test() && Date.now() < end) await sleep(50); };
  const out = {};
  const video = document.getElementById('player-1');
  await until(() => video.readyState >= 2 || video.error, 10000);
  out.canPlayH264 = video.canPlayType('video/mp4; codecs="avc1.42E01E"');
  out.error = video.error ? video.error.code + ' ' + video.error.message : null;
  out.readyState = video.readyState;
  out.duration = video.duration;
  out.width = video.videoWidth;
  await video.play();
  const t0 = video.currentTime;
  await sleep(1000);
  out.advanced = video.currentTime - t0;
  video.pause();
  out.images = Array.from(document.querySelectorAll('.timeline img')).map(i => i.complete && i.naturalWidth);
  const rows = document.querySelectorAll('tr[data-video="player-1"]');
  out.rows = rows.length;
  const seeked = new Promise(r => video.addEventListener('seeked', r, {once: true}));
  rows[1].click();
  await Promise.race([seeked, sleep(5000)]);
  out.afterClick = video.currentTime;
  out.active = rows[1].classList.contains('active');
  return JSON.stringify(out);
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: .ci/run)")
def test_report_plays_in_chromium(report, tmp_path):
    path, videos = report
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url=path.as_uri())["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.send("Runtime.enable", session)
        for _ in range(200):  # wait for the load (the page is local: well under a second)
            state = browser.send("Runtime.evaluate", session, returnByValue=True,  # not the initial blank page
                                 expression="location.protocol == 'file:' && document.readyState == 'complete'")
            if state["result"]["value"]:
                break
            time.sleep(0.05)
        reply = browser.send("Runtime.evaluate", session, expression=PROBE, awaitPromise=True, returnByValue=True)
    finally:
        browser.close()
    assert "exceptionDetails" not in reply, reply
    out = json.loads(reply["result"]["value"])
    assert out["canPlayH264"] in ("probably", "maybe"), "this Chromium cannot play H.264: annotated.mp4 needs VP9"
    assert out["error"] is None and out["readyState"] >= 2, out
    assert out["duration"] == pytest.approx(FRAMES / FPS, abs=0.05)
    assert out["width"] == 160
    assert out["advanced"] > 0.2, f"the video does not play: {out}"
    assert all(w and w > 500 for w in out["images"]) and len(out["images"]) == len(videos)
    assert out["rows"] == 2
    assert out["afterClick"] == pytest.approx(videos[1]["events"][1]["start_s"], abs=0.1)
    assert out["active"], "the row of the event playing is highlighted"


def test_report_of_a_video_without_events_or_files(tmp_path):
    write_report_html(tmp_path / "report.html", [{"name": "quiet", "duration_s": 2.0, "fps": FPS, "events": [],
                                                  "max_score": 0.1, "speed": 3.0, "threshold": 0.5}], {})
    text = (tmp_path / "report.html").read_text()
    assert "No events (threshold 0.500)." in text and "<video" not in text and "<img" not in text
    write_report_html(tmp_path / "empty.html", [], {"title": "nothing"})
    assert "No video was scored." in (tmp_path / "empty.html").read_text()
