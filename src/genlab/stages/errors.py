class StageInputError(RuntimeError):
    """A stage's input (a checkpoint, a generator file) is missing or unusable; says the fix."""
