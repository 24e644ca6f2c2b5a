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
