"""The missions as the API serves them: read from the store once, edited under one lock, every
edit written (state and changes in one transaction) before it is answered or announced.

Who may do what (TAK Server's rules, reference wave2 §1.3-1.4):
- a caller never lists, reads or hears of a mission outside its groups (404, as if none);
- a password mission is read only with its token (``MissionAuthorization`` or
  ``Authorization: Bearer``), its password, or — iTAK sends no token — a certificate whose
  user holds a subscription;
- writing needs a role with ``MISSION_WRITE`` (the token's client, else the named client's
  subscription, else the mission's default role); deleting, setting roles and inviting need
  the owner.
Notices go through the hub (:class:`accord.domain.ports.Exchange`) from a party in the
mission's groups: ``t-x-m-n``/``t-x-m-d`` to every client those groups reach, ``t-x-m-c*`` to
the live subscribers only, ``t-x-m-i``/``t-x-m-r`` to the one client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.xml import decode_xml
from accord.domain.groups import Membership
from accord.domain.ports import Exchange
from accord.identity.token import Audience, TokenError, TokenService
from accord.missions import shape
from accord.missions.codec import (
    contents_diff,
    decode_change,
    decode_mission,
    encode_change,
    encode_mission,
)
from accord.missions.federation import LogRemoved
from accord.missions.model import (
    Change,
    ChangeType,
    Item,
    LogEntry,
    Mission,
    MissionError,
    Role,
    add_items,
    password_matches,
)
from accord.store.contract import MissionStore, StoreError
from accord.store.records import MissionChangeRow, MissionContentRow, MissionRow

log = logging.getLogger("accord.missions")

MISSION_TOKEN_LIFETIME_S = 30 * 24 * 3600  # TAK Server's mission tokens do not expire; 30 days
MAX_INTAKE = 10_000  # <dest mission> events waiting to be added; more are dropped and counted


@dataclass(frozen=True, slots=True)
class Access:
    """What one request may do with one mission."""

    mission: Mission
    client_uid: str  # from the token, else the request's uid/clientUid/creatorUid, else ""
    role: Role

    def need_write(self) -> None:
        if not self.role.writes:
            raise MissionError(
                f"{self.role.value} may not change mission {self.mission.name!r}", 403
            )

    def need_own_content(self) -> None:
        """A partner's mirror: its items, files and metadata are the partner's to change."""
        if self.mission.origin:
            raise MissionError(
                f"mission {self.mission.name!r} mirrors partner {self.mission.origin}'s: only "
                "its logs and subscriptions change here",
                403,
            )

    def need_owner(self) -> None:
        if self.role is not Role.OWNER:
            raise MissionError(f"only the owner may do this to mission {self.mission.name!r}", 403)


def client_uid_of(request: Request) -> str:
    q = request.query_params
    # older iTAK sends CreatorUid
    for key in ("uid", "clientUid", "creatorUid", "CreatorUid"):
        if q.get(key):
            return q[key]
    return ""


def bearer_of(request: Request) -> tuple[str, bool]:
    """The mission token of a request and whether it was sent as one explicitly
    (``MissionAuthorization``); an ``Authorization`` bearer may be a sign-in token instead."""
    for header, explicit in (("missionauthorization", True), ("authorization", False)):
        value = request.headers.get(header, "")
        if value[:7].lower() == "bearer ":
            return value[7:].strip(), explicit
    return "", False


class MissionBook:
    def __init__(
        self,
        store: MissionStore,
        tokens: TokenService,
        exchange: Exchange | None,
        now_ms: Callable[[], int],
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.exchange = exchange
        self.now_ms = now_ms
        self.lock = asyncio.Lock()  # one edit at a time: read, check, write, then cache
        self._by_guid: dict[str, Mission] | None = None
        self._intake: list[tuple[str, Item]] = []  # (mission guid, item) from <dest mission>
        self._woken = asyncio.Event()
        self.intake_dropped = 0  # <dest mission> items not added: the intake was full
        self.added_elsewhere = 0  # <dest mission> items another cluster node adds
        # Shared missions (accord.api.missions_sharing): told of every stored change, the log
        # entries written, edited or removed, and the partner they came from ("" when made here).
        self.on_change: (
            Callable[[Mission, list[tuple[int, Change]], list[LogEntry | LogRemoved], str], None]
            | None
        ) = None
        # Scale-out (issue 17): told the guid of each mission created, changed or deleted
        # here, so that the organisation's other nodes sharing the store re-read it.
        self.on_stored: Callable[[str], None] | None = None
        self.reloads = 0  # times the missions were re-read (another node changed one)

    # -- reading -------------------------------------------------------------------------------
    async def _all(self) -> dict[str, Mission]:
        if self._by_guid is None:
            self._by_guid = await self._load()
        return self._by_guid

    async def _load(self) -> dict[str, Mission]:
        loaded = {}
        for r in await self.store.missions():
            contents = await self.store.mission_contents(r.guid)
            loaded[r.guid] = decode_mission(r.doc, [(c.key, c.doc) for c in contents])
        return loaded

    async def reload(self) -> None:
        """Read every mission from the store again (another node sharing it changed one);
        the missions read before serve until then. Where missions are shared with partners
        (this node holds the partner links), what the other node changed is offered to them
        as if it had been changed here."""
        async with self.lock:
            before = self._by_guid or {}
            after = self._by_guid = await self._load()
            self.reloads += 1
            if self.on_change is not None:
                await self._offer(before, after)

    async def _offer(self, before: dict[str, Mission], after: dict[str, Mission]) -> None:
        assert self.on_change is not None
        for guid, mission in after.items():
            old = before.get(guid)
            first = old.change_count if old is not None else 0
            numbered: list[tuple[int, Change]] = []
            if mission.change_count > first:
                rows = await self.store.mission_changes(guid)
                numbered = [(r.seq, decode_change(r.doc)) for r in rows if r.seq > first]
            logs: list[LogEntry | LogRemoved] = [
                e for k, e in mission.logs.items() if old is None or old.logs.get(k) != e
            ]
            if old is not None:  # removed on the other node: gone from the partners' too
                logs += [LogRemoved(e) for k, e in old.logs.items() if k not in mission.logs]
            if numbered or logs:
                self.on_change(mission, numbered, logs, "")
        for guid, old in before.items():
            if guid not in after:  # deleted on the other node: partners' mirrors go too
                gone = Change(ChangeType.DELETE_MISSION, self.now_ms(), "")
                self.on_change(old, [(0, gone)], [], "")

    def _stored(self, guid: str) -> None:
        if self.on_stored is not None:
            self.on_stored(guid)

    async def all_missions(self) -> dict[str, Mission]:
        """Every mission by guid (the book's cache: edit only under :attr:`lock`)."""
        return await self._all()

    async def visible(self, who: Membership) -> list[Mission]:
        return sorted(
            (m for m in (await self._all()).values() if m.visible_to(who)), key=lambda m: m.name
        )

    async def find(self, who: Membership, name: str = "", guid: str = "") -> Mission:
        for m in (await self._all()).values():
            if (guid and m.guid == guid) or (name and m.name == name):
                if m.visible_to(who):
                    return m
                break
        raise MissionError(f"no mission {guid or name!r}", 404)

    async def changes(self, mission: Mission) -> list[Change]:
        return [decode_change(r.doc) for r in await self.store.mission_changes(mission.guid)]

    # -- tokens and access ---------------------------------------------------------------------
    def token(self, mission: Mission, client_uid: str) -> str:
        return self.tokens.issue(
            f"{mission.guid}|{client_uid}",
            Audience.MISSION,
            self.now_ms() / 1000,
            MISSION_TOKEN_LIFETIME_S,
        )

    def access(self, request: Request, mission: Mission, user: str | None) -> Access:
        """``user``: who signed the request (certificate CN, user name), for iTAK's access."""
        token, explicit = bearer_of(request)
        client = client_uid_of(request)
        if token:
            try:
                claims = self.tokens.verify(token, Audience.MISSION, self.now_ms() / 1000)
            except TokenError as exc:
                if explicit:
                    raise MissionError(f"mission token refused: {exc}", 401) from None
                claims = None  # a sign-in token in Authorization: not a mission token
            if claims is not None:
                guid, _, token_client = claims.subject.partition("|")
                if guid != mission.guid:
                    raise MissionError(
                        f"the token is for another mission, not {mission.name!r}", 401
                    )
                role = mission.role_of(token_client) or mission.default_role
                return Access(mission, token_client, role)
        known = mission.role_of(client) if client else None
        if mission.password_protected:
            password = request.query_params.get("password", "")
            sub = mission.subscriptions.get(client) if client else None
            itak = sub is not None and user is not None and sub.username == user
            if not itak and not (password and password_matches(mission, password)):
                raise MissionError(
                    f"mission {mission.name!r} is password-protected: send its token "
                    "(MissionAuthorization: Bearer …) or its password",
                    403 if not password else 401,
                )
        return Access(mission, client, known or mission.default_role)

    # -- writing -------------------------------------------------------------------------------
    def _rows(
        self, mission: Mission, changes: Sequence[Change]
    ) -> tuple[Mission, list[MissionChangeRow]]:
        first = mission.change_count + 1
        rows = [
            MissionChangeRow(mission.guid, first + i, c.time_ms, encode_change(c))
            for i, c in enumerate(changes)
        ]
        return dataclasses.replace(mission, change_count=mission.change_count + len(rows)), rows

    async def create(self, mission: Mission, change: Change) -> bool:
        """Store a new mission; False when its name is taken (by anyone: 409 either way)."""
        missions = await self._all()
        mission, rows = self._rows(mission, [change])
        if not await self.store.create_mission(
            MissionRow(mission.guid, mission.name, encode_mission(mission)), rows
        ):
            return False
        missions[mission.guid] = mission
        self._stored(mission.guid)
        self.broadcast(mission, "t-x-m-n", "CREATE", mission.creator_uid)
        return True

    async def update(
        self, mission: Mission, changes: Sequence[Change] = (), *, federated_from: str = ""
    ) -> Mission:
        """Write the edited mission and its changes, then tell the subscribers (and the
        partners it is shared with; ``federated_from``: the partner the edit came from)."""
        missions = await self._all()
        before = missions.get(mission.guid)
        if before is None:
            raise MissionError(f"mission {mission.name!r} was deleted meanwhile", 404)
        mission, rows = self._rows(mission, changes)
        row = MissionRow(mission.guid, mission.name, encode_mission(mission))
        put, drop = contents_diff(before, mission)
        written = [MissionContentRow(mission.guid, k, d) for k, d in put]
        if not await self.store.update_mission(row, rows, written, drop):
            raise MissionError(f"mission {mission.name!r} was deleted meanwhile", 404)
        missions[mission.guid] = mission
        self._stored(mission.guid)
        for change in changes:
            self.tell_subscribers(
                mission, "t-x-m-c", change.creator_uid, shape.change_xml(change, mission)
            )
        if self.on_change is not None:
            logs: list[LogEntry | LogRemoved] = [
                e for k, e in mission.logs.items() if before.logs.get(k) is not e
            ]
            logs += [LogRemoved(e) for k, e in before.logs.items() if k not in mission.logs]
            numbered = [(r.seq, c) for r, c in zip(rows, changes, strict=True)]
            if numbered or logs:
                self.on_change(mission, numbered, logs, federated_from)
        return mission

    async def delete(self, mission: Mission, author_uid: str, federated_from: str = "") -> None:
        """Delete ``mission`` (notifying everyone it reached); ``federated_from``: the partner
        whose deletion of its origin mission this is (never offered back there)."""
        missions = await self._all()
        await self.store.delete_mission(mission.guid)
        missions.pop(mission.guid, None)
        self._stored(mission.guid)
        self.broadcast(mission, "t-x-m-d", "DELETE", author_uid)
        if self.on_change is not None:  # partners' mirrors of it go too
            gone = Change(ChangeType.DELETE_MISSION, self.now_ms(), author_uid)
            self.on_change(mission, [(0, gone)], [], federated_from)

    # -- <dest mission> (the hub's MissionDests) ------------------------------------------------
    def subscribers(
        self, event: CotEvent, sender: Membership, *, add: bool = True
    ) -> tuple[str, ...]:
        names = {d.value for d in event.detail.dests if d.kind == "mission"}
        guids = {d.value for d in event.detail.dests if d.kind == "mission-guid"}
        if not (names or guids) or self._by_guid is None:
            return ()
        uids: list[str] = []
        for m in self._by_guid.values():
            named = m.name in names or m.guid in guids
            if not named or sender.inbound.isdisjoint(m.groups):
                continue
            if not (m.role_of(event.uid) or m.default_role).writes:
                continue
            uids += [s.client_uid for s in m.subscriptions.values() if s.live]
            if m.origin:
                continue  # a partner's mirror: its items are the partner's to add
            if not add:
                self.added_elsewhere += 1
                continue
            if len(self._intake) >= MAX_INTAKE:
                self.intake_dropped += 1
                continue
            contact = event.detail.contact
            item = Item(
                event.uid,
                event.uid,
                self.now_ms(),
                event.type,
                contact.callsign if contact else "",
                event.point.lat,
                event.point.lon,
            )
            self._intake.append((m.guid, item))
            self._woken.set()
        return tuple(dict.fromkeys(uids))

    async def run(self) -> None:
        """Add the items ``<dest mission>`` events brought (a background task)."""
        await self._all()
        while True:
            await self._woken.wait()
            self._woken.clear()
            batch, self._intake = self._intake, []
            async with self.lock:
                missions = await self._all()
                for guid, item in batch:
                    mission = missions.get(guid)
                    if mission is None or item.uid in mission.items:
                        continue
                    try:
                        mission, changes = add_items(mission, [item], item.time_ms)
                        await self.update(mission, changes)
                    except (MissionError, StoreError) as exc:
                        log.warning("%s not added to mission %r: %s", item.uid, mission.name, exc)

    # -- notices -------------------------------------------------------------------------------
    def _submit(self, mission: Mission, xml: bytes) -> None:
        if self.exchange is None:
            return
        try:
            event = decode_xml(xml)
        except MalformedEvent as exc:  # a bug here, not the client's: say so, answer anyway
            log.error("mission notice did not encode: %s", exc)
            return
        party = self.exchange.new_party(
            Membership(mission.groups, frozenset()), "missions", receives=False, relays=True
        )
        self.exchange.submit(party, event)

    def broadcast(self, mission: Mission, cot_type: str, kind: str, author_uid: str) -> None:
        if mission.invite_only and kind == "CREATE":
            return
        uid = str(uuid.uuid4())
        self._submit(
            mission, shape.notice_xml(cot_type, kind, mission, author_uid, uid, self.now_ms())
        )

    def tell(
        self,
        mission: Mission,
        uids: Sequence[str],
        cot_type: str,
        kind: str,
        author_uid: str,
        inner: str = "",
        token: str | None = None,
    ) -> None:
        if not uids:
            return
        xml = shape.notice_xml(
            cot_type, kind, mission, author_uid, str(uuid.uuid4()), self.now_ms(), inner, token
        )
        dests = "".join(f'<dest uid="{shape.escape_attr(u)}"/>' for u in uids)
        self._submit(
            mission, xml.replace(b"</detail>", f"<marti>{dests}</marti></detail>".encode())
        )

    def tell_subscribers(
        self, mission: Mission, cot_type: str, author_uid: str, inner: str
    ) -> None:
        live = [s.client_uid for s in mission.subscriptions.values() if s.live]
        self.tell(mission, live, cot_type, "CHANGE", author_uid, inner)


def new_guid() -> str:
    return str(uuid.uuid4())


def new_salt() -> bytes:
    return secrets.token_bytes(16)
