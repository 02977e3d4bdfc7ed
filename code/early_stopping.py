"""Minibatch SGD with early stopping: the loop the three tutorials share.

:func:`train_early_stopping` is the original tutorials' loop, with the same
order of operations, printed lines and ``patience`` arithmetic. Its
variables live in one :class:`LoopState`, so that a run can be saved and
continued exactly. What long runs need beyond the algorithm (checkpoints,
resuming, the progress line, Ctrl-C, hooks) is attached through a
``supervisor`` (:class:`supervisor.Supervisor`); without one the loop just
trains and prints.
"""
import dataclasses
import math
import os
import sys
import timeit

import numpy

from errors import CheckpointError, ConfigError, TrainingDiverged

__all__ = ["LoopState", "TrainingResult", "Unsupervised", "report_result",
           "train_early_stopping"]


@dataclasses.dataclass
class LoopState:
    """Everything the early-stopping loop carries from one minibatch to the next.

    Together with the parameter values this is the whole state of a run, so
    a run restored from it continues exactly as if it had never stopped.
    """

    #: The patience in minibatches (grows when validation improves enough).
    patience: int
    #: Epoch (1-based) of the last minibatch trained; 0 before training.
    epoch: int = 0
    #: Minibatches trained so far (the next iteration number).
    next_iter: int = 0
    best_validation_loss: float = math.inf
    #: Iteration (0-based) of the best validation so far.
    best_iter: int = 0
    #: Test error of the best model so far.
    test_score: float = 0.0
    #: True once the patience ran out.
    done_looping: bool = False
    #: Training seconds summed over all sessions of this run.
    elapsed: float = 0.0
    #: One dict per validation: epoch, iteration (1-based), validation_error
    #: and test_error (of the best model so far), as fractions.
    history: list = dataclasses.field(default_factory=list)

    def resume_point(self, n_train_batches):
        """``(whole epochs done, first minibatch of the next)`` to start from."""
        if self.done_looping:
            return self.epoch, 0
        return divmod(self.next_iter, n_train_batches)

    def record(self, epoch, iter, validation_error):
        """Append one validation to :attr:`history`."""
        self.history.append({
            "epoch": epoch,
            "iteration": iter + 1,
            "validation_error": float(validation_error),
            "test_error": self.test_score,
        })

    def to_json(self):
        """Return the state as a JSON-safe dict (infinity becomes None)."""
        data = dataclasses.asdict(self)
        if math.isinf(data["best_validation_loss"]):
            data["best_validation_loss"] = None
        return data

    @classmethod
    def from_json(cls, data):
        """Rebuild a state from :meth:`to_json` output, checking the types.

        Raises
        ------
        CheckpointError
            If a field is missing or has the wrong type.
        """
        if not isinstance(data, dict):
            raise CheckpointError("the checkpoint's loop state is not a mapping")
        ints = ("patience", "epoch", "next_iter", "best_iter")
        floats = ("test_score", "elapsed")
        try:
            state = cls(
                patience=data["patience"],
                epoch=data["epoch"],
                next_iter=data["next_iter"],
                best_validation_loss=(
                    math.inf
                    if data["best_validation_loss"] is None
                    else data["best_validation_loss"]
                ),
                best_iter=data["best_iter"],
                test_score=data["test_score"],
                done_looping=data["done_looping"],
                elapsed=data["elapsed"],
                history=data["history"],
            )
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"the checkpoint's loop state lacks {exc}") from None
        bad = [k for k in ints if type(getattr(state, k)) is not int or getattr(state, k) < 0]
        bad += [
            k
            for k in floats + ("best_validation_loss",)
            if type(getattr(state, k)) not in (int, float)
        ]
        if type(state.done_looping) is not bool:
            bad.append("done_looping")
        if not isinstance(state.history, list) or not all(
            isinstance(h, dict) for h in state.history
        ):
            bad.append("history")
        if bad:
            raise CheckpointError(
                "the checkpoint's loop state has invalid " + ", ".join(bad)
            )
        for k in floats + ("best_validation_loss",):
            setattr(state, k, float(getattr(state, k)))
        return state


@dataclasses.dataclass
class TrainingResult:
    """What :func:`train_early_stopping` returns."""

    best_validation_loss: float
    #: 0-based iteration of the best validation (the tutorials print it + 1).
    best_iter: int
    test_score: float
    #: The epoch the loop ended in.
    epoch: int
    #: Minibatches trained in total.
    iterations: int
    #: Training seconds, summed over resumed sessions.
    elapsed: float
    history: list
    #: Final parameter values (copies), in the order of ``params``.
    params: list
    #: Parameters of the best validated model (copies), or None.
    best_params: list


