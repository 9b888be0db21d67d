"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class SeqlabError(Exception):
    """An error caused by the user's input (params, files, options), reported as one line."""


class ParamsError(SeqlabError):
    """An invalid params.yaml value; the message names the key and the rule."""


class DataError(SeqlabError):
    """A data file that is missing, truncated or tampered with."""


class CheckpointError(SeqlabError):
    """A checkpoint that cannot be loaded safely or belongs to another task."""
