"""User-facing errors. The CLI prints these as one line, without a traceback."""


class ReproError(Exception):
    """An error caused by the input (config, data, overrides) rather than a bug."""


class ConfigError(ReproError):
    """An invalid or inconsistent configuration value."""


class DataError(ReproError):
    """Missing, incomplete or unreachable data."""


class DivergedError(ReproError):
    """The training loss became NaN or infinite."""

    def __init__(self, message: str, step: int, lr: float):
        super().__init__(message)
        self.step = step
        self.lr = lr
