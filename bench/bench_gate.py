"""Gate benchmark: what the safety laws cost the gate, in one process, no I/O.

Usage::

    python bench/bench_gate.py [--events 20000] [--json] [--seed 7] [--rounds 3]
                               [--private-rate 0.02] [--target 0.70]

Builds ``--events`` proposals in memory, as SwarmClient would publish them
(encoded bytes, one Automerge change each, written with :func:`swarm.crdt.author`):
70% ``memory.remembered`` with synthetic texts from the shared vocabulary, 20%
``memory.updated`` of earlier memories (content, tags or importance), 10%
``memory.reinforced``; about ``--private-rate`` of the remembered/updated ones
carry an email address or a payment card number, so the default laws reject them.
Every writer builds on the memory's accepted history, as a client does.

Then, in the same run, every proposal goes through ``Gate.parse`` + ``Gate.judge``
with per-memory :class:`MemoryHistory` kept as the gate keeps them (accepted
changes applied, event seqs recorded):

1. gate, no laws        ``LawSet([])``: the floor; events/s
2. gate, default laws   ``swarm.laws.default_laws()``; events/s and the ratio
                        (2)/(1). Target: the laws cost under 30% of the gate's
                        throughput, i.e. ratio >= ``--target`` (PASS/FAIL).
                        A gate with one always-passing law shows what the law
                        mechanism (results, verdict) costs on its own.
3. per law              each law's ``check()`` alone over the same ``Proposal``
                        objects (built once), in µs per event, and how many it
                        finds in violation. One law of every kind that
                        ``swarm.laws.registry`` knows (if present; sample params)
                        is timed too, marked "registry". Each private-data
                        detector kind (``detectors.KINDS``) alone is timed as well.
4. gate pieces          ``codec.decode_proposal``, the Automerge apply and the
                        state extraction (before + after) per event, timed on
                        their own; the rest of parse + judge is the remainder.

(1), (2), the no-op gate and (4) run ``--rounds`` times (fewer if a round takes
long); within a round they take turns every 500 events, each with its own
histories, so load from other processes on the machine falls on all of them
alike. The best round of each counts. The standalone law timings (3) run with
hot caches, so they can be a little cheaper than the same work inside the gate.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CAUSES,
    EVENTS,
    OUTCOMES,
    SYSTEMS,
    machine_info,
    metric_table,
)
from swarm.codec import decode_proposal, encode
from swarm.crdt import MemoryDoc, author, new_actor
from swarm.errors import Rejected
from swarm.events import MemoryEvent, MemoryReinforced, MemoryRemembered, MemoryUpdated, utcnow
from swarm.gate import Accepted, Gate, MemoryHistory
from swarm.keystore import KeyEntry, Keystore
from swarm.laws import Law, LawSet, Outcome, Proposal, default_laws
from swarm.laws.base import Action
from swarm.sealing import seal

SWARM = "bench-gate"
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
KINDS = ("fact", "decision", "observation", "task")
TAGS = ("incident", "infra", "db", "frontend", "security", "cost", "oncall", "perf")
AGENTS = tuple(f"agent-{i:02d}" for i in range(16))
INSTANCES = ("i0", "i1")
DOMAINS = ("example.com", "corp.example.org", "mail.example.net", "example.co.uk")
HOT = 200  # updates and reinforcements favour the most recent memories


# -- proposals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One proposal as it arrives at the gate: bytes and the inbox it came from."""

    raw: bytes
    agent: str
    instance: str
    type: str
    leaky: bool  # carries private data: the default laws must reject it


@dataclass
class Memory:
    id: str
    agent: str
    instance: str
    private: bool
    saved: bytes  # the accepted history (saved: a loaded document takes ~16 KB)
    key: KeyEntry | None = None  # sealed content (build_items with a keystore)
    text: str = ""  # the content, in plain text


