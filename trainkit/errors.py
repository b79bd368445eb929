"""Exceptions the CLI turns into one line on stderr and a non-zero exit code."""


class TrainkitError(Exception):
    """A problem the user can fix; its message names the offending value and where it is."""

    exit_code = 1


class UsageError(TrainkitError):
    """Bad command-line arguments."""

    exit_code = 2
