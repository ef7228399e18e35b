"""Password sign-in throttles: guessing is slow, and nobody can lock a user out."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles

from accord.domain.groups import Membership
from accord.identity.signin import (
    ADDRESS_BACKOFF_MAX_S,
    ADDRESS_BACKOFF_S,
    ADDRESS_FAILURES_FREE,
    NAME_FAILURES_ALLOWED,
    NAME_WINDOW_S,
    AddressThrottle,
    Refusal,
    SignIn,
)
from accord.identity.users import User, UserStore

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
PASSWORD = "correct horse battery"
ATTACKER, OWNER = "203.0.113.9", "198.51.100.7"


@pytest.fixture
def signin(tmp_path: Path) -> SignIn:
    users = UserStore(tmp_path, hasher=CHEAP)
    users.add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=0)
    return SignIn(users)


def test_five_wrong_passwords_for_a_name_do_not_lock_its_owner_out(signin: SignIn) -> None:
    now = 1000.0
    for _ in range(ADDRESS_FAILURES_FREE):
        assert signin.check(ATTACKER, "alice", "guess", now) is Refusal.WRONG
    assert signin.check(ATTACKER, "alice", PASSWORD, now) is Refusal.THROTTLED  # the attacker
    user = signin.check(OWNER, "alice", PASSWORD, now + 1)  # the owner, elsewhere, at once
    assert isinstance(user, User)
    assert user.name == "alice"


def test_an_address_backs_off_doubling_up_to_the_cap(signin: SignIn) -> None:
    now = 0.0
    for _ in range(ADDRESS_FAILURES_FREE):
        assert signin.check(ATTACKER, "alice", "guess", now) is Refusal.WRONG
    waits = []
    for _ in range(8):
        wait = signin.addresses.wait_s(ATTACKER, now)
        waits.append(wait)
        assert signin.check(ATTACKER, "alice", "guess", now + wait - 0.5) is Refusal.THROTTLED
        now += wait
        assert signin.check(ATTACKER, "alice", "guess", now) is Refusal.WRONG
    assert waits[:4] == [ADDRESS_BACKOFF_S * 2**i for i in range(4)]
    assert waits[-1] == ADDRESS_BACKOFF_MAX_S
    # The throttled attempts were never checked: another name from there waits too.
    assert signin.check(ATTACKER, "bob", "x", now) is Refusal.THROTTLED
    assert signin.wait_s(ATTACKER, now) == ADDRESS_BACKOFF_MAX_S


def test_a_correct_password_resets_the_address(signin: SignIn) -> None:
    for _ in range(ADDRESS_FAILURES_FREE - 1):
        signin.check(OWNER, "alice", "typo", 0.0)
    assert isinstance(signin.check(OWNER, "alice", PASSWORD, 0.0), User)
    for _ in range(ADDRESS_FAILURES_FREE - 1):
        assert signin.check(OWNER, "alice", "typo", 0.0) is Refusal.WRONG
    assert isinstance(signin.check(OWNER, "alice", PASSWORD, 0.0), User)


def test_a_quiet_address_is_forgotten() -> None:
    throttle = AddressThrottle(free=2, first_wait_s=10, max_wait_s=100, forget_s=50)
    for _ in range(4):
        throttle.failed("a", 0.0)
    assert throttle.wait_s("a", 1.0) == 39.0  # 10 * 2**2 from the last failure
    assert throttle.wait_s("a", 49.0) == 0.0  # block over, not yet forgotten
    throttle.failed("a", 49.0)  # so this one adds to the count
    assert throttle.wait_s("a", 49.0) == 80.0
    assert throttle.wait_s("a", 49.0 + 80.0) == 0.0
    throttle.failed("a", 49.0 + 80.0 + 50.0)  # quiet for 50 s: counted from zero
    assert throttle.wait_s("a", 49.0 + 80.0 + 50.0) == 0.0


def test_many_addresses_make_a_name_wait_but_not_for_its_owners_address(signin: SignIn) -> None:
    assert isinstance(signin.check(OWNER, "alice", PASSWORD, 0.0), User)  # a known address
    for i in range(NAME_FAILURES_ALLOWED):
        assert signin.check(f"10.0.{i // 256}.{i % 256}", "alice", "guess", 1.0) is Refusal.WRONG
    assert signin.check("10.9.9.9", "alice", PASSWORD, 2.0) is Refusal.THROTTLED  # new address
    assert isinstance(signin.check(OWNER, "alice", PASSWORD, 2.0), User)  # the owner's
    # The name limit is per name and passes with its window.
    assert signin.check("10.9.9.9", "bob", "x", 2.0) is Refusal.WRONG
    assert isinstance(signin.check("10.9.9.9", "alice", PASSWORD, 1.0 + NAME_WINDOW_S), User)


def test_memory_stays_bounded_under_a_spray_of_addresses_and_names(signin: SignIn) -> None:
    from accord.identity import signin as module

    for i in range(module.MAX_KEYS + 50):
        signin.addresses.failed(f"a{i}", 0.0)
        signin.names.failed(f"n{i}" + "x" * 10, 0.0)
    assert len(signin.addresses._strikes) == module.MAX_KEYS
    assert len(signin.names._failures) == module.MAX_KEYS
    long_name = "y" * 100_000
    signin.check(ATTACKER, long_name, "x", 0.0)
    assert all(len(key) <= module.MAX_NAME_KEY_CHARS for key in signin.names._failures)


def test_signing_in_as_oneself_does_not_reset_guesses_at_another_name(tmp_path: Path) -> None:
    users = UserStore(tmp_path, hasher=CHEAP)
    users.add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=0)
    users.add("mallory", "mallory's own", Membership.both(["Blue"]), now_ms=0)
    signin = SignIn(users)
    guesses = 0
    for _ in range(10):  # 4 guesses at alice, then 1 correct sign-in of the attacker's own
        for _ in range(ADDRESS_FAILURES_FREE - 1):
            if signin.check(ATTACKER, "alice", "guess", 0.0) is Refusal.WRONG:
                guesses += 1
        signin.check(ATTACKER, "mallory", "mallory's own", 0.0)
    assert guesses == ADDRESS_FAILURES_FREE  # then the address waits, whoever signs in
    assert signin.check(ATTACKER, "alice", PASSWORD, 0.0) is Refusal.THROTTLED
    assert signin.addresses.wait_s(ATTACKER, 0.0) == ADDRESS_BACKOFF_S
