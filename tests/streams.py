"""A real MJPEG-over-HTTP video stream on 127.0.0.1 for the tests (a helper module: ``from
tests.streams import MJPEGServer``), the way many IP cameras serve video: one HTTP response of
``multipart/x-mixed-replace`` parts, one JPEG per frame, read by OpenCV's FFmpeg backend.

``MJPEGServer(frames, fps)`` serves ``frames`` ((T, H, W, 3) uint8 RGB, e.g. from
``tests.videos``) in order, paced at ``fps``, to each client from where the last one stopped
(one camera, one timeline). ``outages=[(frame, down_s), ...]``: on reaching that frame the
connection is closed and the server stops listening for ``down_s`` seconds (``None``: for good),
then listens again on the same port. After the last frame the server goes down for good, unless
``loop=True`` (then it starts over).
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "vadframe"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class MJPEGServer:
    def __init__(self, frames: np.ndarray, fps: float = 30.0, outages=(), loop: bool = False,
                 quality: int = 90):
        frames = np.asarray(frames)
        self.jpegs = []
        for frame in frames:
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            assert ok
            self.jpegs.append(jpg.tobytes())
        self.fps, self.loop = float(fps), bool(loop)
        self.outages = {int(at): down for at, down in outages}
        self.sent = 0          # frames sent over all connections
        self.connections = 0   # clients served
        self._cursor = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._up = threading.Event()
        self._timers: list[threading.Timer] = []
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    @property
    def up(self) -> bool:
        return self._up.is_set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "MJPEGServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                owner._serve(self)

            def log_message(self, *args):
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._up.set()
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="mjpeg-server").start()
        return self

    def down(self, seconds: float | None = None) -> None:
        """Stop listening (open connections end at their next frame); come back after ``seconds``."""
        if not self._up.is_set():
            return
        self._up.clear()
        server, self._server = self._server, None
        threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()
        if seconds is not None:
            timer = threading.Timer(seconds, self._come_back)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _come_back(self) -> None:
        deadline = time.monotonic() + 5
        while True:  # the old socket may take a moment to close
            try:
                self.start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.down(None)

    def __enter__(self) -> "MJPEGServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ one client
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        self.connections += 1
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        period = 1.0 / self.fps
        next_time = time.perf_counter()
        while self._up.is_set():
            with self._lock:
                if self._cursor >= len(self.jpegs):
                    if not self.loop:
                        self.down(None)
                        return
                    self._cursor = 0
                if self._cursor in self.outages and self.sent > 0:
                    self.down(self.outages.pop(self._cursor))
                    return
                jpg = self.jpegs[self._cursor]
                self._cursor += 1
            try:
                handler.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    f"{len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                handler.wfile.flush()
            except OSError:  # the client went away
                return
            self.sent += 1
            next_time += period
            time.sleep(max(0.0, next_time - time.perf_counter()))
