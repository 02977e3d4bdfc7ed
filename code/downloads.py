"""Downloads over HTTP(S): timeouts, one retry, a progress line, size caps.

Used by :mod:`mnist_io` (MNIST, from several sources, checked against pinned
checksums) and by ``filter_demo.py`` (the 3wolfmoon photograph). A failed
download raises :class:`DownloadFailed`, which says whether it may pass
(``transient``: a timeout, a dropped connection, a server error) and is
worth the one retry :func:`with_retry` gives it. :func:`download` puts it
all together for one file, written atomically.
"""
import http.client
import socket
import time
import urllib.error
import urllib.request

from atomic_file import atomic_write

__all__ = ["DownloadFailed", "Progress", "download", "fetch", "network_failure",
           "with_retry"]

#: Seconds a socket may wait before a download counts as failed.
DOWNLOAD_TIMEOUT = 30.0

#: Seconds before the one retry of a download that failed in a way that may pass.
RETRY_DELAY = 1.0

#: Bytes read at a time.
CHUNK = 1 << 16

USER_AGENT = "lenet-pytensor/1.0"


class DownloadFailed(Exception):
    """A download did not deliver (the caller may try another source).

    ``transient`` failures (timeouts, refused or dropped connections, cut-off
    transfers, server errors) are worth one retry; the others (404, bad
    checksum, not MNIST) are not.
    """

    def __init__(self, url, reason, transient=False):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.transient = transient


def network_failure(url, exc, timeout, done=0):
    """Describe a failed request (``exc`` an exception or urllib's reason)."""
    if isinstance(exc, TimeoutError):
        reason = f"timed out after {timeout:g} s"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host name ({exc.strerror or exc})"
    elif isinstance(exc, str):
        reason = exc
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror  # e.g. "Network is unreachable"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    if done:
        reason = f"cut off after {done:,} bytes ({reason})"
    transient = isinstance(exc, (TimeoutError, ConnectionError, http.client.IncompleteRead))
    return DownloadFailed(url, reason, transient)


class Progress:
    """Report one download on ``stream``.

    On a terminal one line, redrawn in place with ``'\\r'``, shows the size
    and speed; anywhere else (a log file, a pipe) there is only a start line
    and an end line, so logs stay readable.
    """

    def __init__(self, stream, url):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.drawn = None  # when the line was last redrawn
        self.width = 0
        print(f"Downloading data from {url}", file=stream, flush=True)

    def _line(self, done, total):
        elapsed = max(time.monotonic() - self.start, 1e-6)
        size = f"{done / 1e6:.1f} MB"
        if total:
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB ({100 * done // total}%)"
        return f"  {size}, {done / 1e6 / elapsed:.1f} MB/s"

    def update(self, done, total, final=False):
        """Redraw the line (on a terminal, at most ten times a second)."""
        if not self.tty:
            return
        now = time.monotonic()
        if not final and self.drawn is not None and now - self.drawn < 0.1:
            return
        self.drawn = now
        line = self._line(done, total)
        # pad, so a shorter line wipes out the end of the longer one before
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def finish(self, done, total):
        """End the report of a complete download."""
        if self.tty:
            self.update(done, total, final=True)
            self.stream.write("\n")
            self.stream.flush()
        else:
            elapsed = max(time.monotonic() - self.start, 1e-6)
            print(f"  {done / 1e6:.1f} MB in {elapsed:.1f} s, "
                  f"{done / 1e6 / elapsed:.1f} MB/s", file=self.stream, flush=True)

    def abort(self):
        """End a redrawn line that will not be completed."""
        if self.tty and self.drawn is not None:
            self.stream.write("\n")
            self.stream.flush()


def fetch(url, out, timeout, stream, max_bytes, what="the file"):
    """Copy the body at ``url`` into the binary file ``out``.

    A body over ``max_bytes`` is refused as too large for ``what``; progress
    is reported on ``stream`` (:class:`Progress`).

    Returns
    -------
    int
        The number of bytes written.

    Raises
    ------
    DownloadFailed
        If the request or the transfer fails.  An ``OSError`` from writing
        ``out`` is left as it is: it is a local problem, not the source's.
    """
    progress = Progress(stream, url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        # 5xx may be a passing overload; 4xx (404, 403 ...) will not change.
        raise DownloadFailed(url, f"HTTP {exc.code} {exc.reason}",
                            transient=exc.code >= 500) from exc
    except urllib.error.URLError as exc:
        raise network_failure(url, exc.reason, timeout) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError: a timeout while waiting for the reply; ValueError: a
        # malformed URL.
        raise network_failure(url, exc, timeout) from exc
    done = 0
    try:
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadFailed(url, f"too large for {what} ({total:,} bytes)")
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise network_failure(url, exc, timeout, done) from exc
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if done > max_bytes:
                    raise DownloadFailed(url, f"too large for {what} (over {done:,} bytes)")
                progress.update(done, total)
            # http.client ends a body cut short without an error: compare.
            if total is not None and done < total:
                raise DownloadFailed(
                    url, f"cut off after {done:,} of {total:,} bytes", transient=True
                )
    except BaseException:
        progress.abort()
        raise
    progress.finish(done, total)
    return done


def with_retry(attempt, stream):
    """Call ``attempt()``; once more (after :data:`RETRY_DELAY`) if it failed
    in a way that may pass."""
    try:
        return attempt()
    except DownloadFailed as exc:
        if not exc.transient:
            raise
        first = exc
        print(f"  {exc.reason}; trying once more", file=stream, flush=True)
    time.sleep(RETRY_DELAY)
    try:
        return attempt()
    except DownloadFailed as exc:
        if exc.reason == first.reason:
            exc.reason += ", twice"
        else:
            exc.reason = f"{first.reason}, then {exc.reason}"
        raise


def download(url, path, check=None, max_bytes=1 << 27, what="the file", timeout=None,
             stream=None):
    """Download ``url`` into ``path`` atomically, with one retry.

    Parameters
    ----------
    url : str
        What to fetch.
    path : str
        Where to put it; a failed or refused download leaves any file there
        as it was (see :func:`atomic_file.atomic_write`).
    check : callable, optional
        Called with the temporary file's path before it replaces ``path``;
        raising refuses the download.
    max_bytes : int
        Larger bodies are refused.
    what : str
        The file, for messages ("MNIST", "the photograph").
    timeout : float, optional
        Socket timeout; default :data:`DOWNLOAD_TIMEOUT`.
    stream : file object, optional
        Where progress goes (default ``sys.stderr``).

    Raises
    ------
    DownloadFailed
        If the download fails (twice, when the failure may pass).
    """
    import sys

    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    stream = sys.stderr if stream is None else stream
    return with_retry(
        lambda: atomic_write(path, lambda out: fetch(url, out, timeout, stream, max_bytes, what),
                             check),
        stream,
    )
