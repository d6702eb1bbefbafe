"""Every failure genlab explains to its user, in one place.

Each class says what went wrong in its message (and how to fix it); the stage entry point
catches ``GenlabError`` and prints that message instead of a traceback, exiting with the
class's ``exit_code``. A new error type is one subclass here and nothing else: there is no list
of "known" errors to keep up to date. The builtin second base keeps ``except ValueError`` /
``except RuntimeError`` in callers' code meaningful.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_VERIFIED = 1  # `genlab verify`: some file is not recognised as made by genlab
EXIT_BAD_INPUT = 2
EXIT_SIGTERM = 128 + 15  # the shell's convention for "terminated by SIGTERM"


class GenlabError(Exception):
    """A failure whose message already says what is wrong and how to fix it: no traceback."""

    exit_code = EXIT_FAILED
    #: the message is prefixed with the class name (``DatasetError: ...``), which says which
    #: part of the pipeline refused; config errors and interruptions speak for themselves
    show_type = True

    def user_message(self) -> str:
        return f"{type(self).__name__}: {self}" if self.show_type else str(self)


class ConfigError(GenlabError, ValueError):
    """The composed config is invalid; the message names the key."""

    exit_code = EXIT_BAD_INPUT
    show_type = False


class RangeError(ConfigError):
    """A config value is outside its allowed range (raised by the schema's checks)."""


class StageInputError(GenlabError, RuntimeError):
    """A stage's input (a checkpoint, a generator file, metrics) is missing or unusable."""


class DatasetError(GenlabError, RuntimeError):
    """A dataset is missing, corrupt or fails verification; the message says how to fix it."""


class ClassifierError(GenlabError, RuntimeError):
    """The metrics classifier cannot be trained or loaded."""


class NonFiniteLossError(GenlabError, FloatingPointError):
    """A loss became NaN or infinite; raised before the weights are updated with it."""


class CheckpointWriteError(GenlabError, RuntimeError):
    """A checkpoint could not be written (disk full, quota, permissions); the last one stands."""


class TrainingInterrupted(GenlabError, RuntimeError):
    """Training stopped on SIGTERM after saving a checkpoint; the stage must not be recorded."""

    exit_code = EXIT_SIGTERM
    show_type = False


class ExportError(GenlabError, RuntimeError):
    """An export could not be produced or does not reproduce the eager generator.

    Raised before the file is published, so the target path is never left holding a bad export.
    """


class GenerateError(GenlabError, ValueError):
    """An exported file or a `genlab generate` request that cannot be served."""

    exit_code = EXIT_BAD_INPUT


class OutputPathError(GenlabError, RuntimeError):
    """An output path genlab will not write to: it would replace or remove something genlab did
    not make (the user's own files, the project itself, a folder outside the project)."""

    exit_code = EXIT_BAD_INPUT


class CredentialsError(GenlabError, RuntimeError):
    """A signing identity (certificate chain, private key, trust anchor) that genlab cannot use:
    missing, unreadable, the wrong kind, not matching, or too widely readable."""

    exit_code = EXIT_BAD_INPUT
