"""Embedders: turn memory text into vectors for the recall projection.

The default, :class:`HashingEmbedder`, needs no model and no network: it is a
deterministic feature-hashing bag of words plus character 3-grams, so the same
text gives the same vector in every process and on every machine. It is
*lexical* (texts that share words or word pieces end up close), not semantic.
Plug a real model with :class:`SentenceTransformerEmbedder` (local model) or
:class:`OpenAICompatibleEmbedder` (any ``/v1/embeddings`` endpoint), usually
via :func:`load_embedder` and the ``SWARM_EMBEDDER`` setting.

Every embedder returns ``float32`` arrays of shape ``(n, dim)`` with
L2-normalised rows (all-zero rows for texts with nothing to embed), so a dot
product is a cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from swarm.errors import ConfigError, StoreError

__all__ = [
    "EMBEDDER_ENV",
    "Embedder",
    "HashingEmbedder",
    "OpenAICompatibleEmbedder",
    "SentenceTransformerEmbedder",
    "load_embedder",
    "normalize_rows",
]

#: The environment variable the service reads to choose its embedder (a
#: :func:`load_embedder` spec). Unset means ``"hashing"``.
EMBEDDER_ENV = "SWARM_EMBEDDER"

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised ``float32`` vectors."""

    @property
    def name(self) -> str:
        """Stable identifier stored with the projection, e.g. ``hashing-v1-384``."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed ``texts`` into an array of shape ``(len(texts), dim)``."""
        ...


