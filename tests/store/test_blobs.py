"""Content-addressed package files: whole and durable under their hash, or not there at all."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from accord.store import blobs as blobs_module
from accord.store.blobs import (
    TEMP_PREFIX,
    BlobError,
    Blobs,
    BlobTooLarge,
    HashMismatch,
    check_hash,
    set_aside_orphans,
)
from accord.store.contract import Store
from accord.store.records import Package

DATA = os.urandom(3 * 1024 * 1024 + 17)  # more than one flush batch, not a multiple of one
DIGEST = hashlib.sha256(DATA).hexdigest()


def temp_files(root: Path) -> list[Path]:
    return list(root.glob(f"{TEMP_PREFIX}*"))


async def store_bytes(blobs: Blobs, data: bytes, piece: int = 65536) -> str:
    async with await blobs.writer(max_bytes=len(data) + 1) as writer:
        for start in range(0, len(data), piece):
            await writer.write(data[start : start + piece])
        return await writer.finish()


async def test_bytes_written_in_pieces_land_under_their_sha256(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path / "packages")
    assert await store_bytes(blobs, DATA) == DIGEST
    stored = tmp_path / "packages" / DIGEST[:2] / DIGEST
    assert stored.read_bytes() == DATA
    assert await blobs.size(DIGEST) == len(DATA)
    assert temp_files(blobs.root) == []


async def test_a_temporary_file_is_written_in_the_blob_directory_until_finish(
    tmp_path: Path,
) -> None:
    blobs = await Blobs.open(tmp_path)
    async with await blobs.writer(max_bytes=len(DATA)) as writer:
        await writer.write(DATA)
        (temp,) = temp_files(tmp_path)
        assert temp.parent == tmp_path  # same filesystem: the rename is atomic
        assert await blobs.size(DIGEST) is None  # no name before it is complete
        await writer.finish()
    assert temp_files(tmp_path) == []


async def test_a_hash_mismatch_keeps_nothing(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    wrong = "0" * 64
    async with await blobs.writer(max_bytes=len(DATA)) as writer:
        await writer.write(DATA)
        with pytest.raises(HashMismatch) as caught:
            await writer.finish(expected=wrong)
    assert (caught.value.expected, caught.value.actual) == (wrong, DIGEST)
    assert await blobs.size(DIGEST) is None
    assert await blobs.hashes() == []
    assert temp_files(tmp_path) == []


async def test_the_expected_hash_is_accepted_when_it_matches(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    async with await blobs.writer(max_bytes=len(DATA)) as writer:
        await writer.write(DATA)
        assert await writer.finish(expected=DIGEST) == DIGEST


async def test_a_sealed_blob_has_its_name_only_once_published(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    async with await blobs.writer(max_bytes=len(DATA)) as writer:
        await writer.write(DATA)
        assert await writer.seal() == DIGEST
        assert await blobs.size(DIGEST) is None
        assert await writer.publish() == DIGEST
    assert await blobs.size(DIGEST) == len(DATA)
    async with await blobs.writer(max_bytes=10) as dropped:
        await dropped.write(b"sealed")
        await dropped.seal()
    assert await blobs.hashes() == [DIGEST]  # sealed but never published: gone
    assert temp_files(tmp_path) == []


async def test_the_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    async with await blobs.writer(max_bytes=100_000) as writer:
        await writer.write(b"x" * 60_000)
        with pytest.raises(BlobTooLarge) as caught:
            await writer.write(b"x" * 60_000)
        assert caught.value.limit == 100_000
        assert temp_files(tmp_path) == []  # removed at once, not at the end of the upload
        with pytest.raises(BlobError):
            await writer.write(b"more")
    assert await blobs.hashes() == []


async def test_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    async with await blobs.writer(max_bytes=10) as writer:
        await writer.write(b"0123456789")
        assert await writer.finish() == hashlib.sha256(b"0123456789").hexdigest()


async def test_leaving_without_finish_removes_the_temporary_file(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)

    async def upload_that_fails() -> None:
        async with await blobs.writer(max_bytes=len(DATA)) as writer:
            await writer.write(DATA)
            raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await upload_that_fails()
    assert temp_files(tmp_path) == []
    assert await blobs.hashes() == []


async def test_opening_removes_what_a_crash_left_and_keeps_the_blobs(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    digest = await store_bytes(blobs, b"kept")
    writer = await blobs.writer(max_bytes=100)
    await writer.write(b"half an upload")  # the process dies here: no abort, no finish
    assert len(temp_files(tmp_path)) == 1
    reopened = await Blobs.open(tmp_path)
    assert temp_files(tmp_path) == []
    assert await reopened.hashes() == [digest]
    await writer.abort()  # close the dead writer's file (its name is already gone)


async def test_the_same_bytes_twice_are_one_file(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    assert await store_bytes(blobs, b"same") == await store_bytes(blobs, b"same")
    assert len(await blobs.hashes()) == 1
    assert temp_files(tmp_path) == []


async def test_reading_a_range_and_reading_on_after_delete(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    await store_bytes(blobs, DATA)
    reader = await blobs.reader(DIGEST)
    assert reader is not None
    assert reader.size == len(DATA)
    try:
        assert await blobs.delete(DIGEST)
        whole = [c async for c in reader.chunks()]
        assert b"".join(whole) == DATA  # the open file stays readable
        assert max(len(c) for c in whole) <= blobs_module.READ_BYTES  # memory stays flat
        part = b"".join([c async for c in reader.chunks(offset=1000, length=300_000)])
        assert part == DATA[1000:301_000]
        pieces = [c async for c in reader.chunks(offset=len(DATA) - 5)]
        assert pieces == [DATA[-5:]]
        assert [c async for c in reader.chunks(offset=len(DATA))] == []
    finally:
        await reader.close()
    assert await blobs.reader(DIGEST) is None
    assert await blobs.delete(DIGEST) is False


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "a" * 63,
        "a" * 65,
        DIGEST.upper(),
        DIGEST[:-1] + "/",
        DIGEST[:62] + "..",
        "",
        DIGEST + "\n",
    ],
)
async def test_only_hash_names_reach_the_filesystem(tmp_path: Path, name: str) -> None:
    blobs = await Blobs.open(tmp_path / "packages")
    with pytest.raises(ValueError, match="64 lower-case hexadecimal"):
        check_hash(name)
    for call in (blobs.size, blobs.reader, blobs.delete):
        with pytest.raises(ValueError, match="64 lower-case hexadecimal"):
            await call(name)


async def test_blobs_no_package_names_are_set_aside_not_deleted(
    tmp_path: Path, store: Store
) -> None:
    blobs = await Blobs.open(tmp_path / "packages")
    kept = await store_bytes(blobs, b"described")
    orphan = await store_bytes(blobs, b"crash between bytes and metadata")
    await store.add_package(Package(hash=kept, name="kept.zip", size=9))
    assert await set_aside_orphans(blobs, store) == 1
    assert await blobs.hashes() == [kept]
    assert await blobs.size(orphan) is None
    assert (blobs.root / "orphans" / orphan).read_bytes() == b"crash between bytes and metadata"
    assert await set_aside_orphans(blobs, store) == 0  # the set-aside files are not blobs