def clean_text(rng: random.Random) -> str:
    text = (
        f"The {rng.choice(SYSTEMS)} {rng.choice(EVENTS)} {rng.choice(CAUSES)}; "
        f"{rng.choice(OUTCOMES)}."
    )
    extra = rng.random()
    if extra < 0.3:
        text += f" Reported by {rng.choice(PEOPLE)} in ticket {rng.randint(100, 99999)}."
    elif extra < 0.45:
        text += f" It started at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} utc."
    elif extra < 0.55:
        text += f" The p99 went from {rng.randint(20, 90)} ms to {rng.randint(200, 900)} ms."
    return text


def _card(rng: random.Random) -> str:
    """A Luhn-valid 16-digit Visa-shaped number, grouped as people write them."""
    body = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for i, digit in enumerate(reversed(body)):  # the check digit will sit right of these
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    digits = "".join(map(str, body)) + str((10 - total % 10) % 10)
    sep = rng.choice((" ", "-", ""))
    return sep.join(digits[k : k + 4] for k in range(0, 16, 4))


def leaky_text(rng: random.Random) -> str:
    base = clean_text(rng)
    if rng.random() < 0.6:
        email = f"{rng.choice(PEOPLE)}.{rng.choice(PEOPLE)}@{rng.choice(DOMAINS)}"
        return f"{base} Ask {email} for the credentials."
    return f"{base} The vendor was paid with card {_card(rng)} for the upgrade."


KEY_CHUNK = 256  # keys issued per keystore transaction (per agent)


class _Keys:
    """Keys for new memories, issued ahead by the keystore in chunks per agent (one
    transaction each: the keystore syncs every commit). Sealed mode names memories
    after their key pool (``mem-<seed>-<agent>-<n>``); a chunk's unused tail keeps
    keys for memories that never come, as an SDK that crashed before publishing."""

    def __init__(self, keys: Keystore, seed: int) -> None:
        self.keys = keys
        self.seed = seed
        self.pools: dict[str, list[KeyEntry]] = {}
        self.issued: dict[str, int] = {}

    def next(self, agent: str) -> KeyEntry:
        pool = self.pools.setdefault(agent, [])
        if not pool:
            start = self.issued.get(agent, 0)
            mids = [f"mem-{self.seed}-{agent}-{start + k:06d}" for k in range(KEY_CHUNK)]
            pool.extend(reversed(self.keys.issue(mids, agent=agent)))
            self.issued[agent] = start + KEY_CHUNK
        return pool.pop()


