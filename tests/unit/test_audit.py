"""The log's hash chain and its verification: each way of tampering is named."""

from __future__ import annotations

import json

import pytest

from swarm.audit import verify
from swarm.chain import Head, digest, link
from swarm.crdt import new_actor
from swarm.events import LawEnacted, LogRecord, MemoryRemembered, Verdict
from swarm.identity import Credentials, sign

CREDS = Credentials.generate("s", "brad")
OTHER = Credentials.generate("s", "brad")


def event(i: int, *, signed: bool = True) -> MemoryRemembered:
    made = MemoryRemembered(
        swarm="s",
        agent="brad",
        instance="one",
        actor=new_actor("s", "brad", "one").hex(),
        memory_id=f"MEMORY{i:06d}",
        change=bytes([i % 256]),
    )
    return sign(made, CREDS) if signed else made  # type: ignore[return-value]


def log(n: int, *, signed: bool = True) -> list[tuple[int, bytes]]:
    law = LawEnacted(law={"id": "x"}, law_set="1:a", order=("x",), by="operator")
    records = [law] + [
        LogRecord(event=event(i, signed=signed), verdict=Verdict(law_set="1:a"))
        for i in range(1, n)
    ]
    datas, expected, head = link(records, Head())
    assert expected == list(range(n)) and head.seq == n
    return list(enumerate(datas, start=1))


KEYS = {"brad": [CREDS.public_key]}


def test_an_untouched_log_verifies() -> None:
    entries = log(6)
    report = verify(entries, keys=KEYS)
    assert report.ok, report.findings
    assert (report.checked, report.first_seq, report.last_seq) == (6, 1, 6)
    assert report.signed == 5 and report.unsigned == 0
    assert report.head == digest(entries[-1][1])


def test_an_altered_entry_is_named() -> None:
    entries = log(6)
    seq, data = entries[2]
    record = json.loads(data)
    record["verdict"]["law_set"] = "9:forged"  # an unsigned part of the entry
    entries[2] = (seq, json.dumps(record).encode())
    report = verify(entries, keys=KEYS)
    assert report.first_bad is not None
    assert report.first_bad.seq == 3 and "altered" in report.first_bad.problem


def test_a_removed_entry_is_named_whether_the_rest_moved_up_or_not() -> None:
    entries = log(6)
    gap = entries[:3] + entries[4:]
    bad = verify(gap, keys=KEYS).first_bad
    assert bad is not None and bad.seq == 4 and "missing" in bad.problem
    moved_up = [(i, data) for i, (_, data) in enumerate(gap, start=1)]
    bad = verify(moved_up, keys=KEYS).first_bad
    assert bad is not None and bad.seq == 4 and "removed" in bad.problem


def test_reordered_entries_are_named() -> None:
    entries = log(6)
    swapped = [*entries[:2], (3, entries[3][1]), (4, entries[2][1]), *entries[4:]]
    bad = verify(swapped, keys=KEYS).first_bad
    assert bad is not None and bad.seq == 3


def test_a_forged_signature_and_an_unreadable_entry_are_named() -> None:
    entries = log(4)
    forged = LogRecord(event=sign(event(2, signed=False), OTHER), verdict=Verdict(law_set="1:a"))
    datas, _, _ = link([forged], Head(2, digest(entries[1][1])))
    entries[2] = (3, datas[0])
    bad = verify(entries[:3], keys=KEYS).first_bad
    assert bad is not None and bad.seq == 3 and "signature" in bad.problem
    bad = verify([*log(2), (3, b"not json")]).first_bad
    assert bad is not None and bad.seq == 3 and "unreadable" in bad.problem


def test_unsigned_events_of_open_mode_are_counted_not_failed() -> None:
    report = verify(log(4, signed=False), keys=KEYS)
    assert report.ok and report.unsigned == 3 and report.signed == 0


def test_verification_can_start_after_a_known_head() -> None:
    entries = log(6)
    start = Head(3, digest(entries[2][1]))
    assert verify(entries[3:], keys=KEYS, start=start).ok
    assert not verify(entries[3:], keys=KEYS, start=Head(3, "0" * 64)).ok


@pytest.mark.parametrize("signed", [True, False])
def test_link_numbers_and_chains_every_entry(signed: bool) -> None:
    entries = log(5, signed=signed)
    previous = None
    for seq, data in entries:
        record = json.loads(data)
        assert record["seq"] == seq and record["prev"] == previous
        previous = digest(data)
