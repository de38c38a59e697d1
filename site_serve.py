"""`build_site.py --serve`: a localhost server for the built site, with the MIME types Pyodide needs."""

from __future__ import annotations

import functools
import http.server
import os
import sys
from pathlib import Path

from site_folder import BuildError, log

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/octet-stream",
    ".npz": "application/octet-stream",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}



class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types Pyodide needs; .gz is served raw, not as Content-Encoding."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        # Revalidate on every load so a rebuilt wheel or page is picked up at once.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if os.environ.get("PYCNN_SERVE_QUIET") != "1":
            super().log_message(format, *args)


class SiteServer(http.server.ThreadingHTTPServer):
    """A browser that drops a download (a reload while the page loads) is not an error."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(out: Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """A threading HTTP server serving `out`; port 0 picks a free port (see server.server_address)."""
    handler = functools.partial(SiteHandler, directory=str(Path(out).resolve()))
    return SiteServer((host, port), handler)


def serve(out: Path, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve `out` on http://host:port/ until interrupted."""
    try:
        server = make_server(out, port, host)
    except OSError as e:
        raise BuildError(f"cannot listen on {host}:{port} ({e.strerror}): pick another --port") from None
    with server:
        log(f"serving {out} at http://{host}:{server.server_address[1]}/  (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("stopped")
