"""Embedders: the offline hashing default, the OpenAI-compatible client, spec parsing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swarm.embed import (
    Embedder,
    HashingEmbedder,
    OpenAICompatibleEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
)
from swarm.errors import ConfigError, StoreError

ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "The deploy of the billing service failed on staging",
    "Postgres migration timed out during the nightly batch",
    "",
    "!!! ???",
    "Café naïve résumé — unicode words",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# --------------------------------------------------------------------------- hashing


def test_embed_returns_requested_dimension_and_float32() -> None:
    for dim in (64, 384):
        vectors = HashingEmbedder(dim).embed(TEXTS)
        assert vectors.shape == (len(TEXTS), dim)
        assert vectors.dtype == np.float32


def test_embed_normalises_non_empty_rows_to_unit_length() -> None:
    vectors = HashingEmbedder().embed(TEXTS)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[[0, 1, 4]], 1.0, atol=1e-5)


def test_embed_empty_or_symbol_only_text_gives_zero_vector() -> None:
    vectors = HashingEmbedder().embed(["", "   ", "!!! ???"])
    assert not vectors.any()
    assert np.isfinite(vectors).all()


def test_embed_empty_batch_gives_empty_matrix() -> None:
    assert HashingEmbedder(32).embed([]).shape == (0, 32)


def test_embed_is_deterministic_across_instances_and_batches() -> None:
    first = HashingEmbedder().embed(TEXTS)
    other = HashingEmbedder()
    other.embed(["warm the caches with unrelated words first"])
    singles = np.vstack([other.embed([t]) for t in reversed(TEXTS)])[::-1]
    assert np.array_equal(first, singles)


def test_embed_is_identical_in_another_process_with_other_hash_seed() -> None:
    code = (
        "import sys, hashlib, json; from swarm.embed import HashingEmbedder; "
        "texts = json.loads(sys.argv[1]); "
        "print(hashlib.sha256(HashingEmbedder().embed(texts).tobytes()).hexdigest())"
    )
    digests = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(TEXTS)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    digests.add(hashlib.sha256(HashingEmbedder().embed(TEXTS).tobytes()).hexdigest())
    assert len(digests) == 1


def test_embed_similar_texts_are_closer_than_unrelated_ones() -> None:
    a, b, c = HashingEmbedder().embed(
        [
            "the deployment failed on the staging cluster",
            "deploy failure in staging",
            "my cat enjoys sardines on sunny afternoons",
        ]
    )
    assert cosine(a, b) > 0.3
    assert cosine(a, b) > cosine(a, c) + 0.2


def test_embed_is_case_insensitive() -> None:
    a, b = HashingEmbedder().embed(["Redis Cache Eviction", "redis cache eviction"])
    assert np.allclose(a, b)


def test_embed_repeated_words_count_sublinearly() -> None:
    once, many = HashingEmbedder().embed(["outage", " ".join(["outage"] * 50) + " minor"])
    # tf is 1 + ln(count): fifty repeats do not drown the one other word.
    minor = HashingEmbedder().embed(["minor"])[0]
    assert cosine(many, minor) > 0.15
    assert cosine(once, many) > 0.8


def test_embed_stop_word_only_text_still_has_a_vector() -> None:
    assert HashingEmbedder().embed(["to be or not to be"]).any()


def test_hashing_embedder_rejects_tiny_dimension() -> None:
    with pytest.raises(ConfigError):
        HashingEmbedder(2)


def test_hashing_embedder_name_records_version_and_dimension() -> None:
    assert HashingEmbedder().name == "hashing-v1-384"
    assert HashingEmbedder(256).name == "hashing-v1-256"
    assert isinstance(HashingEmbedder(), Embedder)


def test_embed_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        HashingEmbedder().embed("not a list")


# --------------------------------------------------------------------------- load_embedder


def test_load_embedder_parses_hashing_specs() -> None:
    assert load_embedder("hashing").dim == 384
    assert load_embedder("hashing:256").dim == 256
    assert load_embedder(" hashing:64 ").name == "hashing-v1-64"


def test_load_embedder_parses_openai_spec() -> None:
    embedder = load_embedder("openai:http://127.0.0.1:9/v1#text-embed-small")
    assert isinstance(embedder, OpenAICompatibleEmbedder)
    assert embedder.url == "http://127.0.0.1:9/v1/embeddings"
    assert embedder.model == "text-embed-small"


@pytest.mark.parametrize(
    "spec",
    ["", "nope", "hashing:abc", "hashing:2", "openai:http://x", "openai:#m", "st:", "st"],
)
def test_load_embedder_rejects_bad_spec(spec: str) -> None:
    with pytest.raises(ConfigError):
        load_embedder(spec)


def test_sentence_transformer_without_package_raises_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match="sentence-transformers"):
        SentenceTransformerEmbedder("/models/minilm")
    with pytest.raises(ConfigError):
        load_embedder("st:/models/minilm")


# --------------------------------------------------------------------------- OpenAI-compatible


class _FakeEmbeddings(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    headers_seen: list[dict[str, str]] = []
    fail = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(dict(self.headers))
        if self.path != "/v1/embeddings" or type(self).fail:
            self.send_response(500 if type(self).fail else 404)
            self.end_headers()
            return
        # Unnormalised, deterministic 4-d vectors; returned out of order on purpose.
        data = [
            {"index": i, "embedding": [float(len(t)), 1.0, float(t.count("a")), 0.0]}
            for i, t in enumerate(body["input"])
        ]
        payload = json.dumps({"data": list(reversed(data)), "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _FakeEmbeddings.requests = []
    _FakeEmbeddings.headers_seen = []
    _FakeEmbeddings.fail = False
    server = HTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_openai_embedder_posts_batches_and_normalises(endpoint: str) -> None:
    embedder = OpenAICompatibleEmbedder(endpoint, "tiny", api_key="sk-test", batch_size=2)
    vectors = embedder.embed(["a", "banana", "", "cab"])
    assert vectors.shape == (4, 4)
    assert embedder.dim == 4
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0)
    assert not vectors[2].any()  # empty text is not sent, gives a zero row
    expected = np.array([6.0, 1.0, 3.0, 0.0]) / np.linalg.norm([6.0, 1.0, 3.0, 0.0])
    assert np.allclose(vectors[1], expected, atol=1e-6)
    assert [r["input"] for r in _FakeEmbeddings.requests] == [["a", "banana"], ["cab"]]
    assert all(r["model"] == "tiny" for r in _FakeEmbeddings.requests)
    assert _FakeEmbeddings.headers_seen[0]["Authorization"] == "Bearer sk-test"


def test_openai_embedder_probes_dimension_when_read_first(endpoint: str) -> None:
    embedder = load_embedder(f"openai:{endpoint}#tiny")
    assert embedder.dim == 4
    assert embedder.name == "openai:tiny"


def test_openai_embedder_http_error_becomes_store_error(endpoint: str) -> None:
    _FakeEmbeddings.fail = True
    with pytest.raises(StoreError, match="HTTP 500"):
        OpenAICompatibleEmbedder(endpoint, "tiny", dim=4).embed(["x"])


def test_openai_embedder_unreachable_endpoint_becomes_store_error() -> None:
    embedder = OpenAICompatibleEmbedder("http://127.0.0.1:9", "tiny", dim=4, timeout=2)
    with pytest.raises(StoreError, match="unreachable"):
        embedder.embed(["x"])


def test_openai_embedder_rejects_non_http_url() -> None:
    with pytest.raises(ConfigError):
        OpenAICompatibleEmbedder("ftp://example", "m")
