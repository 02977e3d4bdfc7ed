"""A real HTTP server on 127.0.0.1 for the download tests (no mocks)."""
import http.server
import threading


class Cut:
    """A response announcing ``declared`` bytes that hangs up after ``body``."""

    def __init__(self, body, declared):
        self.body, self.declared = body, declared


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 serving ``routes``.

    ``routes`` maps a path (``/dir/name``) to bytes (sent with status 200),
    a :class:`Cut`, or an int (that HTTP error status); other paths get 404.
    ``requests`` lists the paths asked for, in order.
    """

    def __init__(self):
        self.routes = {}
        self.requests = []
        routes, requests = self.routes, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                body = routes.get(self.path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                if isinstance(body, Cut):
                    body, declared = body.body, body.declared
                else:
                    declared = len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(body)
                # HTTP/1.0: the connection closes here, cutting off a Cut.

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def serve(self, path, body):
        """Serve ``body`` at ``/path``; return its URL."""
        self.routes["/" + path] = body
        return self.url(path)

    def serve_idx(self, folder, files):
        """Serve ``{name: bytes}`` under ``/folder/``; return the base URL."""
        for name, blob in files.items():
            self.serve(f"{folder}/{name}", blob)
        return self.url(folder + "/")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
