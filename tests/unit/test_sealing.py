"""Sealed content and the keystore: round trips, refusals, and destruction that sticks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.errors import Forbidden
from swarm.keystore import Keystore, normalise_subject
from swarm.sealing import SealError, is_sealed, key_id_of, new_key, new_key_id, seal, unseal

MID = "01M7Y80JSMSRBCAB5GKTJRQT32"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_text_opens_to_itself(text: str) -> None:
    key, kid = new_key(), new_key_id()
    sealed = seal(text, key_id=kid, key=key, memory_id=MID)
    assert is_sealed(sealed) and key_id_of(sealed) == kid
    assert unseal(sealed, key=key, memory_id=MID) == text


def test_sealing_hides_the_text_and_never_repeats() -> None:
    key, kid = new_key(), new_key_id()
    one = seal("the vault code is 4711", key_id=kid, key=key, memory_id=MID)
    two = seal("the vault code is 4711", key_id=kid, key=key, memory_id=MID)
    assert one != two  # a fresh nonce each time
    assert "vault" not in one and "4711" not in one


def test_wrong_key_other_memory_and_altered_bytes_are_refused() -> None:
    key, kid = new_key(), new_key_id()
    sealed = seal("hello", key_id=kid, key=key, memory_id=MID)
    with pytest.raises(SealError, match="does not open"):
        unseal(sealed, key=new_key(), memory_id=MID)
    with pytest.raises(SealError, match="does not open"):
        unseal(sealed, key=key, memory_id="01M7Y80JSMSRBCAB5GKTJRQT33")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(SealError, match="does not open"):
        unseal(flipped, key=key, memory_id=MID)
    with pytest.raises(SealError, match="malformed"):
        key_id_of("sealed:1:short:xx")
    assert key_id_of("plain text") is None


def test_keystore_issues_once_per_memory_and_opens_only_its_own(tmp_path: Path) -> None:
    with Keystore(tmp_path / "keys.db") as keys:
        [a] = keys.issue([MID], agent="brad", about=["Dana  WHITFIELD"])
        assert keys.issue([MID], agent="brad") == [a]  # a retry: the same key
        assert keys.issue([MID], agent="ann")[0].key == a.key  # an existing memory's key
        assert (tmp_path / "keys.db").stat().st_mode & 0o777 == 0o600
        sealed = seal("hi", key_id=a.key_id, key=a.key, memory_id=MID)
        assert keys.open(sealed, MID) == "hi"
        assert keys.reveal(sealed, MID) == ("hi", "open")
        assert keys.reveal("plain", MID) == ("plain", "plain")
        assert keys.memories_about("dana whitfield") == [MID]
        with pytest.raises(SealError, match="another memory"):
            keys.open(sealed, "01M7Y80JSMSRBCAB5GKTJRQT33")
        stranger = seal("x", key_id=new_key_id(), key=new_key(), memory_id=MID)
        assert keys.reveal(stranger, MID) == ("", "sealed")
    # Another process (the projector, a replay) sees the same keys.
    with Keystore(tmp_path / "keys.db") as again:
        assert again.open(sealed, MID) == "hi"


def test_destroyed_keys_and_subject_names_leave_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with Keystore(path) as keys:
        mids = [f"01M7Y80JSMSRBCAB5GKTJRQ{i:03d}" for i in range(50)]
        issued = keys.issue(mids, agent="brad", about=["Zebulon Quartermaine"])
        doomed, kept = issued[7], issued[8]
        before = path.read_bytes()
        assert doomed.key in before and b"zebulon quartermaine" in before
        sealed = seal("gone", key_id=doomed.key_id, key=doomed.key, memory_id=doomed.memory_id)

        destroyed = keys.destroy([doomed.memory_id], record="rec-1", subject="zebulon quartermaine")

        assert destroyed == [doomed.key_id]
        assert keys.destroy([doomed.memory_id], record="rec-2") == []  # idempotent
        assert keys.reveal(sealed, doomed.memory_id) == ("", "erased")
        with pytest.raises(SealError, match="was erased"):
            keys.open(sealed, doomed.memory_id)
        assert keys.memory_erased(doomed.memory_id)
        assert keys.lookup(kept.key_id) == kept
        assert keys.memories_about("Zebulon Quartermaine") == []
        with pytest.raises(Forbidden, match="was erased"):
            keys.issue([doomed.memory_id], agent="brad")
    data = path.read_bytes()
    assert doomed.key not in data  # overwritten (secure_delete), not just unlinked
    assert b"zebulon" not in data
    assert kept.key in data
    assert not list(tmp_path.glob("keys.db-*"))  # no journal left holding old pages


def test_subject_names_are_normalised_and_checked() -> None:
    assert normalise_subject("  Dana\tWhitfield ") == "dana whitfield"
    with pytest.raises(ValueError, match="1-200"):
        normalise_subject("   ")
