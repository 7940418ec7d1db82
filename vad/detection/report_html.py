"""report.html: one self-contained page for a vad.detect run over files, to open in any browser
straight from the run folder (no server, no network: CSS, script and timelines are inline; each
<video> points at its annotated.mp4 by a path relative to report.html, so the folder can be moved
or copied as a whole).

Per video: the annotated video, its timeline (click to seek; a playhead follows the video), the
events (click a row to seek to its start; the row of the event playing is highlighted), the
ground truth and metrics when known; on top, the run's settings and a summary table."""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from urllib.parse import quote

from vad.detection.outputs import TIMELINE_LEFT, TIMELINE_RIGHT
from vad.io import write_text

METRIC_NAMES = {"frame_auc": "frame AUC", "precision": "event precision", "recall": "event recall"}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-top: 1px solid #ccc; padding-top: 1em; }
table { border-collapse: collapse; margin: .5em 0; } th, td { padding: 3px 10px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
table.events tbody tr { cursor: pointer; } table.events tbody tr:hover td { background: #e8f0fe; }
table.events tbody tr.active td { background: #fde2e2; }
video { display: block; width: 560px; max-width: 100%; background: #000; }
.timeline { position: relative; display: inline-block; max-width: 100%; }
.timeline img { display: block; max-width: 100%; cursor: crosshair; }
.playhead { position: absolute; top: 0; bottom: 0; width: 2px; background: #d00; pointer-events: none; }
.muted { color: #777; } .error { color: #b00; }
"""

SCRIPT = """
document.querySelectorAll('table.events tbody tr').forEach(function (row) {
  row.addEventListener('click', function () {
    var video = document.getElementById(row.dataset.video);
    video.currentTime = parseFloat(row.dataset.start);
    var playing = video.play();
    if (playing) playing.catch(function () {});
  });
});
document.querySelectorAll('.timeline').forEach(function (box) {
  var video = document.getElementById(box.dataset.video);
  if (!video) return;
  var img = box.querySelector('img'), head = box.querySelector('.playhead');
  var left = parseFloat(box.dataset.left), right = parseFloat(box.dataset.right);
  var duration = parseFloat(box.dataset.duration);
  var rows = document.querySelectorAll('tr[data-video="' + box.dataset.video + '"]');
  img.addEventListener('click', function (e) {
    var r = img.getBoundingClientRect();
    var f = ((e.clientX - r.left) / r.width - left) / (right - left);
    if (f >= 0 && f <= 1) video.currentTime = f * duration;
  });
  video.addEventListener('timeupdate', function () {
    var t = video.currentTime;
    head.style.left = (100 * (left + (right - left) * Math.min(1, t / duration))) + '%';
    rows.forEach(function (row) {
      row.classList.toggle('active', t >= parseFloat(row.dataset.start) && t < parseFloat(row.dataset.end));
    });
  });
});
"""


EVENT_FIELDS = ("start_frame", "end_frame", "start_s", "end_s", "duration_s", "peak", "mean")


def _event(event) -> dict:
    """The fields the table shows, from an Event or its ``as_dict()``."""
    record = event if isinstance(event, dict) else event.as_dict()
    return {k: record[k] for k in EVENT_FIELDS}


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _seconds(value: float) -> str:
    return f"{int(value // 60)}:{value % 60:06.3f}"


def _src(video_path, folder: Path) -> str:
    """The <video> src: ``video_path`` relative to report.html's folder, URL-quoted."""
    relative = os.path.relpath(Path(video_path).resolve(), folder.resolve())
    return quote(Path(relative).as_posix())


def _inline_png(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _summary_table(videos: list[dict]) -> str:
    metrics = [k for k in METRIC_NAMES if any(k in (v.get("metrics") or {}) for v in videos)]
    head = ["video", "duration", "events", "max score", "speed (x real time)"] + [METRIC_NAMES[k] for k in metrics]
    rows = []
    for k, video in enumerate(videos):
        cells = [f'<a href="#video-{k}">{html.escape(video["name"])}</a>',
                 _seconds(video["duration_s"]), str(len(video.get("events") or [])),
                 _number(video.get("max_score")), _number(video.get("speed"), 1)]
        cells += [_number((video.get("metrics") or {}).get(m)) for m in metrics]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table class="summary"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _settings_table(summary: dict) -> str:
    rows = []
    for key, value in summary.items():
        if key in ("title", "skipped"):
            continue
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((key, value))
    if not rows:
        return ""
    return ('<table class="settings"><tbody>' + "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_number(v, 4)}</td></tr>" for k, v in rows) + "</tbody></table>")


def _skipped(summary: dict) -> str:
    skipped = summary.get("skipped") or []
    if not skipped:
        return ""
    items = "".join(f"<li>{html.escape(str(s.get('source', s.get('name', ''))))}: "
                    f"<span class=error>{html.escape(str(s.get('error', '')))}</span></li>" for s in skipped)
    return f"<h2>Skipped ({len(skipped)})</h2><ul>{items}</ul>"


def _events_table(video_id: str, events: list[dict], threshold) -> str:
    if not events:
        return f'<p class="muted">No events (threshold {_number(threshold)}).</p>'
    head = ["#", "start", "end", "duration (s)", "peak", "mean", "frames"]
    rows = []
    for k, e in enumerate(events, 1):
        cells = [str(k), _seconds(e["start_s"]), _seconds(e["end_s"]), f'{e["duration_s"]:.2f}',
                 _number(e["peak"]), _number(e["mean"]), f'{e["start_frame"]}–{e["end_frame"]}']
        rows.append(f'<tr data-video="{video_id}" data-start="{e["start_s"]:.6f}" data-end="{e["end_s"]:.6f}">'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table class="events"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _video_section(k: int, video: dict, folder: Path) -> str:
    video_id = f"player-{k}"
    events = [_event(e) for e in video.get("events") or []]
    parts = [f'<h2 id="video-{k}">{html.escape(video["name"])}</h2>']
    if video.get("source"):
        parts.append(f'<p class="muted">{html.escape(str(video["source"]))}</p>')
    if video.get("video"):
        parts.append(f'<video id="{video_id}" controls preload="auto" muted playsinline '
                     f'src="{_src(video["video"], folder)}"></video>')
    if video.get("timeline"):
        parts.append(f'<div class="timeline" data-video="{video_id}" data-left="{TIMELINE_LEFT}" '
                     f'data-right="{TIMELINE_RIGHT}" data-duration="{video["duration_s"]:.6f}">'
                     f'<img alt="score timeline of {html.escape(video["name"])}" src="{_inline_png(video["timeline"])}">'
                     f'<div class="playhead" style="left: {100 * TIMELINE_LEFT:.2f}%"></div></div>')
    parts.append(_events_table(video_id, events, video.get("threshold")))
    fps = video.get("fps")
    if video.get("spans") and fps:
        spans = ", ".join(f"{_seconds((a - 1) / fps)}–{_seconds(b / fps)} (frames {a}–{b})" for a, b in video["spans"])
        parts.append(f"<p>Ground truth: {spans}</p>")
    if video.get("metrics"):
        parts.append("<p>" + ", ".join(f"{METRIC_NAMES.get(m, html.escape(m))} {_number(v)}"
                                       for m, v in video["metrics"].items()) + "</p>")
    return "\n".join(parts)


def write_report_html(path, videos: list[dict], summary: dict) -> None:
    """Write the run's report.html.

    ``videos``: one dict per scored video with ``name``, ``duration_s``, ``fps``, ``events``
    (Event objects or their ``as_dict()``), ``max_score``, ``speed`` (video seconds per wall
    second), ``threshold``, ``video`` (path of its annotated.mp4) and ``timeline`` (path of its
    timeline.png, inlined); optional ``source`` (the input path), ``spans`` (ground truth,
    1-based inclusive frames) and ``metrics`` ({"frame_auc", "precision", "recall"}: numbers).
    ``summary``: the run's settings and overall metrics, shown as a table; ``title`` heads the
    page and ``skipped`` ([{"source", "error"}]) lists the inputs that could not be scored."""
    path = Path(path)
    folder = path.parent
    title = summary.get("title") or "vad.detect report"
    body = [f"<h1>{html.escape(title)}</h1>", _settings_table(summary),
            _summary_table(videos) if videos else '<p class="muted">No video was scored.</p>',
            _skipped(summary)]
    body += [_video_section(k, video, folder) for k, video in enumerate(videos)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(b for b in body if b) + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
    write_text(path, page.encode("ascii", "xmlcharrefreplace").decode("ascii"))  # any locale, any name