class Unsupervised:
    """What the loop calls when nothing is attached: it prints and keeps time.

    :class:`supervisor.Supervisor` adds checkpoints, resuming, a progress
    line, Ctrl-C handling and hooks by overriding these methods.
    """

    def start(self, state, params, n_train_batches, n_epochs):
        """Return the state to start from and the best parameters so far."""
        self._clock = (timeit.default_timer(), state.elapsed)
        return state, None

    def elapsed(self):
        """Training seconds so far, over every session of the run."""
        started, before = self._clock
        return before + timeit.default_timer() - started

    def say(self, line):
        print(line, flush=True)

    def epoch_starts(self, epoch):
        pass

    def new_best(self, state):
        pass

    def diverged(self, message):
        """The exception to raise when training diverges."""
        return TrainingDiverged(message)

    def minibatch_done(self, state, params, best_params, validated):
        pass

    def finish(self, state, params, best_params):
        state.elapsed = self.elapsed()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def train_early_stopping(
    train_model,
    validate_model,
    test_model,
    params,
    n_batches,
    n_epochs,
    patience=10000,
    patience_increase=2,
    improvement_threshold=0.995,
    report_every=None,
    supervisor=None,
):
    """Minibatch SGD with early stopping, as in the original tutorials.

    Each epoch trains on every minibatch in order. Every
    ``validation_frequency = min(n_train_batches, patience // 2)``
    minibatches the model is validated; a new best validation error is
    followed by a test-set evaluation, and a large enough improvement
    (below ``improvement_threshold`` times the previous best) extends the
    patience to ``iteration * patience_increase``. Training stops after
    ``n_epochs`` epochs or once the iteration number reaches the patience.

    Parameters
    ----------
    train_model, validate_model, test_model : callable
        Compiled functions of a minibatch number. ``train_model`` returns
        the cost and updates ``params``; the others return the zero-one loss.
    params : list of shared variables
        The parameters ``train_model`` updates (copied for the best model).
    n_batches : tuple of 3 ints
        Minibatches in the training, validation and test sets.
    n_epochs : int
        Maximum number of epochs.
    patience, patience_increase, improvement_threshold
        Early-stopping settings (the originals: 10000, 2, 0.995; the logistic
        regression tutorial uses ``patience=5000``).
    report_every : int, optional
        Print ``training @ iter = N`` every this many iterations (the LeNet
        tutorial uses 100); ``None`` prints nothing.
    supervisor : Unsupervised, optional
        What is attached to the loop (:class:`supervisor.Supervisor`:
        checkpoints, resume, progress line, Ctrl-C, hooks).

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDiverged
        If the cost becomes NaN or infinite.
    ConfigError
        If ``patience`` is too small to ever validate.
    """
    n_train_batches, n_valid_batches, n_test_batches = n_batches
    supervisor = Unsupervised() if supervisor is None else supervisor
    state, best_params = supervisor.start(
        LoopState(patience=patience), params, n_train_batches, n_epochs
    )

    # go through this many minibatches before checking the network on the
    # validation set (every epoch, for the tutorials' settings)
    validation_frequency = min(n_train_batches, patience // 2)
    if validation_frequency < 1:
        raise ConfigError(f"patience {patience} is too small to ever validate")

    # a resumed run starts where its checkpoint left off
    epoch, first_minibatch = state.resume_point(n_train_batches)

    # start-snippet-1
    with supervisor:
        while (epoch < n_epochs) and (not state.done_looping):
            epoch = epoch + 1
            supervisor.epoch_starts(epoch)
            for minibatch_index in range(first_minibatch, n_train_batches):
                # iteration number
                iter = (epoch - 1) * n_train_batches + minibatch_index

                if report_every and iter % report_every == 0:
                    supervisor.say(f"training @ iter =  {iter}")
                cost_ij = train_model(minibatch_index)
                if not numpy.isfinite(cost_ij):
                    raise supervisor.diverged(
                        f"the training cost is {float(cost_ij)} at iteration {iter} "
                        f"(epoch {epoch}, minibatch {minibatch_index + 1}/{n_train_batches})"
                    )
                state.epoch, state.next_iter = epoch, iter + 1

                validated = (iter + 1) % validation_frequency == 0
                if validated:
                    # compute zero-one loss on validation set
                    validation_losses = [validate_model(i) for i in range(n_valid_batches)]
                    this_validation_loss = numpy.mean(validation_losses)
                    supervisor.say(
                        "epoch %i, minibatch %i/%i, validation error %f %%"
                        % (epoch, minibatch_index + 1, n_train_batches,
                           this_validation_loss * 100.0)
                    )

                    # if we got the best validation score until now
                    if this_validation_loss < state.best_validation_loss:
                        # improve patience if loss improvement is good enough
                        if this_validation_loss < (
                            state.best_validation_loss * improvement_threshold
                        ):
                            state.patience = max(state.patience, iter * patience_increase)

                        # save best validation score and iteration number
                        state.best_validation_loss = float(this_validation_loss)
                        state.best_iter = iter
                        best_params = [p.get_value(borrow=False) for p in params]

                        # test it on the test set
                        test_losses = [test_model(i) for i in range(n_test_batches)]
                        state.test_score = float(numpy.mean(test_losses))
                        supervisor.say(
                            "     epoch %i, minibatch %i/%i, test error of best model %f %%"
                            % (epoch, minibatch_index + 1, n_train_batches,
                               state.test_score * 100.0)
                        )
                        supervisor.new_best(state)

                    state.record(epoch, iter, this_validation_loss)

                if state.patience <= iter:
                    state.done_looping = True

                supervisor.minibatch_done(state, params, best_params, validated)
                if state.done_looping:
                    break
            first_minibatch = 0
        supervisor.finish(state, params, best_params)
    # end-snippet-1

    return TrainingResult(
        best_validation_loss=state.best_validation_loss,
        best_iter=state.best_iter,
        test_score=state.test_score,
        epoch=epoch,
        iterations=state.next_iter,
        elapsed=state.elapsed,
        history=state.history,
        params=[p.get_value(borrow=False) for p in params],
        best_params=best_params,
    )


def report_result(result, script, one_line=False):
    """Print the original's closing lines for ``result``.

    "Optimization complete." and the best validation score, its iteration
    and the test score (on one line for the MLP tutorial, on two for LeNet,
    as the originals printed them), then the run time on stderr, named after
    ``script`` (a file path).
    """
    best = (
        "Best validation score of %f %% obtained at iteration %i, "
        "with test performance %f %%"
        % (result.best_validation_loss * 100.0, result.best_iter + 1,
           result.test_score * 100.0)
    )
    print("Optimization complete." + (" " if one_line else "\n") + best)
    print(
        "The code for file " + os.path.basename(script)
        + " ran for %.2fm" % (result.elapsed / 60.0),
        file=sys.stderr,
    )
