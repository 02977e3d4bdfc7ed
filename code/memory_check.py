"""Refuse, in one line, a configuration that cannot fit in memory.

A typo such as ``--nkerns 99999999,50`` would otherwise allocate until the
operating system kills the process, with no message. The scripts estimate
what a configuration needs before allocating anything and compare it with
the memory available now.
"""
import os

from errors import ConfigError

__all__ = ["available_memory", "check_fits"]


def available_memory():
    """Bytes of memory available to a new allocation now, or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:  # Linux: what the kernel can hand out
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None  # Windows, or a system that does not say


def check_fits(n_values, itemsize, what):
    """Raise :class:`errors.ConfigError` if ``n_values`` numbers of
    ``itemsize`` bytes clearly exceed the memory available.

    Parameters
    ----------
    n_values : int
        An estimate of the numbers held at once (parameters, their
        gradients and copies, one minibatch's activations).
    itemsize : int
        Bytes per number (4 for float32).
    what : str
        The configuration, for the message (e.g. ``"nkerns [20, 50] at
        batch size 500"``).
    """
    needed = int(n_values) * int(itemsize)
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, more than the "
            f"{available / 2**30:.1f} GiB available; choose smaller settings"
        )
