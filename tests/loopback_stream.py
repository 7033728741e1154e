"""A loopback-only MJPEG-over-HTTP camera for tests: serves `frames` JPEG frames as
multipart/x-mixed-replace (what IP cameras send), then drops the connection mid-stream."""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np


def _handler(frames: int, size: tuple[int, int], interval_s: float) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            rng = np.random.default_rng(0)
            try:
                for _ in range(frames):
                    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                    jpg = cv2.imencode(".jpg", img)[1].tobytes()
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                    time.sleep(interval_s)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading
            # no closing boundary: the camera "drops" here

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def mjpeg_stream(frames: int = 12, size: tuple[int, int] = (96, 128),
                 interval_s: float = 0.005) -> Iterator[str]:
    """The URL of a running loopback MJPEG stream."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(frames, size, interval_s))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/cam.mjpg"