def normalize_rows(matrix: npt.ArrayLike) -> Matrix:
    """Return ``matrix`` as C-contiguous float32 with unit-length rows (zero rows stay zero)."""
    out = np.array(matrix, dtype=np.float32, copy=True, order="C")
    if out.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {out.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    nonzero = norms > 0
    out[nonzero] /= norms[nonzero, None]
    return out


# --------------------------------------------------------------------------- hashing

_TOKEN_RE = re.compile(r"\w+")
_WORD_WEIGHT = 1.0
_GRAM_WEIGHT = 0.5
_CHUNK = 128  # texts per vectorised step
_CACHE_LIMIT = 2_000_000  # memoised features before the tables are reset
# Very common English words carry no topic; hashing them would make every pair of
# sentences look alike. They are dropped unless a text consists only of them.
_STOP_WORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have
    he her him his i if in into is it its me my no not of on or our she so than that
    the their them then there these they this those to too us was we were what when
    where which who will with would you your""".split()  # noqa: SIM905
)


def _feature_hash(feature: str) -> int:
    """A stable 64-bit hash of a feature string (never Python's salted ``hash()``)."""
    return int.from_bytes(
        hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little"
    )


class HashingEmbedder:
    """Offline default: signed feature hashing of words and character 3-grams.

    Each lower-cased word token is a feature (weight 1), and so is every
    character 3-gram of the word padded with one space on each side (weight
    0.5), which lets ``deploy``/``deployment`` or small typos still overlap. A
    feature's count ``c`` within the text contributes ``weight * (1 + ln c)``
    (sublinear tf) to the bucket ``h mod dim`` with the sign taken from the top
    bit of ``h``, where ``h`` is a 64-bit BLAKE2b hash of the feature. Rows are
    L2-normalised; a text without word characters gives a zero vector.

    Per-word features are memoised, and a whole batch is assembled with a few
    numpy calls, so a short text costs a few tens of microseconds.
    """

    VERSION = "v1"

    def __init__(self, dim: int = 384) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 8:
            raise ConfigError(f"hashing embedder dimension must be an integer >= 8, got {dim!r}")
        self._dim = dim
        self._name = f"hashing-{self.VERSION}-{dim}"
        self._guard = threading.Lock()  # the memo tables are shared by all callers
        self._reset()

    def _reset(self) -> None:
        # Memo tables. Feature ids are dense and process-local: they only group
        # equal features, the output depends on the features' hashes alone.
        self._feature_ids: dict[str, int] = {}
        self._buckets: list[int] = []
        self._weights: list[float] = []  # signed
        self._word_ids: dict[str, int] = {}
        self._word_feats: list[int] = []  # feature ids of all words, concatenated
        self._word_offsets: list[int] = [0]
        self._np_tables: tuple[npt.NDArray[np.int64], ...] = ()
        self._np_weights: npt.NDArray[np.float64] = np.zeros(0)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim})"

    def _feature(self, feature: str, weight: float) -> int:
        fid = self._feature_ids.get(feature)
        if fid is None:
            h = _feature_hash(feature)
            fid = self._feature_ids[feature] = len(self._buckets)
            self._buckets.append(h % self._dim)
            self._weights.append(-weight if h >> 63 else weight)
        return fid

    def _word_id(self, word: str) -> int:
        wid = self._word_ids.get(word)
        return self._add_word(word) if wid is None else wid

    def _add_word(self, word: str) -> int:
        padded = f" {word} "
        self._word_feats.append(self._feature(f"w\x1f{word}", _WORD_WEIGHT))
        for i in range(len(padded) - 2):
            self._word_feats.append(self._feature(f"g\x1f{padded[i : i + 3]}", _GRAM_WEIGHT))
        self._word_offsets.append(len(self._word_feats))
        wid = self._word_ids[word] = len(self._word_offsets) - 2
        return wid

    def _tables(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """numpy copies of the memo tables: word offsets, word features, buckets."""
        if not self._np_tables or len(self._np_tables[0]) != len(self._word_offsets):
            self._np_tables = (
                np.asarray(self._word_offsets, dtype=np.int64),
                np.asarray(self._word_feats, dtype=np.int64),
                np.asarray(self._buckets, dtype=np.int64),
            )
            self._np_weights = np.asarray(self._weights, dtype=np.float64)
        offsets, feats, buckets = self._np_tables
        return offsets, feats, buckets

    def embed(self, texts: Sequence[str]) -> Matrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        with self._guard:
            if len(self._buckets) > _CACHE_LIMIT:
                self._reset()
            if len(texts) <= _CHUNK:
                return self._embed_chunk(texts)
            # Small chunks keep the sort in cache: ~2x faster than one big batch.
            chunks = [
                self._embed_chunk(texts[i : i + _CHUNK]) for i in range(0, len(texts), _CHUNK)
            ]
        return np.concatenate(chunks)

    def _embed_chunk(self, texts: Sequence[str]) -> Matrix:
        n = len(texts)
        dim = self._dim
        word_ids = self._word_ids
        stop = _STOP_WORDS
        wids: list[int] = []
        lengths: list[int] = []
        for text in texts:
            words = _TOKEN_RE.findall(text.lower())
            content = [w for w in words if w not in stop] or words
            ids = [word_ids.get(w, -1) for w in content]
            if -1 in ids:
                ids = [i if i >= 0 else self._word_id(w) for i, w in zip(ids, content, strict=True)]
            wids.extend(ids)
            lengths.append(len(ids))
        out = np.zeros(n * dim, dtype=np.float64)
        if wids:
            offsets, feats, buckets = self._tables()
            w = np.asarray(wids, dtype=np.int64)
            starts = offsets[w]
            sizes = offsets[w + 1] - starts
            ends = np.cumsum(sizes)
            # index of every feature of every word occurrence, in order
            pos = np.repeat(starts - (ends - sizes), sizes) + np.arange(ends[-1])
            rows = np.repeat(np.repeat(np.arange(n, dtype=np.int64), lengths), sizes)
            width = len(buckets)
            keys, counts = np.unique(rows * width + feats[pos], return_counts=True)
            key_rows = keys // width
            key_feats = keys - key_rows * width
            values = self._np_weights[key_feats] * (1.0 + np.log(counts))
            out += np.bincount(
                key_rows * dim + buckets[key_feats], weights=values, minlength=n * dim
            )
        return normalize_rows(out.reshape(n, dim))


# --------------------------------------------------------------------------- OpenAI


class OpenAICompatibleEmbedder:
    """Embeddings from an OpenAI-compatible ``POST /v1/embeddings`` endpoint.

    ``base_url`` is the server root (``http://localhost:8080``) or its ``/v1``
    path. ``api_key`` defaults to ``SWARM_EMBEDDER_API_KEY`` then
    ``OPENAI_API_KEY`` from the environment; none is sent if neither is set.
    ``dim``, if not given, is learnt from the first response (or a one-word
    probe request when ``dim`` is read first). Uses only the standard library.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dim: int | None = None,
        *,
        batch_size: int = 256,
        timeout: float = 60.0,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"embedding endpoint must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ConfigError("embedding endpoint needs a model name")
        if dim is not None and dim < 1:
            raise ConfigError(f"embedding dimension must be positive, got {dim}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        root = base_url.rstrip("/")
        self.url = root + ("/embeddings" if root.endswith("/v1") else "/v1/embeddings")
        self.model = model
        self._api_key = (
            api_key or os.environ.get("SWARM_EMBEDDER_API_KEY") or os.environ.get("OPENAI_API_KEY")
        )
        self._dim = dim
        self._batch_size = batch_size
        self._timeout = timeout

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder(url={self.url!r}, model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> Matrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._request(list(texts[i : i + self._batch_size]))
            for i in range(0, len(texts), self._batch_size)
        ]
        return normalize_rows(np.concatenate(parts, axis=0))

    def _request(self, batch: list[str]) -> Matrix:
        # Some servers reject empty strings; an empty text embeds to a zero row.
        send = [(i, t) for i, t in enumerate(batch) if t.strip()]
        vectors: list[list[float]] = []
        if send:
            vectors = self._post([t for _, t in send])
            if len(vectors) != len(send):
                raise StoreError(
                    f"embedding endpoint {self.url} returned {len(vectors)} vectors "
                    f"for {len(send)} inputs"
                )
        width = len(vectors[0]) if vectors else (self._dim or 0)
        if width == 0:
            width = len(self._post(["dimension probe"])[0])
        if self._dim is None:
            self._dim = width
        elif width != self._dim:
            raise StoreError(
                f"embedding endpoint {self.url} returned {width}-d vectors, expected {self._dim}"
            )
        out = np.zeros((len(batch), width), dtype=np.float32)
        for (i, _), vec in zip(send, vectors, strict=True):
            out[i] = vec
        return out

    def _post(self, inputs: list[str]) -> list[list[float]]:
        body = json.dumps({"model": self.model, "input": inputs}).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload: Any = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise StoreError(
                f"embedding endpoint {self.url} answered HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError(f"embedding endpoint {self.url} is unreachable: {exc}") from exc
        except ValueError as exc:
            raise StoreError(f"embedding endpoint {self.url} returned invalid JSON") from exc
        try:
            data = sorted(payload["data"], key=lambda item: int(item.get("index", 0)))
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"embedding endpoint {self.url} returned an unexpected response shape"
            ) from exc
        if any(len(v) != len(vectors[0]) for v in vectors):
            raise StoreError(f"embedding endpoint {self.url} returned ragged vectors")
        return vectors


# --------------------------------------------------------------------------- sentence-transformers


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (the package is an optional extra).

    ``model_name_or_path`` should be a local directory: the model is loaded with
    ``local_files_only`` so nothing is downloaded at run time.
    """

    def __init__(self, model_name_or_path: str, *, device: str | None = None) -> None:
        if not model_name_or_path:
            raise ConfigError("sentence-transformers embedder needs a model name or path")
        try:
            from sentence_transformers import (  # type: ignore[import-not-found,unused-ignore] # noqa: PLC0415
                SentenceTransformer,
            )
        except ImportError as exc:
            raise ConfigError(
                "the sentence-transformers embedder needs the 'sentence-transformers' package; "
                "install it (pip install sentence-transformers) or use SWARM_EMBEDDER=hashing"
            ) from exc
        try:
            self._model: Any = SentenceTransformer(
                model_name_or_path, device=device, local_files_only=True
            )
        except Exception as exc:
            raise ConfigError(
                f"could not load sentence-transformers model {model_name_or_path!r}: {exc}"
            ) from exc
        dim = self._model.get_sentence_embedding_dimension()
        if not dim:
            raise ConfigError(f"model {model_name_or_path!r} does not report its dimension")
        self._dim = int(dim)
        self._name = f"st:{os.path.basename(model_name_or_path.rstrip('/'))}-{self._dim}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return normalize_rows(vectors)


# --------------------------------------------------------------------------- spec parsing


def load_embedder(spec: str) -> Embedder:
    """Build an embedder from a spec string (the ``SWARM_EMBEDDER`` value).

    * ``hashing`` or ``hashing:<dim>`` — the offline default (384 dimensions);
    * ``openai:<base_url>#<model>`` — an OpenAI-compatible endpoint;
    * ``st:<model path>`` — a local sentence-transformers model.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"embedder spec must be a string, got {type(spec).__name__}")
    text = spec.strip()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "hashing":
        if not sep:
            return HashingEmbedder()
        try:
            dim = int(rest)
        except ValueError:
            raise ConfigError(
                f"bad embedder spec {spec!r}: 'hashing:<dim>' needs an integer"
            ) from None
        return HashingEmbedder(dim)
    if scheme == "openai":
        base_url, hash_sep, model = rest.rpartition("#")
        if not hash_sep or not base_url.strip() or not model.strip():
            raise ConfigError(f"bad embedder spec {spec!r}: expected 'openai:<base_url>#<model>'")
        return OpenAICompatibleEmbedder(base_url.strip(), model.strip())
    if scheme == "st":
        if not rest.strip():
            raise ConfigError(f"bad embedder spec {spec!r}: expected 'st:<model path>'")
        return SentenceTransformerEmbedder(rest.strip())
    raise ConfigError(
        f"unknown embedder spec {spec!r}: use 'hashing', 'hashing:<dim>', "
        "'openai:<base_url>#<model>' or 'st:<model path>'"
    )
