"""How the `vidgen` command shows things: booleans as words, credits with their sign, tables, a live status
line while a job runs and a byte bar per download.

One home for these, so `vidgen submit`, `vidgen storyboard` and the rest print them alike. The bars are
`rich`'s, drawn only on a terminal (logs and pipes get the plain lines the commands print anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from vidgen_local.client import OnProgress


def word(value: Any) -> str:
    """Booleans as words (true/false), None as nothing, everything else as itself."""
    return ('true' if value else 'false') if isinstance(value, bool) else '' if value is None else str(value)


def signed(amount: Any) -> str:
    """Credits with their sign: +20 for a grant or a refund, -20 for a debit."""
    return f'{int(amount):+d}' if isinstance(amount, (int, float)) and not isinstance(amount, bool) else word(amount)


def table(rows: list[list[Any]], headers: list[str]) -> None:
    """Columns padded to their widest cell, booleans as words."""
    cells = [headers, *[[word(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@contextmanager
def byte_bar(name: str, total: int | None) -> Iterator[OnProgress]:
    """A download's byte progress bar; yields the `progress(done, total)` callback `VidgenClient.download` takes."""
    console = Console()
    columns = (TextColumn('{task.description}'), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(name, total=total)
        yield lambda done, size: progress.update(bar, completed=done, total=size if size is not None else total)


@contextmanager
def status_bar(name: str, status: str) -> Iterator[tuple[Callable[[str], None], bool]]:
    """A live line for something that runs: its name, a pulsing bar, its status and the time elapsed.

    Yields `(show, live)`: `show(status)` updates the line; `live` is False off a terminal, where the caller
    prints its own line per change instead.
    """
    console = Console()
    # No total is known while a provider works: the bar pulses, the status and the time elapsed say the rest.
    columns = (SpinnerColumn(), TextColumn('{task.description}'), BarColumn(), TextColumn('[bold]{task.fields[status]}'),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(name, total=None, status=status)
        yield (lambda current: progress.update(bar, status=current)), console.is_terminal