def build_items(n: int, seed: int, private_rate: float, keys: Keystore | None = None) -> list[Item]:
    """``n`` proposals: 70% remembered, 20% updated, 10% reinforced.

    With ``keys`` (the service's keystore), every memory gets a key issued by it and
    its content is sealed (``swarm.sealing``), as the SDK does; the proposals are the
    same ones (the same random draws), under other memory ids. Without, plain text.
    """
    rng = random.Random(seed)
    writers = [(a, i) for a in AGENTS for i in INSTANCES]
    actors = {w: new_actor(SWARM, *w) for w in writers}
    memories: list[Memory] = []
    items: list[Item] = []
    pools = _Keys(keys, seed) if keys is not None else None

    def pick_memory() -> Memory:
        if rng.random() < 0.5:
            return rng.choice(memories[-HOT:])
        return rng.choice(memories)

    def pick_writer(mem: Memory) -> tuple[str, str]:
        if mem.private or rng.random() < 0.7:
            return mem.agent, mem.instance
        return rng.choice(writers)

    def event_bytes(cls: type[MemoryEvent], w: tuple[str, str], actor: bytes, mid: str,
                    change: bytes) -> bytes:  # fmt: skip
        event = cls(
            id=f"evt-{seed}-{len(items):08d}", swarm=SWARM, agent=w[0], instance=w[1],
            actor=actor.hex(), memory_id=mid, change=change,
        )  # fmt: skip
        return encode(event)

    def sealed(text: str, key: KeyEntry | None) -> str:
        if key is None:
            return text
        return seal(text, key_id=key.key_id, key=key.key, memory_id=key.memory_id)

    while len(items) < n:
        roll = rng.random()
        if roll < 0.7 or len(memories) < 10:
            w = rng.choice(writers)
            key = pools.next(w[0]) if pools is not None else None
            mid = key.memory_id if key is not None else f"mem-{seed}-{len(items):08d}"
            leaky = rng.random() < private_rate
            private = rng.random() < 0.1
            text = leaky_text(rng) if leaky else clean_text(rng)
            with author(MemoryDoc(), actors[w]) as (edit, out):
                edit.create(
                    memory_id=mid, content=sealed(text, key),
                    kind=rng.choice(KINDS), tags=rng.sample(TAGS, rng.randint(0, 3)),
                    importance=round(rng.random(), 3), agent=w[0], instance=w[1],
                    private=private, created_at=utcnow().isoformat(),
                )  # fmt: skip
            raw = event_bytes(MemoryRemembered, w, actors[w], mid, out[0])
            items.append(Item(raw, w[0], w[1], MemoryRemembered.type_name, leaky))
            if not leaky:  # a rejected memory never exists: nothing builds on it
                memories.append(Memory(mid, w[0], w[1], private, out[1], key, text))
            continue
        mem = pick_memory()
        w = pick_writer(mem)
        text = mem.text
        if roll < 0.9:
            cls: type[MemoryEvent] = MemoryUpdated
            leaky = rng.random() < private_rate
            # A leaky update comes from a fresh writer process (a new actor of the same
            # instance): when a gate without laws accepts it, no later change by the
            # usual actor collides with its sequence number.
            actor = new_actor(SWARM, *w) if leaky else actors[w]
            what = rng.random()
            if leaky or what < 0.6:
                text = leaky_text(rng) if leaky else clean_text(rng)
                if mem.key is not None and text == mem.text:
                    continue  # the same text: no change (sealed, it would look new)
            with author(MemoryDoc.load(mem.saved), actor) as (edit, out):
                if leaky or what < 0.6:
                    edit.set_content(sealed(text, mem.key))
                elif what < 0.85:
                    edit.add_tag(rng.choice(TAGS))
                else:
                    edit.set_importance(round(rng.random(), 3))
        else:
            cls, leaky, actor = MemoryReinforced, False, actors[w]
            with author(MemoryDoc.load(mem.saved), actor) as (edit, out):
                edit.reinforce()
        if not out:  # the edit changed nothing (same text or importance): no event
            continue
        raw = event_bytes(cls, w, actor, mem.id, out[0])
        items.append(Item(raw, w[0], w[1], cls.type_name, leaky))
        if not leaky:
            mem.saved = out[1]
            mem.text = text
    return items


# -- the gate, as the gatekeeper drives it ---------------------------------------------------

BLOCK = 500  # events per turn when the gate configurations take turns
GATE_BUDGET_S = 20.0  # no new round of gate runs after this long (at least one round runs)
TIMING_BUDGET_S = 1.0  # no new repeat of a standalone timing after this long


@dataclass
class GateRun:
    """One gate working through the items, with its own histories, as the gatekeeper."""

    gate: Gate
    histories: dict[str, MemoryHistory] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)
    accepted: int = 0
    seconds: float = 0.0

    def step(self, items: Sequence[Item], lo: int, hi: int) -> None:
        """Items ``lo:hi`` through parse + judge; accepted changes advance the history."""
        gate, histories, refused = self.gate, self.histories, self.refused
        seq = self.accepted
        t0 = time.perf_counter()
        for i in range(lo, hi):
            item = items[i]
            try:
                event = gate.parse(item.raw, item.agent, item.instance)
                history = histories.get(event.memory_id)
                if history is None:
                    history = histories[event.memory_id] = MemoryHistory()
                decision = gate.judge(event, history)
            except Rejected as err:
                refused.append((i, err.check))
                continue
            if isinstance(decision, Accepted):
                seq += 1
                history.doc = decision.doc
                history.event_seqs[event.id] = seq
        self.seconds += time.perf_counter() - t0
        self.accepted = seq


