"""User-facing errors.

Anything raised as :class:`HetCompError` is a problem with the user's input (a name, a
path, a value) that the command-line entry point prints as one line, with the fix, and
exits non-zero without a traceback.
"""


class HetCompError(Exception):
    """A problem the user can fix; the message names it and says how."""


class ConfigError(HetCompError):
    """Bad model name, dataset, property file or config value."""
