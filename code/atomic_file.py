"""Write files so that a crash leaves either the old file or the new one.

Used for everything the project writes that a user may lose: checkpoints,
saved models, plots and downloads.
"""
import os
import tempfile


def fsync_dir(directory):
    """Make a rename in ``directory`` durable (where the system allows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, check=None):
    """Write ``path`` through a temporary file in the same folder.

    ``write(stream)`` fills the temporary file (binary); it is flushed and
    fsync'ed, then ``check(temporary_path)``, when given, may raise to refuse
    it (a download that is not what it should be), and only then is it
    renamed over ``path`` with :func:`os.replace` (atomic on POSIX and
    Windows) and the folder fsync'ed. On any error the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The final file; its folder must exist.
    write : callable
        Called with a binary file object open for writing.
    check : callable, optional
        Called with the temporary file's path once it is complete.

    Returns
    -------
    str
        The absolute path written.
    """
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    # hidden and unique, so concurrent writers never clobber each other
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the file private (0600)
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
        tmp = None
        fsync_dir(directory)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path
