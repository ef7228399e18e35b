"""Users and their groups, kept in ``<data_dir>/users.json`` with argon2id password hashes.

The store is shared by separate processes (``accord user ...`` and the running server), so the
file is the truth: every call first re-reads it if it was replaced since the last look (one
``stat``), every change is made under an exclusive lock on ``users.json.lock`` on top of a fresh
read, and every write goes to a temporary file that is flushed and then renamed over the store,
so a crash leaves either the old store or the new one, never half of one.

The file (``version`` 1)::

    {
      "version": 1,
      "users": {
        "alice": {
          "password": "$argon2id$v=19$m=65536,t=3,p=4$...",
          "groups": {"both": ["Blue"], "in": ["Reports"], "out": []},
          "disabled": false,
          "created_ms": 1764374400000,
          "updated_ms": 1764374400000
        }
      }
    }

``groups`` has the shape of a groups-file entry (reference tak-protocol §5; a plain list means
both directions), read with :func:`accord.domain.groups.parse_groups_map`. Times are Unix epoch
milliseconds, passed in by the caller.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from accord.domain.groups import GroupsFileError, Membership, parse_groups_map

if sys.platform != "win32":
    import fcntl

USERS_FILE = "users.json"
FORMAT_VERSION = 1
MAX_NAME_CHARS = 64
MAX_GROUP_CHARS = 64
MIN_PASSWORD_CHARS = 8  # NIST SP 800-63B's floor for chosen passwords
MAX_PASSWORD_CHARS = 1024  # a TAK <auth> message is at most 1024 bytes in all

_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_ENTRY_KEYS = frozenset(
    {"password", "groups", "disabled", "created_ms", "updated_ms", "password_changed_ms"}
)
_DUMMY_PASSWORD = "accord: no such user"

NO_GROUPS = Membership(frozenset(), frozenset())


class UserError(ValueError):
    """A user name, group name or password is not acceptable, or the user does (not) exist."""


class UserStoreError(UserError):
    """The store file cannot be read, parsed or written."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str = field(repr=False)
    membership: Membership = NO_GROUPS
    disabled: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    # When the password was set (creation or the last change): older bearer tokens are refused.
    password_changed_ms: int = 0


# -- validation --------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """Return ``name`` if it can be a user name (a certificate CN and a file name), else raise."""
    if not name:
        raise UserError("user name is empty; give 1 to 64 letters, digits, '.', '_' or '-'")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(
            f"user name {name[:20]!r}... is {len(name)} characters; the limit is {MAX_NAME_CHARS}"
        )
    if "/" in name or "\\" in name:
        raise UserError(
            f"user name {name!r} contains a path character ('/' or '\\'); "
            "user names become file names, so use letters, digits, '.', '_' or '-'"
        )
    if ".." in name:
        raise UserError(
            f"user name {name!r} contains '..'; user names become file names, so '..' is refused"
        )
    if name[0] in ".-":
        raise UserError(
            f"user name {name!r} starts with {name[0]!r}; start with a letter or digit "
            "(a leading '.' hides a file, a leading '-' reads as a command-line option)"
        )
    if not _NAME_CHARS.fullmatch(name):
        bad = next(ch for ch in name if not _NAME_CHARS.fullmatch(ch))
        raise UserError(
            f"user name {name!r} contains {bad!r}; use only ASCII letters, digits, '.', '_' or '-'"
        )
    return name


def check_group(group: str) -> str:
    """Return ``group`` if it can be a group name, else raise."""
    if not group:
        raise UserError("group name is empty")
    if len(group) > MAX_GROUP_CHARS:
        raise UserError(
            f"group name {group[:20]!r}... is {len(group)} characters; "
            f"the limit is {MAX_GROUP_CHARS}"
        )
    for ch in group:
        if unicodedata.category(ch) == "Cc":
            raise UserError(f"group name {group!r} contains the control character {ch!r}")
    if group != group.strip():
        raise UserError(f"group name {group!r} starts or ends with white space")
    return group