@dataclass
class PiecesRun:
    """The gate's heavy pieces alone: decode, Automerge apply, state extraction.

    The histories advance on the items the gate should accept (the ones without
    private data), so every piece sees what it sees inside the gate.
    """

    items: Sequence[Item]
    histories: dict[str, MemoryDoc] = field(default_factory=dict)
    decode_s: float = 0.0
    apply_s: float = 0.0
    state_s: float = 0.0

    def step(self, items: Sequence[Item], lo: int, hi: int) -> None:
        histories = self.histories
        clock = time.perf_counter
        decode_s = apply_s = state_s = 0.0
        for i in range(lo, hi):
            item = items[i]
            t0 = clock()
            event = decode_proposal(item.raw)
            t1 = clock()
            base = histories.get(event.memory_id) or MemoryDoc()
            t2 = clock()
            doc, _ = base.apply(event.change, strict=True)
            t3 = clock()
            base.state()
            doc.state()
            t4 = clock()
            decode_s += t1 - t0
            apply_s += t3 - t2
            state_s += t4 - t3
            if not item.leaky:
                histories[event.memory_id] = doc
        self.decode_s += decode_s
        self.apply_s += apply_s
        self.state_s += state_s

    @property
    def seconds(self) -> float:
        return self.decode_s + self.apply_s + self.state_s


@dataclass(frozen=True)
class NoopLaw:
    """A law that always passes: what the law mechanism itself costs per law."""

    id: str = "bench-noop"
    description: str = "always passes"
    action: Action = "reject"

    def check(self, proposal: Proposal) -> Outcome:
        return Outcome.passed()

    def params(self) -> dict[str, object]:
        return {}


def gate_rounds(items: Sequence[Item], laws: LawSet, rounds: int) -> dict[str, Any]:
    """The gate with no laws, one no-op law and ``laws``, and its pieces alone.

    Within a round they take turns every ``BLOCK`` events (each with its own
    histories, the order rotating), so load from other processes on the machine
    falls on all of them alike. The best round of each counts.
    """
    configs = {"none": LawSet([]), "noop": LawSet([NoopLaw()]), "default": laws}
    names = [*configs, "pieces"]
    runs: dict[str, list[Any]] = {name: [] for name in names}
    n = len(items)
    for law_set in configs.values():  # warm-up: first calls, caches, pydantic validators
        GateRun(Gate(SWARM, law_set)).step(items, 0, min(n, BLOCK))
    PiecesRun(items).step(items, 0, min(n, BLOCK))
    started = time.perf_counter()
    for _ in range(rounds):
        current: dict[str, GateRun | PiecesRun] = {
            name: GateRun(Gate(SWARM, law_set)) for name, law_set in configs.items()
        }
        current["pieces"] = PiecesRun(items)
        gc.collect()
        for turn, lo in enumerate(range(0, n, BLOCK)):
            k = turn % len(names)
            for name in names[k:] + names[:k]:
                current[name].step(items, lo, min(n, lo + BLOCK))
        for name, run in current.items():
            run.histories = {}  # the documents are done with: free them before the next round
            runs[name].append(run)
        if time.perf_counter() - started > GATE_BUDGET_S:
            break
    out: dict[str, Any] = {"rounds": len(runs["none"])}
    for name in configs:
        got: list[GateRun] = runs[name]
        best = min(got, key=lambda r: r.seconds)
        out[name] = {
            "events_per_s": n / best.seconds,
            "us_per_event": best.seconds / n * 1e6,
            "rounds_events_per_s": [n / r.seconds for r in got],
            "accepted": best.accepted,
            "refused": len(best.refused),
            "refused_by": dict(Counter(check for _, check in best.refused)),
            "refused_items": [i for i, _ in best.refused],
        }
    # Same round, same conditions: the ratio of each round on its own, as a spread.
    out["rounds_ratio"] = [
        z.seconds / d.seconds for z, d in zip(runs["none"], runs["default"], strict=True)
    ]
    pieces: PiecesRun = min(runs["pieces"], key=lambda r: r.seconds)
    out["pieces"] = {
        "decode_us": pieces.decode_s / n * 1e6,
        "apply_us": pieces.apply_s / n * 1e6,
        "state_us": pieces.state_s / n * 1e6,
    }
    out["pieces"]["rest_us"] = out["none"]["us_per_event"] - sum(out["pieces"].values())
    return out


