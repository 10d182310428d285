"""Progress and cancellation travel through these callbacks, never through globals.

The CLI turns ``on_progress`` into a tqdm bar on stderr; the app into ``st.progress``
fed from the run store; tests into a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised inside the engine when the ``should_cancel`` callback says stop."""


@dataclass(frozen=True)
class ProgressEvent:
    """One report from a training loop (or a long step such as text encoding).

    ``stage`` names the phase ("encode text", "pretrain source", "train target"...);
    ``fraction`` is the phase's completion in [0, 1].
    """

    stage: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    loss: float | None = None
    val_metric: float | None = None
    seconds: float = 0.0
    fraction: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Callbacks:
    """Hooks passed down through every long-running engine call."""

    on_progress: Callable[[ProgressEvent], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    log: Callable[[str], None] | None = None

    def progress(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("cancelled by the user")

    def info(self, line: str) -> None:
        if self.log is not None:
            self.log(line)
