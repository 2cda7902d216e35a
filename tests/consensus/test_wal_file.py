"""FileWAL: framing, torn-tail repair, corruption refusal, crash points, rotation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ads_ledger.consensus import wal as walmod
from ads_ledger.consensus.wal import MAX_RECORD, FileWAL, WALBroken, WALCorrupt, crc32c


def seg_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix == ".wal")


def test_crc32c_known_answers() -> None:
    # RFC 3720 B.4 and the usual check value
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    data = os.urandom(1000)
    assert crc32c(data[300:], crc32c(data[:300])) == crc32c(data)


def test_roundtrip_and_reopen(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = FileWAL(d)
    assert w.replay() == (0, [])
    w.append(b"a", sync=False)
    w.end_height(1)
    w.append(b"", sync=True)
    w.append(b"c" * 70000, sync=False)  # beyond the buffer: goes to the OS
    assert w.replay() == (1, [b"", b"c" * 70000])
    w.close()
    w.close()
    w2 = FileWAL(d)
    assert w2.replay() == (1, [b"", b"c" * 70000]) and w2.last_ended == 1
    with pytest.raises(ValueError):
        w2.end_height(1)
    with pytest.raises(ValueError):
        w2.append(b"x" * (MAX_RECORD + 1), sync=False)
    w2.close()
    with pytest.raises(ValueError):
        w2.append(b"x", sync=False)


def test_second_opener_refused(tmp_path: Path) -> None:
    w = FileWAL(tmp_path)
    with pytest.raises(WALBroken):
        FileWAL(tmp_path)
    w.close()
    FileWAL(tmp_path).close()


def build(d: Path, last: bytes | int) -> tuple[int, int]:
    """A log with height 3 ended, two records, then `last` (a record, or a height to end).
    Returns (file size before the last frame, size after)."""
    w = FileWAL(d)
    w.end_height(3)
    w.append(b"vote-1" * 5, sync=False)
    w.append(b"vote-2" * 7, sync=True)
    before = seg_files(d)[0].stat().st_size
    if isinstance(last, int):
        w.end_height(last)
    else:
        w.append(last, sync=True)
    w.close()
    return before, seg_files(d)[0].stat().st_size


@pytest.mark.parametrize("last", [b"proposal" * 8, 4])
def test_torn_last_record_at_every_byte_offset(tmp_path: Path, last: bytes | int) -> None:
    base = tmp_path / "base"
    before, after = build(base, last)
    good = (3, [b"vote-1" * 5, b"vote-2" * 7])
    full = (4, []) if isinstance(last, int) else (3, good[1] + [last])
    assert after - before == 12 + 1 + (8 if isinstance(last, int) else len(last))
    for cut in range(before, after + 1):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(base, d)
        seg = seg_files(d)[0]
        os.truncate(seg, cut)
        w = FileWAL(d)
        assert w.replay() == (full if cut == after else good), cut
        assert seg.stat().st_size == (after if cut == after else before)  # repaired on open
        w.append(b"next", sync=True)  # new appends follow the last good record
        w.close()
        w = FileWAL(d)
        expect = full if cut == after else good
        assert w.replay() == (expect[0], expect[1] + [b"next"])
        w.close()
        shutil.rmtree(d)


def test_zero_filled_or_garbled_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    before, after = build(tmp_path, b"last" * 10)
    seg = seg_files(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[after - 3] ^= 0x40  # last record's body damaged, nothing after it
    seg.write_bytes(bytes(data) + bytes(100))  # and zeros beyond, as a half-extended file
    w = FileWAL(tmp_path)
    assert w.replay() == (3, [b"vote-1" * 5, b"vote-2" * 7])
    assert seg.stat().st_size == before
    w.close()


def test_flipped_byte_before_last_record_raises_walcorrupt(tmp_path: Path) -> None:
    base = tmp_path / "base"
    w = FileWAL(base)
    w.append(b"first", sync=False)
    assert seg_files(base)[0].stat().st_size == 0  # buffered in the process
    w.sync()
    start = seg_files(base)[0].stat().st_size
    w.append(b"middle-record", sync=True)
    end = seg_files(base)[0].stat().st_size
    w.append(b"last-record", sync=True)
    w.close()
    for pos in range(start, end):  # every byte of the middle frame, header and body
        d = tmp_path / f"flip{pos}"
        shutil.copytree(base, d)
        seg = seg_files(d)[0]
        data = bytearray(seg.read_bytes())
        data[pos] ^= 0x01
        seg.write_bytes(bytes(data))
        with pytest.raises(WALCorrupt) as ei:
            FileWAL(d)
        assert ei.value.offset == start, pos
        assert str(start) in str(ei.value) and "move the WAL" in str(ei.value)
        assert seg.read_bytes() == bytes(data)  # nothing was repaired or cut
        FileWAL(base).close()  # the lock was released by the failed open of d
        shutil.rmtree(d)


def test_crash_between_block_stored_and_end_height(tmp_path: Path) -> None:
    w = FileWAL(tmp_path)
    w.end_height(7)
    w.append(b"proposal-8", sync=True)
    w.append(b"precommit-8", sync=True)
    w.append(b"peer-vote-8", sync=False)  # buffered in the process: lost by kill -9
    # ... block 8 is stored here, then the process dies before end_height(8)
    w.abandon()
    w = FileWAL(tmp_path)
    assert w.replay() == (7, [b"proposal-8", b"precommit-8"])
    w.end_height(8)  # the node finds block 8 stored and finishes the height
    w.close()
    assert FileWAL(tmp_path).replay() == (8, [])


def test_fsync_only_where_promised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    d = tmp_path / "wal"
    w = FileWAL(d, segment_bytes=200)
    assert synced == [tmp_path.name, "000000000001.wal", "wal"]
    synced.clear()
    w.append(b"x", sync=False)
    assert synced == []
    w.append(b"y", sync=True)
    assert synced == ["000000000001.wal"]
    synced.clear()
    w.sync()
    w.end_height(1)
    assert synced == ["000000000001.wal", "000000000001.wal"]
    synced.clear()
    w.append(b"z" * 300, sync=False)
    w.end_height(2)  # over 200 bytes: rotation
    assert synced == ["000000000001.wal", "000000000002.wal", "wal", "wal"]
    assert [p.name for p in seg_files(d)] == ["000000000002.wal"]
    w.close()


def test_rotation_keeps_only_the_current_segment(tmp_path: Path) -> None:
    w = FileWAL(tmp_path, segment_bytes=1000)
    for h in range(1, 41):
        for i in range(5):
            w.append(f"h{h} r{i}".encode() * 10, sync=i == 4)
        w.end_height(h)
        assert len(seg_files(tmp_path)) == 1
        assert seg_files(tmp_path)[0].stat().st_size < 1000 + 5 * 120
    w.append(b"tail", sync=True)
    assert w.segment_index > 10
    w.close()
    assert FileWAL(tmp_path).replay() == (40, [b"tail"])


def test_crash_during_rotation(tmp_path: Path) -> None:
    w = FileWAL(tmp_path, segment_bytes=100)
    w.append(b"a" * 200, sync=False)
    w.end_height(1)  # rotates to segment 2
    w.append(b"h2", sync=True)
    w.close()
    # a crash after the new segment was durable but before the old one was deleted
    (tmp_path / "000000000001.wal").write_bytes(b"stale" * 10)
    w = FileWAL(tmp_path)
    assert [p.name for p in seg_files(tmp_path)] == ["000000000002.wal"]
    assert w.replay() == (1, [b"h2"])
    w.close()
    # a crash after creating the next segment, before its marker reached the disk
    (tmp_path / "000000000003.wal").write_bytes(b"")
    w = FileWAL(tmp_path)
    assert [p.name for p in seg_files(tmp_path)] == ["000000000002.wal"]  # the empty one went
    assert w.replay() == (1, [b"h2"])
    w.append(b"more", sync=True)
    w.close()
    w = FileWAL(tmp_path)
    assert w.replay() == (1, [b"h2", b"more"])
    w.close()


def test_damage_in_an_older_segment_is_corrupt_even_at_its_end(tmp_path: Path) -> None:
    w = FileWAL(tmp_path, segment_bytes=100)
    w.append(b"a" * 200, sync=False)
    w.end_height(1)
    w.close()
    (tmp_path / "000000000003.wal").write_bytes(b"")  # segment 2 is no longer the last
    seg2 = tmp_path / "000000000002.wal"
    os.truncate(seg2, seg2.stat().st_size - 1)
    with pytest.raises(WALCorrupt):
        FileWAL(tmp_path)


def test_failed_fsync_breaks_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = FileWAL(tmp_path)
    w.append(b"a", sync=False)

    def boom(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(WALBroken):
        w.append(b"b", sync=True)
    monkeypatch.undo()
    with pytest.raises(WALBroken):  # no retry after a failed fsync (its result is unknowable)
        w.sync()
    with pytest.raises(WALBroken):
        w.end_height(1)
    w.close()


def test_frame_layout_is_stable() -> None:
    # length | crc32c(body) | crc32c(first 8 bytes) | kind | payload, big-endian
    f = walmod._frame(0, b"hi")
    assert f[:4] == (3).to_bytes(4, "big")
    assert f[4:8] == crc32c(b"\x00hi").to_bytes(4, "big")
    assert f[8:12] == crc32c(f[:8]).to_bytes(4, "big")
    assert f[12:] == b"\x00hi"


def write_frames(d: Path, frames: list[bytes]) -> None:
    d.mkdir()
    (d / "000000000001.wal").write_bytes(b"".join(frames))


def test_well_formed_but_impossible_frames_are_corrupt(tmp_path: Path) -> None:
    rec = walmod._frame(0, b"r")

    def end(h: int) -> bytes:
        return walmod._frame(1, h.to_bytes(8, "big"))

    cases = {
        "backwards": [end(5), rec, end(3), rec],  # markers must not go back
        "kind": [rec, walmod._frame(7, b"??"), rec],  # unknown kind, valid checksums
        "kind_last": [rec, walmod._frame(7, b"??")],  # ... even as the last frame
        "short_marker": [rec, walmod._frame(1, b"\x00\x05"), rec],
    }
    for name, frames in cases.items():
        write_frames(tmp_path / name, frames)
        with pytest.raises(WALCorrupt):
            FileWAL(tmp_path / name)
    # a length beyond the maximum, with a header checksum that matches
    head = (MAX_RECORD + 2).to_bytes(4, "big") + bytes(4)
    huge = head + crc32c(head).to_bytes(4, "big") + b"\x00" * 10
    write_frames(tmp_path / "huge", [rec, huge])
    with pytest.raises(WALCorrupt, match="out of range"):
        FileWAL(tmp_path / "huge")


def test_context_manager_closes_and_syncs(tmp_path: Path) -> None:
    with FileWAL(tmp_path) as w:
        w.append(b"kept", sync=False)
    with FileWAL(tmp_path) as w:
        assert w.replay() == (0, [b"kept"])


def test_c_and_python_crc32c_agree() -> None:
    import os

    from ads_ledger.consensus.wal import crc32c_py

    for n in (0, 1, 7, 8, 9, 63, 64, 1000, 4099):
        d = os.urandom(n)
        assert crc32c(d) == crc32c_py(d)
        assert crc32c(d[3:], crc32c(d[:3])) == crc32c_py(d)
    assert crc32c_py(b"123456789") == 0xE3069283
