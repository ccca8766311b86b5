"""Progress of long commands on the terminal: the tier being called, tokens so far, seconds on it.

`cascade run` shows one status line on stderr while the cascade runs (gone when the trace prints);
`cascade eval` shows it under its bars. Both read a `Meter` the calls report to
(`cascade.completers.progress`), refreshed four times a second; off a terminal nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress import Progress
from rich.text import Text

from cascade.completers.progress import Meter, watching


class MeterLine:
    """The meter as one dim line, re-read at every refresh."""

    def __init__(self, meter: Meter, prefix: str = "calling "):
        self.meter, self.prefix = meter, prefix

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.prefix + self.meter.describe(), style="dim", overflow="ellipsis", no_wrap=True)


@contextmanager
def run_status(console: Console) -> Iterator[Meter]:
    """Watch the model calls made inside; on a terminal, show them on one transient line."""
    with watching(Meter()) as meter:
        if not console.is_terminal:
            yield meter
            return
        with Live(MeterLine(meter), console=console, refresh_per_second=4, transient=True):
            yield meter


class EvalProgress(Progress):
    """rich's Progress bars, with the meter's line under them."""

    def __init__(self, meter: Meter, *columns: Any, **options: Any):
        self.meter = meter  # first: rich renders while it initialises
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterator[Any]:
        yield self.make_tasks_table(self.tasks)
        yield MeterLine(self.meter, prefix="  now: ")