def check_password(password: str) -> str:
    """Return ``password`` if it is long enough and not absurdly long, else raise."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(
            f"password is {len(password)} characters; use at least {MIN_PASSWORD_CHARS}, "
            "because shorter passwords fall quickly to guessing"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(
            f"password is {len(password)} characters; the limit is {MAX_PASSWORD_CHARS} "
            "(a TAK client's whole <auth> message must fit in 1024 bytes)"
        )
    return password


def check_membership(membership: Membership) -> Membership:
    for group in sorted(membership.inbound | membership.outbound):
        check_group(group)
    return membership


def membership_of(
    both: Iterable[str] = (), *, inbound: Iterable[str] = (), outbound: Iterable[str] = ()
) -> Membership:
    """Groups as an operator gives them: ``both`` directions, plus IN-only and OUT-only ones."""
    both = frozenset(both)
    return check_membership(Membership(frozenset(inbound) | both, frozenset(outbound) | both))


# -- the store ---------------------------------------------------------------------------------

_Signature = tuple[int, int, int]  # inode, mtime_ns, size: a rename always brings a new inode


class UserStore:
    """The users of one data directory. Not thread-safe; one instance per thread or process."""

    def __init__(self, data_dir: Path, *, hasher: PasswordHasher | None = None) -> None:
        """Open (and read, if present) ``<data_dir>/users.json``.

        ``hasher`` defaults to argon2-cffi's ``PasswordHasher()`` (its RFC 9106 low-memory
        profile); tests pass a cheap one. Hashes made with other parameters still verify and
        are redone with these on the next successful :meth:`verify`.
        """
        self.path = data_dir / USERS_FILE
        self._lock_path = data_dir / (USERS_FILE + ".lock")
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._users: dict[str, User] = {}
        self._signature: _Signature | None = None
        self._dummy_hash: str | None = None
        self.reload_if_changed()

    # -- reading ---------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Re-read the file if another process (or instance) replaced it; say whether it had.

        Raises :class:`UserStoreError` naming the file if it cannot be read or parsed; the
        users read last stay in memory, and the next call tries again.
        """
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                signature = (st.st_ino, st.st_mtime_ns, st.st_size)
                if signature == self._signature:
                    return False
                raw = fh.read()
        except FileNotFoundError:
            if self._signature is None:
                return False
            self._users, self._signature = {}, None
            return True
        except OSError as exc:
            raise UserStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        self._users = _decode(raw, self.path)
        self._signature = signature
        return True

    def get(self, name: str) -> User | None:
        self.reload_if_changed()
        return self._users.get(name)

    def list(self) -> tuple[User, ...]:
        """Every user, in name order."""
        self.reload_if_changed()
        return tuple(self._users[name] for name in sorted(self._users))

    def memberships(self) -> dict[str, Membership]:
        """CN -> groups of every enabled user, for the TLS listener's groups map.

        A user with no groups at all is left out, so the listener falls back to the
        certificate's OUs or its default groups rather than a membership that reaches no one.
        """
        self.reload_if_changed()
        return {
            user.name: user.membership
            for user in self._users.values()
            if not user.disabled and (user.membership.inbound or user.membership.outbound)
        }

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``name`` exists, is enabled and ``password`` is theirs; else ``None``.

        An unknown, malformed or disabled name costs one hash verification like a real one,
        so response times do not tell which names exist. ``name`` and ``password`` may come
        straight from the network: bad input gives ``None``; only a broken store file raises
        (:class:`UserStoreError`).
        """
        dummy = self._dummy()
        self.reload_if_changed()
        user = self._users.get(name)
        too_long = len(password) > MAX_PASSWORD_CHARS
        if not _matches(
            self._hasher,
            dummy if user is None or too_long else user.password_hash,
            password[:MAX_PASSWORD_CHARS],
        ):
            return None
        if user is None or too_long or user.disabled:
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            return self._rehash(user, password)
        return user

    # -- changing --------------------------------------------------------------------------

    def add(
        self, name: str, password: str, membership: Membership = NO_GROUPS, *, now_ms: int
    ) -> User:
        """Create a user; refuses a name already taken (letter case aside)."""
        check_name(name)
        check_password(password)
        check_membership(membership)
        self._refuse_taken(name)  # before the slow hash, so a mistake fails fast
        user = User(name, self._hasher.hash(password), membership, False, now_ms, now_ms, now_ms)
        with self._locked():
            self._refuse_taken(name)
            self._commit({**self._users, name: user})
        return user

    def remove(self, name: str) -> None:
        with self._locked():
            self._existing(name)
            self._commit({k: v for k, v in self._users.items() if k != name})

    def set_password(self, name: str, password: str, *, now_ms: int) -> User:
        check_password(password)
        self._existing(name)
        password_hash = self._hasher.hash(password)
        with self._locked():
            user = replace(self._existing(name), password_changed_ms=now_ms)
            return self._update(user, password_hash=password_hash, now_ms=now_ms)

    def set_groups(self, name: str, membership: Membership, *, now_ms: int) -> User:
        check_membership(membership)
        with self._locked():
            return self._update(self._existing(name), membership=membership, now_ms=now_ms)

    def set_disabled(self, name: str, disabled: bool, *, now_ms: int) -> User:
        """Keep the user but refuse their password and drop them from :meth:`memberships`."""
        with self._locked():
            return self._update(self._existing(name), disabled=disabled, now_ms=now_ms)

    # -- shared with other nodes (a cluster's state bucket) ----------------------------------

    def entries(self) -> dict[str, bytes]:
        """Every user's entry as the file spells it, one canonical JSON text per name (what a
        cluster's nodes exchange)."""
        self.reload_if_changed()
        return {name: _canonical(_entry(user)) for name, user in self._users.items()}

    def apply_entries(self, changes: Mapping[str, bytes | None]) -> None:
        """Set (or, for None, remove) these users' entries, on top of the file as it is now.

        Each entry is checked as the file would be read (:class:`UserStoreError` naming the
        problem, nothing written)."""
        with self._locked():
            doc: dict[str, object] = {k: _entry(v) for k, v in self._users.items()}
            for name, raw in changes.items():
                if raw is None:
                    doc.pop(name, None)
                    continue
                try:
                    doc[name] = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise UserStoreError(f"shared user {name!r}: not a JSON entry") from None
            text = json.dumps({"version": FORMAT_VERSION, "users": doc}).encode()
            self._commit(_decode(text, self.path))

    # -- inside ----------------------------------------------------------------------------

    def _dummy(self) -> str:
        # Made on the first verify() of any kind, so that first call costs the same either way.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash

    def _refuse_taken(self, name: str) -> None:
        self.reload_if_changed()
        folded = name.lower()
        for other in self._users:
            if other.lower() == folded:
                same = "exists" if other == name else f"exists as {other!r}"
                raise UserError(f"user {name!r} already {same}; remove it first or pick another")

    def _existing(self, name: str) -> User:
        self.reload_if_changed()
        user = self._users.get(name)
        if user is None:
            raise UserError(f"no user named {name!r}; `accord user list` shows who exists")
        return user

    def _update(
        self,
        user: User,
        *,
        now_ms: int,
        password_hash: str | None = None,
        membership: Membership | None = None,
        disabled: bool | None = None,
    ) -> User:
        new = replace(
            user,
            password_hash=user.password_hash if password_hash is None else password_hash,
            membership=user.membership if membership is None else membership,
            disabled=user.disabled if disabled is None else disabled,
            updated_ms=now_ms,
        )
        self._commit({**self._users, user.name: new})
        return new

    def _rehash(self, user: User, password: str) -> User:
        """Redo a verified hash with the current parameters (not a user's change: no updated_ms)."""
        new_hash = self._hasher.hash(password)
        try:
            with self._locked():
                current = self._users.get(user.name)
                if current is None or current.password_hash != user.password_hash:
                    return user  # changed or removed meanwhile: leave that change alone
                rehashed = replace(current, password_hash=new_hash)
                self._commit({**self._users, user.name: rehashed})
                return rehashed
        except UserStoreError:
            return user  # a read-only or broken store: the old hash still works next time

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's lock and start from the file as it is now."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UserStoreError(f"cannot lock {self._lock_path}: {exc.strerror}") from None
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.reload_if_changed()
            yield
        finally:
            os.close(fd)  # releases the lock

    def _commit(self, users: dict[str, User]) -> None:
        """Write ``users`` atomically (owner-only), then make them the ones in memory."""
        data = _encode(users)
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{USERS_FILE}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise UserStoreError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as fh:  # mkstemp makes it 0600
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            st = self.path.stat()
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise UserStoreError(f"cannot write {self.path}: {exc.strerror}") from None
        _sync_directory(directory)
        self._users = users
        self._signature = (st.st_ino, st.st_mtime_ns, st.st_size)


