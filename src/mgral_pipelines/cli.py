"""`kedro run` as Kedro defines it, with plain endings for the stops of the labelling loop.

A cycle that waits for people's labels, returned labels that are refused and a Label Studio server
that cannot be used are outcomes a user acts on, not crashes: the run ends with the message alone
on stderr and an exit status a script can test (sysexits.h), never a traceback. Ctrl-C and SIGTERM
end the run's MLflow run as KILLED. Kedro finds this module as the project's `cli`
(`python -m mgral_pipelines` uses it too).
"""

from __future__ import annotations

import copy
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from mgral_pipelines.annotation.batch import AwaitingLabels, InvalidLabelsError
from mgral_pipelines.annotation.server import LabelStudioError
from mgral_pipelines.hooks import end_active_run

# sysexits.h: EX_TEMPFAIL (try again later), EX_DATAERR, EX_UNAVAILABLE.
EXIT_WAITING, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 75, 65, 69, 130
_PLAIN_ENDINGS: dict[type[Exception], tuple[str, int]] = {
    AwaitingLabels: ("Waiting for labels", EXIT_WAITING),
    InvalidLabelsError: ("Labels refused", EXIT_REFUSED),
    LabelStudioError: ("Label Studio", EXIT_UNAVAILABLE),
}


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so the run can end as KILLED."""


@click.group(name="mgral_pipelines")
def cli() -> None:
    """MGRAL's project commands."""


def _plain_endings(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run_with_plain_endings(*args: Any, **kwargs: Any) -> Any:
        previous = _on_sigterm(_raise_terminated)
        try:
            return callback(*args, **kwargs)
        except tuple(_PLAIN_ENDINGS) as error:
            title, status = next(v for k, v in _PLAIN_ENDINGS.items() if isinstance(error, k))
            for handler in logging.getLogger().handlers:  # Kedro's log lines first, the answer last
                handler.flush()
            colour = "yellow" if status == EXIT_WAITING else "red"
            click.secho(f"{title}: {error}", err=True, fg=colour)
            sys.exit(status)
        except (KeyboardInterrupt, Terminated) as error:
            reason = ("interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt)
                      else "terminated (SIGTERM)")
            end_active_run("KILLED", f"run {reason}")
            click.secho(f"Run {reason}; nothing half-written is kept, run it again to go on.",
                        err=True, fg="red")
            sys.exit(EXIT_INTERRUPTED)
        finally:
            _on_sigterm(previous)

    return run_with_plain_endings


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None  # signals can only be handled in the main thread
    return signal.signal(signal.SIGTERM, handler)


run = copy.copy(kedro_run)
run.callback = _plain_endings(kedro_run.callback)
cli.add_command(run)
