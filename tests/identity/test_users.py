"""The user store: argon2 passwords, IN/OUT groups, one file shared by the CLI and the server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher, extract_parameters, profiles

from accord.domain.groups import Membership
from accord.identity.users import (
    USERS_FILE,
    User,
    UserError,
    UserStore,
    UserStoreError,
    membership_of,
)

NOW = 1_764_374_400_000
LATER = NOW + 60_000
CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
PASSWORD = "correct horse"


class CountingHasher(PasswordHasher):
    """A real argon2 hasher (cheap parameters) that counts its verifications."""

    def __init__(self, time_cost: int = 1) -> None:
        super().__init__(time_cost=time_cost, memory_cost=8, parallelism=1, hash_len=4, salt_len=8)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verifications += 1
        return super().verify(hash, password)


def store(data_dir: Path, hasher: PasswordHasher = CHEAP) -> UserStore:
    return UserStore(data_dir, hasher=hasher)


def test_added_user_can_be_read_back_and_listed_in_name_order(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("zulu", PASSWORD, Membership.both(["Blue"]), now_ms=NOW)
    alice = users.add("alice", PASSWORD, Membership.both(["Red"]), now_ms=NOW)

    assert users.get("alice") == alice
    assert alice.membership == Membership.both(["Red"])
    assert (alice.created_ms, alice.updated_ms, alice.disabled) == (NOW, NOW, False)
    assert alice.password_hash.startswith("$argon2id$")
    assert PASSWORD not in alice.password_hash
    assert [u.name for u in users.list()] == ["alice", "zulu"]
    assert users.get("bob") is None


def test_password_hash_is_kept_out_of_the_repr(tmp_path: Path) -> None:
    alice = store(tmp_path).add("alice", PASSWORD, now_ms=NOW)
    assert alice.password_hash not in repr(alice)


def test_removed_user_is_gone_and_cannot_log_in(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    users.add("bob", PASSWORD, now_ms=NOW)
    users.remove("alice")

    assert users.get("alice") is None
    assert [u.name for u in users.list()] == ["bob"]
    assert users.verify("alice", PASSWORD) is None
    with pytest.raises(UserError, match="no user named 'alice'"):
        users.remove("alice")


def test_a_taken_name_is_refused_whatever_its_letter_case(tmp_path: Path) -> None:
    users = store(tmp_path)
    first = users.add("alice", PASSWORD, now_ms=NOW)
    with pytest.raises(UserError, match="user 'alice' already exists"):
        users.add("alice", "another password", now_ms=LATER)
    with pytest.raises(UserError, match="user 'Alice' already exists as 'alice'"):
        users.add("Alice", "another password", now_ms=LATER)
    assert users.get("alice") == first
    assert users.get("Alice") is None


def test_right_password_verifies_and_wrong_ones_do_not(tmp_path: Path) -> None:
    users = store(tmp_path)
    alice = users.add("alice", PASSWORD, now_ms=NOW)

    assert users.verify("alice", PASSWORD) == alice
    assert users.verify("alice", "correct horsE") is None
    assert users.verify("alice", "") is None
    assert users.verify("ALICE", PASSWORD) is None


def test_unknown_or_malformed_name_returns_none_after_the_same_hashing_work(
    tmp_path: Path,
) -> None:
    hasher = CountingHasher()
    users = store(tmp_path, hasher)
    users.add("alice", PASSWORD, now_ms=NOW)

    users.verify("alice", "wrong password")
    per_known = hasher.verifications
    for name in ("bob", "", "../etc/passwd", "x" * 10_000):
        before = hasher.verifications
        assert users.verify(name, PASSWORD) is None
        assert hasher.verifications - before == per_known == 1


def test_overlong_password_is_refused_without_raising(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    assert users.verify("alice", PASSWORD + "x" * 2000) is None


def test_changed_password_replaces_the_old_one(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    changed = users.set_password("alice", "battery staple", now_ms=LATER)

    assert (changed.created_ms, changed.updated_ms) == (NOW, LATER)
    assert users.verify("alice", PASSWORD) is None
    assert users.verify("alice", "battery staple") == changed
    with pytest.raises(UserError, match="no user named 'bob'"):
        users.set_password("bob", "battery staple", now_ms=LATER)


def test_groups_keep_their_in_and_out_directions(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=NOW)
    users.add("bob", PASSWORD, Membership.both(["Blue"]), now_ms=NOW)
    groups = membership_of(["Blue"], inbound=["Reports"], outbound=["Orders"])
    alice = users.set_groups("alice", groups, now_ms=LATER)

    assert alice.membership == Membership(
        frozenset({"Blue", "Reports"}), frozenset({"Blue", "Orders"})
    )
    assert alice.updated_ms == LATER
    reports_reader = users.add("hq", PASSWORD, membership_of(outbound=["Reports"]), now_ms=LATER)
    assert alice.membership.reaches(reports_reader.membership)
    assert not reports_reader.membership.reaches(alice.membership)
    with pytest.raises(UserError, match="no user named 'carol'"):
        users.set_groups("carol", groups, now_ms=LATER)


def test_memberships_map_holds_enabled_users_that_have_groups(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, membership_of(["Blue"], inbound=["Reports"]), now_ms=NOW)
    users.add("bob", PASSWORD, Membership.both(["Red"]), now_ms=NOW)
    users.add("carol", PASSWORD, now_ms=NOW)  # no groups: left to the certificate / default
    users.set_disabled("bob", True, now_ms=LATER)

    assert users.memberships() == {
        "alice": Membership(frozenset({"Blue", "Reports"}), frozenset({"Blue"}))
    }


def test_disabled_user_cannot_log_in_until_enabled_again(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    assert users.set_disabled("alice", True, now_ms=LATER).disabled
    assert users.verify("alice", PASSWORD) is None
    users.set_disabled("alice", False, now_ms=LATER)
    assert users.verify("alice", PASSWORD) is not None


def test_users_persist_across_store_instances(tmp_path: Path) -> None:
    first = store(tmp_path)
    alice = first.add("alice", PASSWORD, membership_of(["Blue"], outbound=["Orders"]), now_ms=NOW)
    first.set_disabled("alice", True, now_ms=LATER)

    again = store(tmp_path).get("alice")
    assert again == User(
        "alice",
        alice.password_hash,
        alice.membership,
        True,
        created_ms=NOW,
        updated_ms=LATER,
        password_changed_ms=NOW,
    )


def test_a_write_by_another_process_is_seen_on_reload(tmp_path: Path) -> None:
    server, cli = store(tmp_path), store(tmp_path)
    assert server.reload_if_changed() is False

    cli.add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=NOW)
    assert server.reload_if_changed() is True
    assert server.reload_if_changed() is False
    assert server.memberships() == {"alice": Membership.both(["Blue"])}

    cli.set_password("alice", "battery staple", now_ms=LATER)
    assert server.verify("alice", "battery staple") is not None  # reads re-check the file
    assert server.verify("alice", PASSWORD) is None

    cli.path.unlink()
    assert server.reload_if_changed() is True
    assert server.list() == ()


def test_two_writers_do_not_lose_each_others_changes(tmp_path: Path) -> None:
    one, two = store(tmp_path), store(tmp_path)
    one.add("alice", PASSWORD, now_ms=NOW)
    two.add("bob", PASSWORD, now_ms=NOW)  # two has not looked since alice was added
    one.set_groups("alice", Membership.both(["Blue"]), now_ms=LATER)

    assert [u.name for u in store(tmp_path).list()] == ["alice", "bob"]
    with pytest.raises(UserError, match="already exists"):
        two.add("alice", PASSWORD, now_ms=LATER)


def test_store_file_is_owner_only_and_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    users = store(data_dir)
    assert not data_dir.exists()  # opening does not write
    users.add("alice", PASSWORD, now_ms=NOW)
    users.add("bob", PASSWORD, now_ms=NOW)
    users.set_groups("alice", Membership.both(["Blue"]), now_ms=LATER)
    users.remove("bob")

    assert sorted(p.name for p in data_dir.iterdir()) == [USERS_FILE, USERS_FILE + ".lock"]
    assert users.path.stat().st_mode & 0o777 == 0o600
    assert (data_dir / (USERS_FILE + ".lock")).stat().st_mode & 0o777 == 0o600


def test_a_failed_write_keeps_the_old_store_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    before = users.path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(UserStoreError, match=f"cannot write {users.path}: No space left"):
        users.add("bob", PASSWORD, now_ms=NOW)
    monkeypatch.undo()

    assert users.path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))
    assert users.get("bob") is None
    assert [u.name for u in store(tmp_path).list()] == ["alice"]


def test_file_format_is_readable_json_with_groups_by_direction(tmp_path: Path) -> None:
    users = store(tmp_path)
    alice = users.add("alice", PASSWORD, membership_of(["Blue"], inbound=["Reports"]), now_ms=NOW)
    doc = json.loads(users.path.read_text())
    assert doc == {
        "version": 1,
        "users": {
            "alice": {
                "password": alice.password_hash,
                "groups": {"both": ["Blue"], "in": ["Reports"], "out": []},
                "disabled": False,
                "created_ms": NOW,
                "updated_ms": NOW,
                "password_changed_ms": NOW,
            }
        },
    }


def test_hand_written_group_list_means_both_directions(tmp_path: Path) -> None:
    password_hash = CHEAP.hash(PASSWORD)
    doc = {"version": 1, "users": {"alice": {"password": password_hash, "groups": ["Blue"]}}}
    (tmp_path / USERS_FILE).write_text(json.dumps(doc))

    alice = store(tmp_path).verify("alice", PASSWORD)
    assert alice is not None
    assert alice.membership == Membership.both(["Blue"])


def test_hash_made_with_old_parameters_is_redone_on_login(tmp_path: Path) -> None:
    store(tmp_path, CountingHasher(time_cost=1)).add("alice", PASSWORD, now_ms=NOW)
    stronger = store(tmp_path, CountingHasher(time_cost=2))
    old = stronger.get("alice")
    assert old is not None
    assert extract_parameters(old.password_hash).time_cost == 1

    renewed = stronger.verify("alice", PASSWORD)
    assert renewed is not None
    assert extract_parameters(renewed.password_hash).time_cost == 2
    assert renewed.updated_ms == old.updated_ms
    on_disk = store(tmp_path).get("alice")
    assert on_disk == renewed
    assert store(tmp_path).verify("alice", PASSWORD) is not None


def test_without_a_hasher_the_library_default_parameters_are_used(tmp_path: Path) -> None:
    alice = UserStore(tmp_path).add("alice", PASSWORD, now_ms=NOW)
    default = PasswordHasher()
    made = extract_parameters(alice.password_hash)
    assert (made.time_cost, made.memory_cost, made.parallelism) == (
        default.time_cost,
        default.memory_cost,
        default.parallelism,
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "user name is empty"),
        ("a" * 65, "is 65 characters; the limit is 64"),
        ("a/b", "contains a path character"),
        ("a\\b", "contains a path character"),
        ("a..b", "contains '..'"),
        ("..", "contains '..'"),
        (".hidden", "starts with '.'"),
        ("-rf", "starts with '-'"),
        ("al ice", "contains ' '; use only ASCII letters, digits"),
        ("al\x00ice", "contains '\\\\x00'"),
        ("élan", "contains 'é'"),
    ],
)
def test_bad_user_names_are_refused_with_the_reason(
    tmp_path: Path, name: str, message: str
) -> None:
    users = store(tmp_path)
    with pytest.raises(UserError, match=message):
        users.add(name, PASSWORD, now_ms=NOW)
    assert users.list() == ()


def test_longest_and_odd_but_valid_user_names_are_accepted(tmp_path: Path) -> None:
    users = store(tmp_path)
    for name in ("a" * 64, "x", "a.b_c-d", "7", "a.", "Alpha-1"):
        users.add(name, PASSWORD, now_ms=NOW)
    assert len(users.list()) == 6


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("", "group name is empty"),
        ("g" * 65, "is 65 characters; the limit is 64"),
        ("Blue\nRed", "contains the control character '\\\\n'"),
        ("Blue\x7f", "control character"),
        (" Blue", "starts or ends with white space"),
    ],
)
def test_bad_group_names_are_refused_with_the_reason(
    tmp_path: Path, group: str, message: str
) -> None:
    users = store(tmp_path)
    with pytest.raises(UserError, match=message):
        users.add("alice", PASSWORD, Membership.both([group]), now_ms=NOW)
    users.add("alice", PASSWORD, now_ms=NOW)
    with pytest.raises(UserError, match=message):
        users.set_groups("alice", membership_of(outbound=[group]), now_ms=LATER)
    with pytest.raises(UserError, match=message):
        membership_of(inbound=[group])
    assert users.memberships() == {}


def test_group_names_may_hold_spaces_and_any_script(tmp_path: Path) -> None:
    users = store(tmp_path)
    groups = Membership.both(["Team Cyan", "Équipe 2", "__ANON__", "g" * 64])
    assert users.add("alice", PASSWORD, groups, now_ms=NOW).membership == groups


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "password is 0 characters; use at least 8, because shorter passwords"),
        ("1234567", "password is 7 characters; use at least 8"),
        ("p" * 1025, "password is 1025 characters; the limit is 1024"),
    ],
)
def test_bad_passwords_are_refused_with_the_reason(
    tmp_path: Path, password: str, message: str
) -> None:
    users = store(tmp_path)
    with pytest.raises(UserError, match=message):
        users.add("alice", password, now_ms=NOW)
    users.add("alice", PASSWORD, now_ms=NOW)
    with pytest.raises(UserError, match=message):
        users.set_password("alice", password, now_ms=LATER)
    assert users.verify("alice", PASSWORD) is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\x80\x81 binary", "not UTF-8 text"),
        (b"[]", "expected a JSON object"),
        (b'{"version": 2, "users": {}}', "unknown version 2"),
        (b'{"version": 1, "users": []}', "'users' must be an object"),
        (b'{"version": 1, "users": {"a/b": {}}}', "contains a path character"),
        (b'{"version": 1, "users": {"alice": 1}}', "user 'alice' must be an object"),
        (b'{"version": 1, "users": {"alice": {}}}', "user 'alice' has no 'password' hash"),
        (
            b'{"version": 1, "users": {"alice": {"password": "hunter22"}}}',
            "'password' is not an argon2 hash",
        ),
        (
            b'{"version": 1, "users": {"alice": {"passwrod": "x"}}}',
            r"unknown key\(s\) \['passwrod'\]",
        ),
    ],
)
def test_corrupt_store_file_gives_an_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / USERS_FILE).write_bytes(content)
    with pytest.raises(UserStoreError, match=message) as caught:
        UserStore(tmp_path, hasher=CHEAP)
    assert str(tmp_path / USERS_FILE) in str(caught.value)
    assert "move it aside" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"groups": {"in": ["A"], "sideways": ["B"]}}, "alice: unknown key"),
        ({"groups": ["Blue", ""]}, "alice: groups must be a list of non-empty names"),
        ({"groups": ["Blue\n"]}, "user 'alice': group name 'Blue\\\\n' contains"),
        ({"disabled": "no"}, "'disabled' must be true or false"),
        ({"created_ms": "today"}, "'created_ms' must be an integer"),
        ({"updated_ms": True}, "'updated_ms' must be an integer"),
    ],
)
def test_bad_entry_in_store_file_names_the_user_and_the_file(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    doc = {"version": 1, "users": {"alice": {"password": CHEAP.hash(PASSWORD), **entry}}}
    (tmp_path / USERS_FILE).write_text(json.dumps(doc))
    with pytest.raises(UserStoreError, match=message) as caught:
        UserStore(tmp_path, hasher=CHEAP)
    assert str(tmp_path / USERS_FILE) in str(caught.value)


def test_store_corrupted_while_open_is_reported_and_recovers_when_fixed(tmp_path: Path) -> None:
    users = store(tmp_path)
    users.add("alice", PASSWORD, now_ms=NOW)
    good = users.path.read_bytes()

    users.path.write_bytes(b"{oops")
    with pytest.raises(UserStoreError, match="not valid JSON"):
        users.verify("alice", PASSWORD)
    with pytest.raises(UserStoreError, match="not valid JSON"):
        users.add("bob", PASSWORD, now_ms=NOW)
    assert users.path.read_bytes() == b"{oops"  # a broken store is never overwritten

    tmp = tmp_path / "fixed"
    tmp.write_bytes(good)
    os.replace(tmp, users.path)
    assert users.verify("alice", PASSWORD) is not None


def test_unreadable_store_file_gives_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / USERS_FILE).mkdir()  # a directory where the file should be
    with pytest.raises(UserStoreError, match=f"cannot read {tmp_path / USERS_FILE}"):
        UserStore(tmp_path, hasher=CHEAP)


def test_a_new_password_is_stamped_but_other_changes_are_not(tmp_path: Path) -> None:
    users = store(tmp_path)
    assert users.add("alice", PASSWORD, now_ms=NOW).password_changed_ms == NOW
    assert (
        users.set_groups("alice", membership_of(["Red"]), now_ms=LATER).password_changed_ms == NOW
    )
    assert users.set_password("alice", "another passphrase", now_ms=LATER).password_changed_ms == (
        LATER
    )
    assert store(tmp_path).get("alice").password_changed_ms == LATER  # type: ignore[union-attr]
