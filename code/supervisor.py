"""What a long run attaches to the early-stopping loop: checkpoints,
resuming, the progress line, Ctrl-C, and the tutorials' hooks.

:class:`Supervisor` is handed to :func:`early_stopping.train_early_stopping`,
which calls it at fixed points of the loop; the loop itself stays the
original's algorithm. With a checkpoint path it

* writes the whole state (see :mod:`checkpoints`) atomically after every
  validation, on Ctrl-C, and at the end;
* with ``resume=True`` continues from it to exactly the result an
  uninterrupted run would have reached (same parameters bit for bit, same
  printed results); a kill between two validations loses only the
  minibatches trained since the last one, which are redone identically;
* without ``resume``, refuses to start if the file exists, so that no
  earlier run's state is ever replaced (:func:`checkpoints.check_outputs`);
* never writes parameters that are NaN or infinite: the last good
  checkpoint stays.
"""
import os
import signal
import sys
import threading

import numpy

import checkpoints
from early_stopping import Unsupervised
from errors import ConfigError, TrainingDiverged, TrainingInterrupted

__all__ = ["InterruptGuard", "Supervisor"]


class Supervisor(Unsupervised):
    """Checkpoints, resume, progress line, Ctrl-C and hooks for the loop.

    Parameters
    ----------
    checkpoint : str, optional
        Checkpoint file; ``None`` writes none (and leaves Ctrl-C alone).
    resume : bool, optional
        Continue from ``checkpoint`` instead of starting afresh.
    fingerprint : dict, optional
        The configuration (:func:`checkpoints.config_fingerprint`); a
        checkpoint written for another one is refused.
    param_names : list of str, optional
        Names of the parameters' arrays in the checkpoint (``layer0_W`` ...).
    progress : progress.ProgressLine, optional
        Elapsed time / ETA display (see :meth:`ProgressLine.for_terminal`).
    on_new_best : callable, optional
        Called as ``on_new_best(state)`` after each new best model has been
        tested (the logistic tutorial saves its model there).
    on_epoch : callable, optional
        Called as ``on_epoch(epoch)`` (1-based) before the first minibatch
        that an epoch trains, also when a resumed run continues in the middle
        of one; a learning-rate schedule sets its rate there. What it sets
        must depend on ``epoch`` alone, so that a resumed run is exact.
    """

    def __init__(self, checkpoint=None, resume=False, fingerprint=None, param_names=None,
                 progress=None, on_new_best=None, on_epoch=None):
        self.checkpoint = None if checkpoint is None else os.path.abspath(checkpoint)
        self.resume = resume
        self.fingerprint = {} if fingerprint is None else fingerprint
        self.param_names = param_names
        self.progress = progress
        self.on_new_best = on_new_best
        self.on_epoch = on_epoch
        if resume and checkpoint is None:
            raise ConfigError("resuming needs a checkpoint path")
        self._interrupt = InterruptGuard(checkpoint is not None, progress)

    def start(self, state, params, n_train_batches, n_epochs):
        self.n_train_batches, self.n_epochs = n_train_batches, n_epochs
        # (the tutorials check this before loading the data; a library
        # caller gets the same protection here)
        checkpoints.check_outputs(self.checkpoint, self.resume)
        best_params = None
        if self.resume:
            state, best_params = checkpoints.load_checkpoint(
                self.checkpoint, params, self.fingerprint, self.param_names)
            print(
                f"... resuming from {self.checkpoint} after {state.next_iter} minibatches "
                f"(epoch {state.epoch})",
                file=sys.stderr,
                flush=True,
            )
        super().start(state, params, n_train_batches, n_epochs)
        if self.progress is not None:
            self.progress.start(state.next_iter)
        return state, best_params

    def say(self, line):
        if self.progress is not None:
            self.progress.clear()
        super().say(line)

    def epoch_starts(self, epoch):
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def new_best(self, state):
        if self.on_new_best is not None:
            self.on_new_best(state)

    def diverged(self, message):
        return TrainingDiverged(f"{message}; stopping. {self._kept()}")

    def minibatch_done(self, state, params, best_params, validated):
        if self.checkpoint is not None and (validated or self._interrupt.requested):
            self._save(state, params, best_params)
        if self._interrupt.requested:
            if self.progress is not None:
                self.progress.clear()
            raise TrainingInterrupted(self.checkpoint, state.next_iter)
        if self.progress is not None:
            minibatch = state.next_iter - (state.epoch - 1) * self.n_train_batches
            self.progress.update(
                state.epoch, self.n_epochs, minibatch, self.n_train_batches,
                state.next_iter,
                min(self.n_epochs * self.n_train_batches, state.patience + 1),
                self.elapsed(),
            )

    def finish(self, state, params, best_params):
        if self.progress is not None:
            self.progress.clear()
        # A last checkpoint holds the final state, so resuming a finished run
        # just reports its results (and a longer n_epochs extends it).
        if self.checkpoint is not None:
            self._save(state, params, best_params)
        super().finish(state, params, best_params)

    def __enter__(self):
        self._interrupt.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._interrupt.__exit__(*exc_info)

    def _save(self, state, params, best_params):
        if not all(numpy.isfinite(p.get_value(borrow=True)).all() for p in params):
            raise TrainingDiverged(
                f"a parameter became NaN or infinite by iteration {state.next_iter - 1}; "
                f"{self._kept()}"
            )
        state.elapsed = self.elapsed()
        checkpoints.save_checkpoint(self.checkpoint, params, best_params, state,
                                    self.fingerprint, self.param_names)

    def _kept(self):
        """The sentence about the last good checkpoint, for divergence errors."""
        if self.checkpoint is None:
            return "No checkpoint was being written."
        if os.path.exists(self.checkpoint):
            return f"The last good checkpoint, {self.checkpoint}, was kept."
        return "No checkpoint had been written yet."


class InterruptGuard:
    """Turn the first SIGINT into a request to checkpoint and stop.

    The first Ctrl-C only sets :attr:`requested` (the loop saves at the end
    of the current minibatch); it also restores the operating system's
    default action, so a second Ctrl-C ends the process at once.  Only
    active in the main thread and when ``enabled``.
    """

    def __init__(self, enabled, progress):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.progress = progress
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if self.progress is not None:
            self.progress.clear()
        print(
            "\nCtrl-C: saving a checkpoint after this minibatch "
            "(press Ctrl-C again to quit at once without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False