# -- the laws alone, on the proposals they see in the gate ------------------------------------


def build_proposals(items: Sequence[Item]) -> list[Proposal]:
    """The ``Proposal`` the laws judge for every item (histories advance as in the gate)."""
    histories: dict[str, MemoryDoc] = {}
    proposals: list[Proposal] = []
    for item in items:
        event = decode_proposal(item.raw)
        base = histories.get(event.memory_id) or MemoryDoc()
        doc, _ = base.apply(event.change, strict=True)
        after = doc.state()
        assert after is not None
        proposals.append(Proposal(event=event, before=base.state(), after=after))
        if not item.leaky:
            histories[event.memory_id] = doc
    return proposals


def time_per_event(fn: Callable[[Any], object], inputs: Sequence[Any], repeat: int) -> float:
    """Best-of-``repeat`` µs per input of ``fn`` (fewer repeats past ``TIMING_BUDGET_S``).

    Answers are dropped, as the gate drops them, so no extra garbage skews the time.
    """
    best = float("inf")
    spent = 0.0
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for x in inputs:
            fn(x)
        took = time.perf_counter() - t0
        best = min(best, took)
        spent += took
        if spent > TIMING_BUDGET_S:
            break
    return best / max(1, len(inputs)) * 1e6


#: Parameters for registry kinds that need some (any other kind is built with none).
SAMPLE_PARAMS: dict[str, dict[str, object]] = {
    "max_content": {"chars": 4000},
    "deny_tags": {"tags": ["secret", "do-not-store"]},
    "kind_allowed": {"kinds": list(KINDS)},
}


def law_kind(law: Law) -> str:
    kind = getattr(law, "kind", None)
    return kind if isinstance(kind, str) else type(law).__name__


def _same_law(law: Law) -> tuple[str, str]:
    return law_kind(law), json.dumps(law.params(), sort_keys=True, default=str)


def registry_laws(default: Sequence[Law]) -> tuple[list[Law], list[dict[str, str]]]:
    """One law of every kind ``swarm.laws.registry`` knows (if it exists), unless the
    default set already has that very law; and the kinds that could not be built, why.

    Kinds are built from a ``LawSpec`` with :data:`SAMPLE_PARAMS` (or none), so a new
    kind is picked up as soon as it is registered.
    """
    try:
        from swarm.laws import registry  # noqa: PLC0415
        from swarm.laws.spec import LawSpec  # noqa: PLC0415

        kinds = list(registry.known_kinds())
    except ImportError:
        return [], []
    except Exception as err:  # work in progress elsewhere must not stop the benchmark
        return [], [{"kind": "(registry)", "reason": f"{type(err).__name__}: {err}"}]
    seen = {_same_law(law) for law in default}
    ids = {law.id for law in default}
    laws: list[Law] = []
    skipped: list[dict[str, str]] = []
    for kind in kinds:
        try:
            spec = LawSpec(
                id=f"bench-{kind}"[:64].replace("_", "-"),
                kind=kind,
                params=SAMPLE_PARAMS.get(kind, {}),
            )
            law = registry.build(spec)
        except Exception as err:
            skipped.append({"kind": kind, "reason": f"{type(err).__name__}: {err}"})
            continue
        if _same_law(law) in seen or law.id in ids:
            continue
        seen.add(_same_law(law))
        ids.add(law.id)
        laws.append(law)
    return laws, skipped


def scanned_text(p: Proposal) -> str | None:
    """The joined text fields a content law reads, or None when they did not change."""
    fields = p.after.text_fields()
    if p.before is not None and p.before.text_fields() == fields:
        return None
    return " ".join(v if isinstance(v, str) else " ".join(v) for v in fields.values())


