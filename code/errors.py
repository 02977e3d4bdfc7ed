"""The errors a tutorial run can end with.

Each names its problem in one sentence; the scripts' command line
(:func:`command_line.run_main`) prints it as one line and exits non-zero.
"""

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "TrainingDiverged",
    "TrainingInterrupted",
]


class ConfigError(ValueError):
    """A setting cannot work (e.g. a batch larger than the data set)."""


class CheckpointError(ValueError):
    """A checkpoint or saved-model file is missing, unreadable, corrupt, or
    would be replaced by a run that did not ask to replace it."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written for another model or configuration."""


class TrainingDiverged(FloatingPointError):
    """The training cost (or a parameter) became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after saving a checkpoint.

    Attributes
    ----------
    checkpoint : str
        Where the checkpoint was written.
    iterations : int
        How many minibatches had been trained when it was written.
    """

    def __init__(self, checkpoint, iterations):
        self.checkpoint = checkpoint
        self.iterations = iterations
        super().__init__(
            f"interrupted after {iterations} minibatches; checkpoint saved to "
            f"{checkpoint}; run again with resume=True to continue"
        )
