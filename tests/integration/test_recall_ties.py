"""Recall is deterministic at ties: the same rows give the same hits, in any order.

LanceDB's full-text search returns an arbitrary subset of the rows tied at its limit,
a different one from call to call; as-of recall must equal recall on a replay, so
the recall store completes ties before it cuts (projections.lance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from projections.lance import LanceRecall
from swarm.embed import HashingEmbedder

pytestmark = pytest.mark.integration


def rows() -> list[dict[str, Any]]:
    out = []
    for i in range(700):
        same = i % 2 == 0  # 350 rows with the very same text: one big tie
        out.append(
            {
                "id": f"mem-{i:04d}",
                "content": "the cache layer failed after the friday release"
                if same
                else f"note {i}: the search index recovered after a config change",
                "kind": "fact",
                "tags": [],
                "agent": "brad",
                "private": False,
                "importance": 0.5,
                "seq": i + 1,
                "forgotten": False,
            }
        )
    return out


@pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
def test_tied_scores_give_the_same_hits_every_time_and_in_any_row_order(
    tmp_path: Path, mode: str
) -> None:
    forward = LanceRecall(tmp_path / "forward", HashingEmbedder())
    backward = LanceRecall(tmp_path / "backward", HashingEmbedder())
    try:
        forward.upsert(rows())
        backward.upsert(list(reversed(rows())))
        for query in ("cache layer failed", "friday release cache", "search index config"):
            first = forward.search(query, k=10, mode=mode)  # type: ignore[arg-type]
            assert len(first) == 10
            for _ in range(4):
                assert forward.search(query, k=10, mode=mode) == first  # type: ignore[arg-type]
            assert backward.search(query, k=10, mode=mode) == first  # type: ignore[arg-type]
        tied = forward.search("cache layer failed", k=10, mode="text")
        assert [h["id"] for h in tied] == [f"mem-{i:04d}" for i in range(0, 20, 2)]  # by id
    finally:
        forward.close()
        backward.close()
