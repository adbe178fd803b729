"""Errors the rig reports to the user as one clear line and a non-zero exit."""


class RigError(Exception):
    """A problem the user can fix; main() prints it without a traceback."""

    exit_code = 2


class BadInput(RigError):
    """An unknown scenario, a bad flag value or an impossible combination."""


class EnvironmentProblem(RigError):
    """No Docker engine, a missing image, a port in use, a missing program."""

    exit_code = 3


class ExecHung(EnvironmentProblem):
    """The Docker engine never finished a command run in a container."""


class BrokerDown(Exception):
    """The broker does not answer (restarting, partitioned, gone): the runner waits."""


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
