"""Every ```python block of docs/*.md and README.md runs as a test.

Conventions (see docs/tutorial.md for an example):

* A block runs unless the line before its opening fence is ``<!-- no-test -->``.
* The blocks of one file share a namespace and run in order, like a doctest session.
* Examples connect with ``SwarmClient.connect(URL, swarm=SWARM, ...)`` after the visible
  line ``URL, SWARM = "nats://127.0.0.1:4222", "default"``; the harness rewrites exactly
  that line to point at a real nats-server and a fresh swarm served in-process.
* Async examples are ``async def main(): ...`` plus ``asyncio.run(main())``: each block
  runs in a worker thread (no running loop there), while the service keeps running on
  the test's event loop.
"""

from __future__ import annotations

import asyncio
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = 'URL, SWARM = "nats://127.0.0.1:4222", "default"'
#: The keystore of `swarm up`: the test service's own, in the examples that need it.
KEYS_PLACEHOLDER = 'KEYS = ".swarm/keys/default.db"'
NO_TEST = "<!-- no-test -->"
BLOCK_TIMEOUT = 60.0

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # line of the first code line, 1-based
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The runnable python blocks of one Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if text[: match.start()].rstrip().endswith(NO_TEST):
            continue
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(path, line, match.group(1)))
    return blocks


def doc_files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return [f for f in files if python_blocks(f)]


def _compile(block: Block, url: str, swarm: str, keys: str = "") -> object:
    code = block.code.replace(PLACEHOLDER, f"URL, SWARM = {url!r}, {swarm!r}")
    code = code.replace(KEYS_PLACEHOLDER, f"KEYS = {keys!r}")
    # Pad with blank lines so tracebacks point at the Markdown file's own line numbers;
    # dont_inherit: the blocks must not run under this file's __future__ imports.
    return compile("\n" * (block.line - 1) + code, str(block.path), "exec", dont_inherit=True)


def test_blocks_are_found_and_no_test_is_honoured(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n```python\nx = 1\n```\n\n<!-- no-test -->\n```python\nraise SystemExit\n```\n"
        "\n```bash\nswarm up\n```\n\n```python\nx += 1\n```\n"
    )
    blocks = python_blocks(page)
    assert [b.code for b in blocks] == ["x = 1\n", "x += 1\n"]
    assert [b.line for b in blocks] == [4, 17]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_set_url_with_the_placeholder_line(path: Path) -> None:
    """A reader must see where URL and SWARM come from before the first use."""
    for block in python_blocks(path):
        if PLACEHOLDER in block.code:
            return
        assert not re.search(r"\b(URL|SWARM)\b", block.code), (
            f"{block.where} uses URL/SWARM before the line {PLACEHOLDER!r}"
        )


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
async def test_examples_run(
    path: Path, service: object, nats_url: str, swarm_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real module, so classes defined in the blocks (dataclasses...) resolve their module.
    module = types.ModuleType("docs_session")
    module.__dict__.update(URL=nats_url, SWARM=swarm_name)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    keys = str(service.keys.path)  # type: ignore[attr-defined]
    for block in python_blocks(path):
        code = _compile(block, nats_url, swarm_name, keys)
        try:
            await asyncio.wait_for(
                asyncio.to_thread(exec, code, module.__dict__), timeout=BLOCK_TIMEOUT
            )
        except Exception as err:
            err.add_note(f"in the python block at {block.where}")
            raise


def test_cli_reference_covers_every_command_and_option() -> None:
    """docs/cli.md documents each `swarm` command and each of its options."""
    from click import Option  # noqa: PLC0415

    from cli.main import main  # noqa: PLC0415

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### swarm (\S+)\n(.*?)(?=^##|\Z)", text, re.M | re.S))
    common = text.split("## Common options", 1)[1].split("\n## ", 1)[0]
    missing = []
    for name, command in main.commands.items():
        if name not in sections:
            missing.append(f"section for `swarm {name}`")
            continue
        for param in command.params:
            if not isinstance(param, Option):
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if f"`{opt}" not in sections[name] and f"`{opt}" not in common:
                    missing.append(f"`{opt}` of `swarm {name}`")
            envvar = param.envvar if isinstance(param.envvar, str) else None
            if envvar and f"`{envvar}`" not in text:
                missing.append(f"env var `{envvar}`")
    assert not missing, "docs/cli.md lacks: " + ", ".join(missing)
