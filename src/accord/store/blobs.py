"""Data package bytes: content-addressed files beside the database.

``<root>/ab/abcdef…`` holds the bytes whose sha256 (lower-case hex) is ``abcdef…``. A file
appears under its name only when it is complete and durable: a :class:`BlobWriter` streams into
a temporary file in ``<root>`` while hashing, enforces the size limit as the bytes arrive, and on
:meth:`BlobWriter.finish` fsyncs the file, renames it to its hash and fsyncs the directory. A
temporary file is removed on any failure, and leftovers of a crash are removed by
:meth:`Blobs.open`. So a name is a promise: the bytes behind it are whole and their hash is the
name.

Every file operation runs in a worker thread (``asyncio.to_thread``), in batches of
``FLUSH_BYTES``, so a 400 MB upload neither stalls the event loop nor holds more than one batch
in memory. Names are checked (:func:`check_hash`) before the filesystem is touched, so no
caller-supplied text can name a path outside ``<root>``.

Nodes of one organisation that share a PostgreSQL database (issue 17) also keep every blob
there (:class:`SharedBlobs`): a blob is copied to the database when it is sealed, before its
package is committed or answered, and a node that lacks the file fetches it from the database
on first read (checked against its hash) and keeps it as its own from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from accord.store.contract import PackageStore, StoreError

FLUSH_BYTES = 1024 * 1024  # bytes gathered before one write (and hash update) in a thread
READ_BYTES = 256 * 1024  # bytes per read when streaming a blob out
TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".part"
_HASH = re.compile(r"[0-9a-f]{64}")


class BlobError(Exception):
    """A blob could not be stored; the message says why."""


class BlobTooLarge(BlobError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class HashMismatch(BlobError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"the bytes hash to {actual}, not {expected}")
        self.expected = expected
        self.actual = actual


def is_hash(text: str) -> bool:
    """Whether ``text`` is a blob name: 64 lower-case hex digits."""
    return _HASH.fullmatch(text) is not None


def check_hash(text: str) -> str:
    """``text`` if it is a blob name, else ValueError (before any path is built from it)."""
    if not is_hash(text):
        raise ValueError("a hash is 64 lower-case hexadecimal digits (sha256)")
    return text


class SharedBlobs(Protocol):
    """Blob bytes every node of an organisation reaches (``accord.store.postgres_blobs``)."""

    async def put_blob(self, hash: str, size: int, chunks: AsyncIterator[bytes]) -> bool: ...

    async def blob_size(self, hash: str) -> int | None: ...

    def blob_chunks(self, hash: str) -> AsyncIterator[bytes]: ...

    async def delete_blob(self, hash: str) -> bool: ...


class Blobs:
    """The content-addressed files under one directory (and, when ``shared``, a copy of
    each where the organisation's other nodes read it)."""

    def __init__(self, root: Path, shared: SharedBlobs | None = None) -> None:
        self.root = root
        self.shared = shared
        self.fetched = 0  # blobs read from ``shared`` because this node had no file yet

    @classmethod
    async def open(cls, root: Path, shared: SharedBlobs | None = None) -> Blobs:
        """Create ``root`` if needed and remove temporary files a crash left behind."""
        blobs = cls(root, shared)
        await asyncio.to_thread(blobs._prepare)
        return blobs

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    def path(self, hash: str) -> Path:
        check_hash(hash)
        return self.root / hash[:2] / hash

    async def writer(self, max_bytes: int) -> BlobWriter:
        """A writer for one new blob of at most ``max_bytes``; use it as an async context
        manager so that it is aborted unless finished."""
        name = self.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        handle = await asyncio.to_thread(_create, name)
        return BlobWriter(self, name, handle, max_bytes)

    async def size(self, hash: str) -> int | None:
        """The blob's size in bytes, None if there is no such blob."""
        path = self.path(hash)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None if self.shared is None else await self.shared.blob_size(hash)

    async def reader(self, hash: str) -> BlobReader | None:
        """The open blob, None if there is no such blob. Close the reader when done: it
        keeps reading the same bytes even if the blob is deleted meanwhile."""
        path = self.path(hash)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            if self.shared is None or not await self._fetch(hash):
                return None
            try:
                handle = await asyncio.to_thread(path.open, "rb")
            except FileNotFoundError:  # deleted meanwhile
                return None
        return BlobReader(handle, os.fstat(handle.fileno()).st_size)

    async def _fetch(self, hash: str) -> bool:
        """Copy the blob from ``shared`` into a file of ours; False when it has none."""
        assert self.shared is not None
        size = await self.shared.blob_size(hash)
        if size is None:
            return False
        try:
            async with await self.writer(size) as writer:
                writer.shared = False  # it is there already
                async for data in self.shared.blob_chunks(hash):
                    await writer.write(data)
                await writer.finish(hash)
        except BlobError as exc:  # more bytes than recorded, or not those of the hash
            raise StoreError(f"the shared copy of package {hash} is damaged ({exc})") from exc
        self.fetched += 1
        return True

    async def delete(self, hash: str) -> bool:
        """Remove the blob; False if there was none."""
        path = self.path(hash)
        gone = self.shared is not None and await self.shared.delete_blob(hash)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return gone
        return True

    async def hashes(self) -> list[str]:
        """The names of every stored blob."""

        def scan() -> list[str]:
            return sorted(
                p.name
                for p in self.root.glob("??/*")
                if p.parent.name == p.name[:2] and is_hash(p.name)
            )

        return await asyncio.to_thread(scan)


class BlobWriter:
    """One blob being written. ``write`` the bytes, then ``finish`` (or ``seal`` and
    ``publish``); ``abort`` (or leaving the ``async with`` block) drops it unless published."""

    def __init__(self, blobs: Blobs, temp: Path, handle: BinaryIO, max_bytes: int) -> None:
        self._blobs = blobs
        self._temp = temp
        self._handle: BinaryIO | None = handle
        self._closed = False
        self._digest: str | None = None  # set once sealed
        self._max = max_bytes
        self._sha = hashlib.sha256()
        self._pending = bytearray()
        self.size = 0  # bytes accepted so far
        self.shared = blobs.shared is not None  # copied to the shared store when sealed

    async def __aenter__(self) -> BlobWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.abort()

    async def write(self, data: bytes) -> None:
        """Accept the next bytes; BlobTooLarge once the total passes the limit (the writer is
        aborted then)."""
        if self._closed or self._digest is not None:
            raise BlobError("the writer is closed")
        self.size += len(data)
        if self.size > self._max:
            await self.abort()
            raise BlobTooLarge(self._max)
        self._pending += data
        if len(self._pending) >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending or self._handle is None:
            return
        batch, self._pending = bytes(self._pending), bytearray()
        handle, sha = self._handle, self._sha

        def work() -> None:
            sha.update(batch)  # hashlib releases the GIL for large buffers
            handle.write(batch)

        await asyncio.to_thread(work)

    async def finish(self, expected: str | None = None) -> str:
        """:meth:`seal` then :meth:`publish`: the blob is durable under its hash, returned."""
        await self.seal(expected)
        return await self.publish()

    async def seal(self, expected: str | None = None) -> str:
        """Write out and fsync the bytes; return their hash. With ``expected``, a different
        hash raises HashMismatch and nothing is kept. The slow half of finishing: callers
        that serialise publishing keep it outside their lock."""
        if self._closed or self._digest is not None:
            raise BlobError("the writer is closed")
        try:
            await self._flush()
            actual = self._sha.hexdigest()
            if expected is not None and expected != actual:
                raise HashMismatch(expected, actual)
            handle, self._handle = self._handle, None
            assert handle is not None
            await asyncio.to_thread(_sync_and_close, handle)
            shared = self._blobs.shared
            if self.shared and shared is not None:
                await shared.put_blob(actual, self.size, _file_chunks(self._temp))
        except BaseException:
            await self.abort()
            raise
        self._digest = actual
        return actual

    async def publish(self) -> str:
        """Rename the sealed bytes to their hash and fsync the directory; return the hash."""
        digest = self._digest
        if self._closed or digest is None:
            raise BlobError("seal the writer before publishing it")
        try:
            await asyncio.to_thread(_rename_into_place, self._temp, self._blobs.path(digest))
        except BaseException:
            await self.abort()
            raise
        self._closed = True
        return digest

    async def abort(self) -> None:
        """Drop what was written; does nothing once finished or aborted."""
        if self._closed:
            return
        self._closed = True
        self._pending = bytearray()
        handle, self._handle = self._handle, None
        await asyncio.to_thread(_discard, handle, self._temp)


class BlobReader:
    """One open blob: its size, and its bytes in pieces of at most ``READ_BYTES``."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def chunks(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """``length`` bytes from ``offset`` (to the end if None)."""
        handle = self._handle
        await asyncio.to_thread(handle.seek, offset)
        remaining = self.size - offset if length is None else length
        while remaining > 0:
            data = await asyncio.to_thread(handle.read, min(READ_BYTES, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data

    async def close(self) -> None:
        await asyncio.to_thread(self._handle.close)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The bytes of ``path`` in pieces of ``FLUSH_BYTES``, read in a thread."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while data := await asyncio.to_thread(handle.read, FLUSH_BYTES):
            yield data
    finally:
        await asyncio.to_thread(handle.close)


def _create(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb", buffering=0)


def _discard(handle: BinaryIO | None, temp: Path) -> None:
    try:
        if handle is not None:
            handle.close()
    finally:
        temp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_and_close(handle: BinaryIO) -> None:
    try:
        os.fsync(handle.fileno())
    finally:
        handle.close()


def _rename_into_place(temp: Path, target: Path) -> None:
    """Give the fsynced ``temp`` its name, durably (in a thread)."""
    folder = target.parent
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        _fsync_dir(folder.parent)  # the new fan-out directory's own entry
    if target.exists():  # the same bytes are already stored and durable
        temp.unlink()
        return
    os.replace(temp, target)
    _fsync_dir(folder)


ORPHANS_DIR = "orphans"  # under the blob root: files set aside, never served


async def set_aside_orphans(blobs: Blobs, store: PackageStore) -> int:
    """Move blobs no package names into ``<root>/orphans/``; return how many moved. Run it
    before uploads are served.

    A crash between storing the bytes and committing their metadata (or between deleting the
    two) leaves such a file. They are moved, not deleted: a database_url pointing at the wrong
    or a restored database would otherwise cost every newer package its bytes. Whoever looks
    after the server deletes them once nothing is missing."""
    moved = 0
    for hash in await blobs.hashes():
        if await store.package(hash) is None:
            await asyncio.to_thread(_move_aside, blobs.path(hash), blobs.root / ORPHANS_DIR)
            moved += 1
    return moved


def _move_aside(path: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    os.replace(path, folder / path.name)
