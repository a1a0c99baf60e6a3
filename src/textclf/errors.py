"""Errors the CLI reports as one clear line (exit code 2) instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix: bad path, bad flag value, missing data, busy port."""
