"""``swarm replay``: rebuild fresh projections from the log into a separate directory.

An admin command, like ``swarm agents``: reading the LOG stream needs the admin's
credentials once the swarm has registered agents. The copy is read offline with
``--data DIR`` on ``get``, ``history``, ``recall`` and ``status``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.agents import _options, _registry
from cli.common import run_async
from cli.timeline import _as_of
from projections.layout import keystore_path
from projections.replay import ReplaySummary
from projections.replay import replay as replay_log
from swarm.timeline import AsOf

__all__ = ["replay"]


def _human(summary: ReplaySummary) -> str:
    resumed = f", resumed from seq {summary.resumed_from}" if summary.resumed_from else ""
    return "\n".join(
        [
            f"replayed swarm {summary.swarm} up to seq {summary.seq} into {summary.into}",
            f"  {summary.events:,} events in {summary.seconds:.1f} s "
            f"({summary.rate:,.0f} events/s{resumed}); {summary.memories:,} "
            + ("memory" if summary.memories == 1 else "memories"),
            f"  duckdb   {summary.duckdb}",
            f"  lancedb  {summary.lancedb}",
            f"  read it  swarm get ID --data {summary.into} --name {summary.swarm}",
        ]
    )


@click.command()
@click.option(
    "--until",
    default=None,
    callback=_as_of,
    metavar="SEQ|TIME",
    help="Last log sequence, or an ISO-8601 time (default: the log's end).",
)
@click.option(
    "--into",
    "into",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the copy: new, empty, or an earlier replay of this swarm.",
)
@click.option(
    "--keys",
    envvar="SWARM_KEYS",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The service's keystore, to open sealed content (env SWARM_KEYS; default: "
    ".swarm/keys/NAME.db if present). Without it the copy's content stays hidden.",
)
@_options
@run_async
async def replay(
    until: AsOf | None,
    into: Path,
    keys: Path | None,
    url: str,
    name: str,
    creds: str | None,
    as_json: bool,
) -> None:
    """Rebuild fresh projections from the log into a separate directory.

    The copy is registered in the keystore: erasing a memory later scrubs it here too.
    """
    if keys is None and (default := keystore_path(".swarm", name)).is_file():
        keys = default
    if keys is not None and not keys.is_file():
        raise click.ClickException(
            f"no keystore at {keys} (it is keys/{name}.db in the data directory of `swarm up`)"
        )
    if keys is None:
        click.echo(
            "warning: no keystore (--keys): memory content stays sealed in this copy",
            err=True,
        )
    log = await _registry(url, name, creds)
    bar: Any = None
    try:

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = click.progressbar(length=max(total, 1), label="replaying", file=sys.stderr)
                bar.__enter__()
            bar.update(done - bar.pos)

        summary = await replay_log(log, into, until=until, progress=progress, keys=keys)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        await log.nc.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        click.echo(_human(summary))
