"""LanceRecall against real LanceDB files in tmp_path (no NATS needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from projections.lance import LanceRecall, RecallHit, SearchMode
from swarm.embed import HashingEmbedder
from swarm.errors import ConfigError, StoreError

MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "text")

CORPUS = {
    "m-deploy": ("The deploy of the billing service failed on staging", "alice", "fact"),
    "m-migrate": ("Postgres migration timed out during the nightly batch job", "bob", "fact"),
    "m-cache": ("Redis cache eviction storm after the config change", "alice", "observation"),
    "m-dns": ("DNS resolver outage took the web frontend down", "carol", "decision"),
    "m-cats": ("The office cat prefers sardines on sunny afternoons", "carol", "fact"),
}


def row(
    mid: str,
    content: str,
    *,
    seq: int,
    agent: str = "alice",
    kind: str = "fact",
    tags: list[str] | None = None,
    private: bool = False,
    importance: float = 0.5,
    forgotten: bool = False,
) -> dict[str, Any]:
    return {
        "id": mid,
        "content": content,
        "kind": kind,
        "tags": tags or [],
        "agent": agent,
        "private": private,
        "importance": importance,
        "seq": seq,
        "forgotten": forgotten,
    }


def corpus_rows() -> list[dict[str, Any]]:
    return [
        row(mid, text, seq=i + 1, agent=agent, kind=kind, tags=["ops"] if i % 2 == 0 else [])
        for i, (mid, (text, agent, kind)) in enumerate(CORPUS.items())
    ]


def fragments(recall: LanceRecall) -> int:
    stats: Any = recall._table.stats()
    return int(stats["fragment_stats"]["num_fragments"])


def ids(hits: list[RecallHit]) -> list[str]:
    return [h["id"] for h in hits]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LanceRecall]:
    recall = LanceRecall(tmp_path / "recall", HashingEmbedder())
    recall.upsert(corpus_rows())
    yield recall
    recall.close()


# --------------------------------------------------------------------------- finding


def test_upsert_then_text_search_finds_by_words(store: LanceRecall) -> None:
    hits = store.search("postgres migration", mode="text")
    assert ids(hits)[0] == "m-migrate"
    assert hits[0]["content"] == CORPUS["m-migrate"][0]
    assert hits[0]["score"] > 0


def test_vector_search_finds_by_word_overlap(store: LanceRecall) -> None:
    # "deployment" / "failure" share character 3-grams with "deploy" / "failed".
    hits = store.search("deployment failure", mode="vector")
    assert ids(hits)[0] == "m-deploy"
    assert 0 < hits[0]["score"] <= 1.0


def test_hybrid_search_ranks_best_match_first(store: LanceRecall) -> None:
    hits = store.search("redis cache eviction", k=3)
    assert ids(hits)[0] == "m-cache"
    assert len(hits) <= 3
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_search_returns_all_hit_fields(store: LanceRecall) -> None:
    (hit,) = store.search("dns resolver outage", k=1)
    assert hit == {
        "id": "m-dns",
        "content": CORPUS["m-dns"][0],
        "score": hit["score"],
        "agent": "carol",
        "kind": "decision",
        "tags": [],
        "importance": 0.5,
        "private": False,
        "seq": 4,
    }


def test_search_respects_k(store: LanceRecall) -> None:
    for mode in MODES:
        assert len(store.search("the service", k=2, mode=mode)) <= 2


def test_search_with_no_words_returns_nothing(store: LanceRecall) -> None:
    assert store.search("  ?! ") == []
    assert store.search("") == []


def test_search_with_query_syntax_characters_does_not_fail(store: LanceRecall) -> None:
    for mode in MODES:
        store.search('cache" OR 1=1; -- (eviction) AND: *', mode=mode)


def test_search_rejects_unknown_mode(store: LanceRecall) -> None:
    with pytest.raises(ConfigError):
        store.search("x", mode="fuzzy")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize("mode", MODES)
def test_filter_by_agent_returns_only_that_author(store: LanceRecall, mode: SearchMode) -> None:
    hits = store.search("the service cache outage batch", agent="alice", mode=mode)
    assert hits
    assert {h["agent"] for h in hits} == {"alice"}


@pytest.mark.parametrize("mode", MODES)
def test_filter_by_kind_returns_only_that_kind(store: LanceRecall, mode: SearchMode) -> None:
    hits = store.search("cache outage resolver", kind="decision", mode=mode)
    assert ids(hits) == ["m-dns"]


@pytest.mark.parametrize("mode", MODES)
def test_filter_by_tags_requires_all_tags(tmp_path: Path, mode: SearchMode) -> None:
    with LanceRecall(tmp_path, HashingEmbedder()) as recall:
        recall.upsert(
            [
                row("a", "kafka consumer lag alert", seq=1, tags=["ops", "kafka"]),
                row("b", "kafka consumer lag alert again", seq=2, tags=["ops"]),
                row("c", "kafka consumer lag alert third", seq=3, tags=["kafka"]),
            ]
        )
        hits = recall.search("kafka lag", tags=["ops", "kafka"], mode=mode)
        assert ids(hits) == ["a"]
        assert recall.search("kafka lag", tags=["missing"], mode=mode) == []


def test_filter_for_unknown_agent_or_kind_returns_nothing(store: LanceRecall) -> None:
    assert store.search("cache", agent="nobody") == []
    assert store.search("cache", kind="nothing") == []


def test_filter_values_with_quotes_are_safe(tmp_path: Path) -> None:
    with LanceRecall(tmp_path, HashingEmbedder()) as recall:
        recall.prefilter_below = 1.1  # force the LanceDB prefilter path for text
        recall.upsert([row("q", "quoted agent note", seq=1, agent="o'brien", tags=["it's"])])
        hits = recall.search("quoted note", agent="o'brien", tags=["it's"], mode="text")
        assert ids(hits) == ["q"]


# --------------------------------------------------------------------------- privacy


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[LanceRecall]:
    recall = LanceRecall(tmp_path, HashingEmbedder())
    recall.upsert(
        [
            row(
                "secret", "launch codes for the rocket project", seq=1, agent="alice", private=True
            ),
            row("public", "rocket project launch checklist", seq=2, agent="bob"),
        ]
    )
    yield recall
    recall.close()


@pytest.mark.parametrize("prefilter_below", [0.0, 1.1])
@pytest.mark.parametrize("mode", MODES)
def test_private_row_is_hidden_without_requester(
    private_store: LanceRecall, mode: SearchMode, prefilter_below: float
) -> None:
    private_store.prefilter_below = prefilter_below
    hits = private_store.search("rocket launch codes", mode=mode)
    assert "secret" not in ids(hits)
    assert "public" in ids(hits)


@pytest.mark.parametrize("prefilter_below", [0.0, 1.1])
@pytest.mark.parametrize("mode", MODES)
def test_private_row_is_hidden_from_other_agents(
    private_store: LanceRecall, mode: SearchMode, prefilter_below: float
) -> None:
    private_store.prefilter_below = prefilter_below
    for requester in ("bob", "mallory", "Alice", ""):
        hits = private_store.search("rocket launch codes", requester=requester, mode=mode)
        assert "secret" not in ids(hits)
    hits = private_store.search("launch codes", requester="bob", agent="alice", mode=mode)
    assert hits == []


@pytest.mark.parametrize("prefilter_below", [0.0, 1.1])
@pytest.mark.parametrize("mode", MODES)
def test_private_row_is_visible_to_its_author(
    private_store: LanceRecall, mode: SearchMode, prefilter_below: float
) -> None:
    private_store.prefilter_below = prefilter_below
    hits = private_store.search("rocket launch codes", requester="alice", mode=mode)
    assert ids(hits)[0] == "secret"
    assert hits[0]["private"] is True


def test_row_made_private_later_disappears_for_others(private_store: LanceRecall) -> None:
    private_store.upsert(
        [row("public", "rocket project launch checklist", seq=3, agent="bob", private=True)]
    )
    for mode in MODES:
        assert private_store.search("rocket checklist", mode=mode) == []
    assert ids(private_store.search("rocket checklist", requester="bob"))[0] == "public"


# ------------------------------------------------------------ forgetting, idempotence, order


def test_forgotten_row_vanishes_from_every_mode(store: LanceRecall) -> None:
    store.upsert([row("m-cache", "", seq=10, forgotten=True)])
    for mode in MODES:
        assert "m-cache" not in ids(store.search("redis cache eviction", mode=mode))
    assert store.count() == len(CORPUS) - 1
    assert store.max_seq() == 10


def test_forgotten_row_is_not_revived_by_an_older_replayed_row(store: LanceRecall) -> None:
    store.upsert([row("m-cache", "", seq=10, forgotten=True)])
    store.upsert([row("m-cache", CORPUS["m-cache"][0], seq=3)])
    assert "m-cache" not in ids(store.search("redis cache eviction"))
    assert store.count() == len(CORPUS) - 1


def test_forgetting_an_unknown_id_blocks_its_older_remember(store: LanceRecall) -> None:
    store.upsert([row("m-new", "", seq=20, forgotten=True)])
    store.upsert([row("m-new", "zebra crossing repainted", seq=19)])
    assert "m-new" not in ids(store.search("zebra crossing"))
    assert store.max_seq() == 20


def test_upsert_is_idempotent(store: LanceRecall) -> None:
    before = store.search("cache outage service", k=10)
    version = store._table.version
    store.upsert(corpus_rows())
    store.upsert(corpus_rows())
    assert store._table.version == version  # nothing was written
    assert store.search("cache outage service", k=10) == before
    assert store.count() == len(CORPUS)


def test_upsert_with_newer_seq_replaces_content(store: LanceRecall) -> None:
    store.upsert([row("m-dns", "Anycast routing fixed the resolver", seq=50, agent="carol")])
    assert "m-dns" not in ids(store.search("web frontend down", mode="text"))
    hits = store.search("anycast routing", mode="text")
    assert ids(hits) == ["m-dns"]
    assert hits[0]["seq"] == 50
    assert store.count() == len(CORPUS)


def test_stale_seq_does_not_overwrite_newer_row(store: LanceRecall) -> None:
    store.upsert([row("m-dns", "Anycast routing fixed the resolver", seq=50, agent="carol")])
    store.upsert([row("m-dns", "stale words from an old event", seq=40, agent="carol")])
    store.upsert([row("m-dns", "same seq is a duplicate", seq=50, agent="carol")])
    assert store.search("stale words old event", mode="text") == []
    assert store.search("duplicate", mode="text") == []
    assert ids(store.search("anycast routing"))[0] == "m-dns"
    assert store.max_seq() == 50


def test_batch_with_repeated_id_keeps_highest_seq(tmp_path: Path) -> None:
    with LanceRecall(tmp_path, HashingEmbedder()) as recall:
        recall.upsert(
            [
                row("x", "newest version wins", seq=9),
                row("x", "older version loses", seq=3),
            ]
        )
        assert recall.count() == 1
        assert ids(recall.search("newest version", mode="text")) == ["x"]
        assert recall.search("older loses", mode="text") == []


def test_upsert_rejects_row_without_seq(tmp_path: Path) -> None:
    with LanceRecall(tmp_path, HashingEmbedder()) as recall, pytest.raises(StoreError, match="seq"):
        recall.upsert([{"id": "x", "content": "no seq"}])


# ------------------------------------------------------------ persistence and maintenance


def test_max_seq_is_zero_when_empty(tmp_path: Path) -> None:
    with LanceRecall(tmp_path, HashingEmbedder()) as recall:
        assert recall.max_seq() == 0
        assert recall.count() == 0
        assert recall.search("anything") == []
        recall.optimize()
        assert recall.count() == 0


def test_max_seq_reports_highest_stored_seq(store: LanceRecall) -> None:
    assert store.max_seq() == len(CORPUS)
    store.upsert([row("m-late", "late arrival", seq=77)])
    assert store.max_seq() == 77


def test_reopening_directory_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "recall"
    with LanceRecall(path, HashingEmbedder()) as recall:
        recall.upsert(corpus_rows())
        recall.upsert([row("m-cats", "", seq=30, forgotten=True)])
        recall.upsert([row("p", "private diary entry", seq=31, agent="bob", private=True)])
        expected = recall.search("cache service outage")
    with LanceRecall(path, HashingEmbedder()) as reopened:
        assert reopened.count() == len(CORPUS)
        assert reopened.max_seq() == 31
        assert reopened.search("cache service outage") == expected
        assert "p" not in ids(reopened.search("private diary"))
        assert ids(reopened.search("private diary", requester="bob"))[0] == "p"
        # The tombstone survived: an old replay stays out.
        reopened.upsert([row("m-cats", CORPUS["m-cats"][0], seq=5)])
        assert "m-cats" not in ids(reopened.search("office cat sardines"))


def test_reopening_with_another_embedder_raises_config_error(tmp_path: Path) -> None:
    LanceRecall(tmp_path, HashingEmbedder()).close()
    with pytest.raises(ConfigError, match="rebuild"):
        LanceRecall(tmp_path, HashingEmbedder(256))


def test_optimize_keeps_results(store: LanceRecall) -> None:
    for i in range(5):
        store.upsert([row(f"extra-{i}", f"extra note number {i} about kafka", seq=100 + i)])
    before = {m: store.search("kafka cache note", mode=m) for m in MODES}
    store.optimize()
    after = {m: store.search("kafka cache note", mode=m) for m in MODES}
    assert after == before
    assert fragments(store) == 1


def test_fresh_row_is_found_by_text_right_after_upsert(store: LanceRecall) -> None:
    store.optimize()  # everything indexed; the next row is not
    store.upsert([row("m-fresh", "quokka sighting near the datacenter", seq=60)])
    assert ids(store.search("quokka", mode="text")) == ["m-fresh"]
    assert ids(store.search("quokka", mode="hybrid"))[0] == "m-fresh"


def test_automatic_optimize_bounds_fragments_and_versions(tmp_path: Path) -> None:
    with LanceRecall(
        tmp_path, HashingEmbedder(), optimize_every=4, keep_versions=timedelta(0)
    ) as recall:
        for i in range(12):
            recall.upsert([row(f"r{i}", f"row number {i} about topic {i % 3}", seq=i + 1)])
        assert fragments(recall) <= 4
        assert len(recall._table.list_versions()) <= 6
        assert recall.count() == 12
        assert ids(recall.search("row number 7", mode="text"))[0] == "r7"


def test_lancedb_failure_becomes_store_error(
    store: LanceRecall, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store._table, "add", boom)
    with pytest.raises(StoreError, match="disk on fire"):
        store.upsert([row("m-x", "never written", seq=99)])
    # The failed write left the in-memory state untouched.
    assert store.max_seq() == len(CORPUS)
    assert store.search("never written", mode="text") == []


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    recall = LanceRecall(tmp_path, HashingEmbedder())
    recall.close()
    recall.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        recall.search("x")
    with pytest.raises(StoreError):
        recall.upsert([row("a", "b", seq=1)])


def test_many_rows_in_one_batch_are_all_searchable(tmp_path: Path) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    rows = [
        row(f"b{i}", f"{words[i % 8]} {words[(i * 3) % 8]} item {i}", seq=i + 1, agent=f"a{i % 5}")
        for i in range(1500)
    ]
    with LanceRecall(tmp_path, HashingEmbedder()) as recall:
        recall.upsert(rows)
        assert recall.count() == 1500
        hits = recall.search("item 1234", mode="text", k=3)
        assert ids(hits)[0] == "b1234"
        hits = recall.search("alpha delta", agent="a3", k=20)
        assert hits
        assert {h["agent"] for h in hits} == {"a3"}


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.seen.extend(texts)
        return super().embed(texts)


def test_metadata_only_change_reuses_stored_vector(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with LanceRecall(tmp_path, embedder) as recall:
        recall.upsert([row("a", "vector reuse check", seq=1, importance=0.1)])
        embedder.seen.clear()
        recall.upsert([row("a", "vector reuse check", seq=2, importance=0.9, tags=["hot"])])
        assert embedder.seen == []
        (hit,) = recall.search("vector reuse check", tags=["hot"], mode="vector")
        assert hit["importance"] == 0.9
        assert hit["score"] == pytest.approx(1.0, abs=1e-5)


def test_concurrent_searches_during_upserts_stay_consistent(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with LanceRecall(tmp_path, HashingEmbedder(), optimize_every=5) as recall:
        recall.upsert([row("s", "secret thread note", seq=1, agent="alice", private=True)])
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    for mode in MODES:
                        hits = recall.search("thread note secret", mode=mode)
                        assert "s" not in ids(hits)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for i in range(20):
            recall.upsert([row(f"t{i}", f"thread note {i}", seq=i + 2, agent="bob")])
        stop.set()
        for t in threads:
            t.join()
        assert not errors
        assert recall.count() == 21


def test_failed_automatic_optimize_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LanceRecall(tmp_path, HashingEmbedder(), optimize_every=1) as recall:

        def boom(*args: object, **kwargs: object) -> None:
            raise OSError("no space left")

        monkeypatch.setattr(recall._table, "optimize", boom)
        recall.upsert([row("a", "kept despite maintenance failure", seq=1)])
        assert ids(recall.search("maintenance failure", mode="text")) == ["a"]
        with pytest.raises(StoreError, match="no space left"):
            recall.optimize()


# --------------------------------------------------------------------------- erasure


def test_scrub_leaves_no_file_holding_the_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "recall"
    recall = LanceRecall(path, HashingEmbedder(), optimize_every=2)
    recall.upsert(corpus_rows())
    for i in range(6):  # several fragments, index refreshes and versions
        recall.upsert([row(f"x{i}", f"quillfeather note {i} about the cat", seq=100 + i)])
    recall.upsert([row("gone", "Quillfeather Marchbanks keeps bees", seq=200)])
    recall.optimize()
    kept_before = ids(recall.search("the cat", k=20, mode="text"))

    def holding(word: bytes) -> list[Path]:
        return [p for p in path.rglob("*") if p.is_file() and word in p.read_bytes().lower()]

    assert holding(b"marchbanks")
    assert recall.scrub(["gone", "x0", "x1", "x2", "x3", "x4", "x5"]) == 7

    assert holding(b"marchbanks") == [] and holding(b"quillfeather") == []
    assert ids(recall.search("bees", k=5, mode="text")) == []
    after = ids(recall.search("the cat", k=20, mode="text"))
    assert after == [i for i in kept_before if not i.startswith("x")] and after
    recall.upsert([row("new", "fresh bees after the scrub", seq=300)])  # still writable
    assert ids(recall.search("bees", k=5, mode="text")) == ["new"]
    recall.close()
    with LanceRecall(path, HashingEmbedder()) as reopened:  # schema and embedder kept
        assert reopened.count() == len(CORPUS) + 1
