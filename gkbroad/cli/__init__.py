"""The `gkbroad` command line: run, check, lag, produce, broker (see commands.py)."""

from .commands import main

__all__ = ["main"]
