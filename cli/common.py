"""Helpers shared by the `swarm` command's modules."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from swarm.errors import Rejected, SwarmError

T = TypeVar("T")

DEFAULT_URL = "nats://127.0.0.1:4222"


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def duration(_ctx: click.Context, param: click.Parameter, value: str | float) -> float:
    """A click callback: seconds, or a number with a unit (``90s``, ``30m``, ``12h``, ``7d``)."""
    text = str(value).strip().lower()
    unit = _UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a duration (e.g. 90s, 30m, 12h, 7d)", param=param
        ) from None
    if seconds <= 0:
        raise click.BadParameter("a duration must be positive", param=param)
    return seconds


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_async(fn: Callable[..., Awaitable[T]]) -> Callable[..., T | None]:
    """Run an async command; turn every SwarmError into one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]
        except Rejected as err:
            _fail(str(err))
        except SwarmError as err:
            _fail(str(err))
        except KeyboardInterrupt:
            sys.exit(130)
        return None

    return wrapper
