"""The consoles and the progress bar of the ``vigil`` commands (rich; progress and messages on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
out = Console()


def progress_bar() -> Progress:
    """The progress bar used by long commands (drawn on stderr, so --json output stays clean)."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console, transient=True)
