"""One error type for everything a person runs: it becomes one clear message and exit code 2."""


class TelegestError(Exception):
    """A failure the user can act on; str(err) says what happened and what to do."""

    exit_code = 2
