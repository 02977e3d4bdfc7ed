"""Native kernels built by a helper process while this one compiles the graph.

On a fresh install Numba's disk cache holds none of the kernels, and
building them takes most of a minute; PyTensor meanwhile compiles its own
operations for the graph, in this process, for about as long. Both used to
run one after the other on one core. Now, when the Numba dispatch of an Op
finds its kernel neither built nor in the disk cache, it asks a helper
process (``python -m pytensor_nnet.prebuild``, started on the first request)
to build the kernel into the disk cache, and goes on compiling. The
kernel's first call waits for the helper, then loads the kernel from the
cache. With one usable core, or when the helper cannot start or fails, the
kernel is built in this process, as it was before.

The helper reads requests (``module kernel dtype``) on its standard input
and answers each on its standard output (``kernel dtype built|failed``); it
ends when its input closes, after the requests it has read, so that a
kernel asked for is in the cache for the next run even if this one stopped.
Its input is closed once every request is answered: no helper stays idle
beside a long session, and a later request starts a new one.
"""
import importlib
import os
import subprocess
import sys
import threading

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_helper = None  # the helper process, once started
_helper_pid = None  # the process that started it (a forked child starts its own)
_pending = set()  # (kernel name, dtype) asked of the helper, not yet answered
_lock = threading.Lock()  # one conversation with the helper at a time
_failed = False  # a helper died before answering: build here from now on


def _start_helper():
    env = dict(os.environ)
    # the helper imports this very package, wherever it was imported from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", __name__], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def request(kernel, dtype):
    """Ask the helper to build ``kernel`` (a :class:`~pytensor_nnet.native.NativeKernel`)
    for ``dtype``; False when it cannot be asked (then build it here)."""
    global _helper, _helper_pid
    if usable_cpus() < 2:  # the helper would only take turns with this process
        return False
    if getattr(sys, "frozen", False) or _failed:  # frozen: sys.executable is not Python
        return False
    with _lock:
        if _helper_pid != os.getpid():
            _helper, _helper_pid = None, os.getpid()
            _pending.clear()
        if (kernel.name, dtype) in _pending:  # asked already, by another node
            return True
        try:
            if _helper is None:
                _helper = _start_helper()
            if _helper.poll() is None:
                _helper.stdin.write(f"{kernel.module} {kernel.name} {dtype}\n")
                _helper.stdin.flush()
                _pending.add((kernel.name, dtype))
                return True
        except OSError:
            pass
        _give_up()  # it could not start, or it died
        return False


def is_pending(kernel, dtype):
    """Whether this process's helper is building ``kernel`` for ``dtype``."""
    return (kernel.name, dtype) in _pending and _helper_pid == os.getpid()


def wait(kernel, dtype):
    """Wait until the helper has answered for ``kernel`` and ``dtype``, if it was asked."""
    with _lock:
        while (kernel.name, dtype) in _pending and _helper_pid == os.getpid():
            line = _helper.stdout.readline()
            if not line:  # the helper is gone
                _give_up()
                return
            name, answered_dtype, _status = line.split()
            _pending.discard((name, answered_dtype))
            if not _pending:
                _end_helper()


def _give_up():
    """The helper could not start or has died: what was asked of it, and
    everything from now on, is built in this process."""
    global _failed
    _failed = True
    _pending.clear()
    _end_helper()


def _end_helper():
    """Close the helper's input (it has answered everything, or is gone) and
    reap it."""
    global _helper
    if _helper is not None:
        try:
            _helper.stdin.close()
            _helper.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
    _helper = None


def serve(requests, answers):
    """The helper's loop: build each requested kernel into the disk cache."""
    from .native import kernels

    for line in requests:
        module, name, dtype = line.split()
        try:
            importlib.import_module(module)
            kernels[name].ensure(dtype)
            status = "built"
        except Exception:  # the asking process builds it itself, and reports why
            status = "failed"
        answers.write(f"{name} {dtype} {status}\n")
        answers.flush()


if __name__ == "__main__":
    try:
        serve(sys.stdin, sys.stdout)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
