"""Errors a user can cause and fix; their message is one sentence naming the fix."""


class UserError(Exception):
    """Bad input from the user (config, data folder, missing extra); shown without a traceback."""


class DataError(UserError):
    """Data that cannot be found, fetched or parsed."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the trial fails, the sweep goes on."""