def _matches(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where directories cannot be opened."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


# -- the file format ---------------------------------------------------------------------------


def _entry(user: User) -> dict[str, object]:
    both = user.membership.inbound & user.membership.outbound
    return {
        "password": user.password_hash,
        "groups": {
            "both": sorted(both),
            "in": sorted(user.membership.inbound - both),
            "out": sorted(user.membership.outbound - both),
        },
        "disabled": user.disabled,
        "created_ms": user.created_ms,
        "updated_ms": user.updated_ms,
        "password_changed_ms": user.password_changed_ms,
    }


def _encode(users: Mapping[str, User]) -> bytes:
    entries = {name: _entry(users[name]) for name in sorted(users)}
    text = json.dumps({"version": FORMAT_VERSION, "users": entries}, indent=2, ensure_ascii=False)
    return (text + "\n").encode()


def _canonical(entry: object) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(raw: bytes, path: Path) -> dict[str, User]:
    def fail(problem: str) -> UserStoreError:
        return UserStoreError(
            f"{path}: {problem}; fix the file, restore it from a backup, or move it aside "
            "to start with no users"
        )

    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise fail("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise fail("expected a JSON object with 'version' and 'users'")
    if doc.get("version") != FORMAT_VERSION:
        raise fail(f"unknown version {doc.get('version')!r}; this Accord reads version 1")
    entries = doc.get("users")
    if not isinstance(entries, dict):
        raise fail("'users' must be an object of name -> user")

    users: dict[str, User] = {}
    groups: dict[str, object] = {}
    for name, entry in entries.items():
        try:
            check_name(name)
        except UserError as exc:
            raise fail(str(exc)) from None
        if not isinstance(entry, dict):
            raise fail(f"user {name!r} must be an object")
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise fail(f"user {name!r} has unknown key(s) {sorted(unknown)}")
        password_hash = entry.get("password")
        if not isinstance(password_hash, str):
            raise fail(f"user {name!r} has no 'password' hash")
        try:
            extract_parameters(password_hash)
        except InvalidHashError:
            raise fail(f"user {name!r}: 'password' is not an argon2 hash") from None
        disabled = entry.get("disabled", False)
        created, updated = entry.get("created_ms", 0), entry.get("updated_ms", 0)
        changed = entry.get("password_changed_ms", 0) or created  # older files: since creation
        if not isinstance(disabled, bool):
            raise fail(f"user {name!r}: 'disabled' must be true or false")
        for key, value in (
            ("created_ms", created),
            ("updated_ms", updated),
            ("password_changed_ms", changed),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise fail(f"user {name!r}: {key!r} must be an integer (epoch milliseconds)")
        groups[name] = entry.get("groups", [])
        users[name] = User(name, password_hash, NO_GROUPS, disabled, created, updated, changed)

    try:
        memberships = parse_groups_map(groups)
    except GroupsFileError as exc:
        raise fail(f"user {exc}") from None
    for name, membership in memberships.items():
        try:
            check_membership(membership)
        except UserError as exc:
            raise fail(f"user {name!r}: {exc}") from None
    return {name: replace(user, membership=memberships[name]) for name, user in users.items()}