def detector_costs(proposals: Sequence[Proposal], repeat: int) -> list[dict[str, Any]]:
    """Each private-data detector kind alone (``detectors.KINDS``), over the texts the
    law scans; µs per event (all events, so it compares with the law's cost)."""
    try:
        from swarm.laws import detectors  # noqa: PLC0415

        find = detectors.find_private_data
        kinds = tuple(getattr(detectors, "KINDS", ()))
    except (ImportError, AttributeError):
        return []
    texts = [t for t in map(scanned_text, proposals) if t is not None]
    n = len(proposals)
    out: list[dict[str, Any]] = []
    for label, wanted in [*((k, (k,)) for k in kinds), ("all kinds", None)]:

        def run(text: str, wanted: tuple[str, ...] | None = wanted) -> object:
            return find(text, kinds=wanted)

        try:
            hits = sum(1 for t in texts if run(t))  # also the warm-up
        except Exception:  # a kind this API does not take (work in progress elsewhere)
            continue
        us = time_per_event(run, texts, repeat) * len(texts) / n
        out.append({"name": label, "us_per_event": us, "texts": len(texts), "hits": hits})
    return out


# -- report ------------------------------------------------------------------------------------


def build_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    g, target = doc["gate"], doc["config"]["target"]
    none_rate, none_us = g["none"]["events_per_s"], g["none"]["us_per_event"]
    law_ids = ", ".join(law["id"] for law in doc["laws"] if law["source"] == "default")
    rows: list[dict[str, Any]] = [
        {"metric": "gate parse+judge, no laws (LawSet([]))", "value": none_rate,
         "unit": "ev/s", "floor": None, "ratio": None, "target": None},
        {"metric": f"gate parse+judge, default laws ({law_ids})",
         "value": g["default"]["events_per_s"], "unit": "ev/s", "floor": none_rate,
         "ratio": g["ratio"], "target": f">= {target:.0%} of no laws", "pass": g["pass"]},
        {"metric": "  default laws in the gate (with - without)", "value": g["law_cost_us"],
         "unit": "µs/ev", "floor": none_us, "ratio": g["law_cost_us"] / none_us,
         "target": None},
        {"metric": "  law mechanism in the gate (one no-op law - none)",
         "value": g["noop_cost_us"], "unit": "µs/ev", "floor": none_us,
         "ratio": g["noop_cost_us"] / none_us, "target": None},
        {"metric": "  LawSet.judge alone, default laws", "value": doc["law_set_us"],
         "unit": "µs/ev", "floor": none_us, "ratio": doc["law_set_us"] / none_us,
         "target": None},
    ]  # fmt: skip
    for law in doc["laws"]:
        mark = "" if law["source"] == "default" else f", {law['source']}"
        rows.append({
            "metric": f"  law {law['id']} ({law['kind']}, {law['action']}{mark}) check()"
                      f" [{law['violations']:,} violations]",
            "value": law["us_per_event"], "unit": "µs/ev", "floor": none_us,
            "ratio": law["us_per_event"] / none_us, "target": None,
        })  # fmt: skip
    for det in doc["detectors"]:
        rows.append({
            "metric": f"    detector {det['name']} ({det['texts']:,} texts scanned)",
            "value": det["us_per_event"], "unit": "µs/ev", "floor": none_us,
            "ratio": det["us_per_event"] / none_us, "target": None,
        })  # fmt: skip
    p = doc["pieces"]
    for key, label in (
        ("decode_us", "piece: codec.decode_proposal"),
        ("apply_us", "piece: Automerge apply (MemoryDoc.apply)"),
        ("state_us", "piece: state extraction (before + after)"),
        ("rest_us", "piece: rest (identity, chunks, checks, verdict)"),
    ):
        rows.append({"metric": label, "value": p[key], "unit": "µs/ev", "floor": none_us,
                     "ratio": p[key] / none_us, "target": None})  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    return metric_table(rows, "vs (no-law gate)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="proposals to build")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="gate runs per configuration")
    parser.add_argument(
        "--private-rate",
        type=float,
        default=0.02,
        help="share of remembered/updated proposals carrying private data",
    )
    parser.add_argument(
        "--target", type=float, default=0.70, help="minimum throughput with laws / without"
    )
    args = parser.parse_args(argv)
    if args.events < 10:
        parser.error("--events must be at least 10")

    def note(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    note(f"building {args.events:,} proposals ...")
    t0 = time.perf_counter()
    items = build_items(args.events, args.seed, args.private_rate)
    build_s = time.perf_counter() - t0
    leaky = {i for i, item in enumerate(items) if item.leaky}

    laws = default_laws()
    note(f"gate: no laws, a no-op law, {len(laws.laws)} default law(s), pieces; {args.rounds} x")
    g = gate_rounds(items, laws, args.rounds)
    pieces = g.pop("pieces")
    g["ratio"] = g["default"]["events_per_s"] / g["none"]["events_per_s"]
    g["pass"] = g["ratio"] >= args.target
    g["law_cost_us"] = g["default"]["us_per_event"] - g["none"]["us_per_event"]
    g["noop_cost_us"] = g["noop"]["us_per_event"] - g["none"]["us_per_event"]
    unexpected_noop = g["noop"].pop("refused_items")
    refused = set(g["default"].pop("refused_items"))
    unexpected_none = g["none"].pop("refused_items")
    sanity = {
        "expected_rejections": len(leaky),
        "missed": len(leaky - refused),  # private data the default laws let through
        "extra": len(refused - leaky),  # clean proposals the gate refused
        "refused_without_laws": len(unexpected_none) + len(unexpected_noop),
    }

    note("laws alone ...")
    proposals = build_proposals(items)
    repeat = max(1, args.rounds)
    extra_laws, skipped = registry_laws(laws.laws)
    law_rows: list[dict[str, Any]] = []
    timed = [("default", law) for law in laws.laws] + [("registry", law) for law in extra_laws]
    for source, law in timed:
        violations = sum(1 for p in proposals if not law.check(p).ok)  # also the warm-up
        law_rows.append({
            "id": law.id, "kind": law_kind(law), "action": law.action, "source": source,
            "us_per_event": time_per_event(law.check, proposals, repeat),
            "violations": violations,
        })  # fmt: skip
    law_set_us = time_per_event(laws.judge, proposals, repeat)
    detectors = detector_costs(proposals, repeat)

    doc: dict[str, Any] = {
        "bench": "gate",
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "proposals": {
            "count": len(items),
            "by_type": dict(Counter(item.type for item in items)),
            "private_data": len(leaky),
            "mean_bytes": statistics.fmean(len(item.raw) for item in items),
            "build_s": build_s,
        },
        "gate": g,
        "sanity": sanity,
        "laws": law_rows,
        "registry_skipped": skipped,
        "law_set_us": law_set_us,
        "detectors": detectors,
        "pieces": pieces,
    }
    doc["rows"] = build_rows(doc)
    doc["seconds"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(table(doc["rows"]))
    prop = doc["proposals"]
    types = ", ".join(f"{v:,} {k}" for k, v in sorted(prop["by_type"].items()))
    print(
        f"\n{prop['count']:,} proposals ({types}; {len(leaky):,} with private data), "
        f"mean {prop['mean_bytes']:.0f} B; best of {g['rounds']} round(s) "
        f"(ratio per round: {', '.join(f'{r:.1%}' for r in g['rounds_ratio'])}); "
        f"{doc['seconds']:.1f} s total"
    )
    if sanity["missed"] or sanity["extra"] or sanity["refused_without_laws"]:
        print(f"WARNING: unexpected gate decisions: {sanity}; "
              f"refused by: {g['default']['refused_by']} / {g['none']['refused_by']}")  # fmt: skip
    for s in skipped:
        print(f"registry kind {s['kind']} not timed: {s['reason']}")
    verdict = "PASS" if g["pass"] else "FAIL"
    print(
        f"{verdict}: with the default laws the gate keeps {g['ratio']:.1%} of its throughput "
        f"without laws (target >= {args.target:.0%}; the laws cost {1 - g['ratio']:.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
