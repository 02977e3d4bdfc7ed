"""The progress line: elapsed time and ETA, redrawn in place on a terminal."""
import math
import sys
import timeit

__all__ = ["ProgressLine"]


def _format_seconds(seconds):
    """``3725`` -> ``'1h02m05s'``; short forms below an hour / a minute."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressLine:
    """A one-line progress display redrawn with ``'\\r'`` on stderr.

    Use :meth:`for_terminal`, which returns ``None`` unless stdout is a
    terminal, so logs and pipes never see it.

    Parameters
    ----------
    stream : file object
        Where to draw (stderr).
    interval : float
        Minimum seconds between redraws.
    """

    def __init__(self, stream, interval=0.5):
        self.stream = stream
        self.interval = interval
        self._width = 0
        self._last = -math.inf
        self._start = None

    @classmethod
    def for_terminal(cls):
        """A progress line on stderr if stdout is a terminal, else ``None``."""
        try:
            is_tty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            is_tty = False
        return cls(sys.stderr) if is_tty else None

    def start(self, done):
        """Remember the time and the minibatch count the ETA is measured from."""
        self._start = (timeit.default_timer(), done)

    def update(self, epoch, n_epochs, minibatch, n_batches, done, limit, elapsed):
        """Redraw (at most every ``interval`` seconds).

        Parameters
        ----------
        epoch, n_epochs : int
            Current epoch and the maximum.
        minibatch, n_batches : int
            Minibatches done in this epoch, and per epoch.
        done : int
            Minibatches trained in the whole run.
        limit : int
            Where the run ends at the latest with the current patience.
        elapsed : float
            Training seconds so far (all sessions).
        """
        now = timeit.default_timer()
        if now - self._last < self.interval or self._start is None:
            return
        self._last = now
        t0, done0 = self._start
        rate = (now - t0) / max(done - done0, 1)
        text = (
            f"epoch {epoch}/{n_epochs}, minibatch {minibatch}/{n_batches}, "
            f"elapsed {_format_seconds(elapsed)}, epoch ETA "
            f"{_format_seconds((n_batches - minibatch) * rate)}, run ETA "
            f"{_format_seconds(max(limit - done, 0) * rate)} (current patience)"
        )
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()

    def clear(self):
        """Erase the line (before anything else is printed)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
