"""``accord partner add|list|remove|self``: the partners of ``<data_dir>/partners.toml``.

Read at start (restart the server after a change; in a cluster the running node notices the
change, publishes it and every node puts it in force: see docs/scaling.md). ``self`` prints
what a partner's admin needs to pin this server: the CA file and its SHA-256 fingerprint, and
the ledger public key that checks our checkpoints and receipts. ``add --policy FILE`` checks
the release policy and keeps a copy in the data dir (what was checked is what is in force);
``--ledger-key`` keeps the partner's ledger public key in ``pki/partners/<name>.vkey`` for
``accord ledger verify``.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from accord.app.running import read_record
from accord.config import Config, ConfigError
from accord.domain.partners import Partner, PartnerError, check_unique, normalise_fingerprint
from accord.federation import partners_toml
from accord.federation.trust import fingerprint
from accord.geo.config import SeparationConfigError
from accord.geo.config import from_mapping as separation_from_mapping
from accord.identity.ca import PkiError, PkiPaths, load_authority
from accord.identity.ledger_key import PARTNERS, ledger_verifier, read_verifier
from accord.policy import PolicyError, decode_policy


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("partner", help="federation partners (partners.toml in the data dir)")
    verbs = p.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", parents=[common], help="add or replace a partner")
    add.add_argument("name", help="short name: logs, metrics, provenance")
    add.add_argument("--ca", type=Path, required=True, help="the partner's CA certificate (PEM)")
    add.add_argument(
        "--sha256",
        help="the CA fingerprint the partner's admin told you; refused if the file differs",
    )
    add.add_argument("--address", default="", help="host:port to dial (omit: it dials us)")
    add.add_argument("--groups-in", action="append", help="local groups its events go to")
    add.add_argument("--groups-out", action="append", help="local groups whose events go to it")
    add.add_argument("--prefix", default=None, help='callsign prefix (default "[NAME] ")')
    add.add_argument("--share-all", action="store_true", help="without a policy: share all")
    add.add_argument("--policy", type=Path, help="release policy document for this partner")
    add.add_argument(
        "--separation", type=Path,
        help="TOML of the separation thresholds agreed with it ([separation] keys, e.g. "
        "horizontal_m = 300): they apply to pairs with its tracks",
    )  # fmt: skip
    add.add_argument(
        "--ledger-key", help="the partner's ledger public key (vkey string or file), from its self"
    )
    verbs.add_parser("list", parents=[common], help="list the partners")
    remove = verbs.add_parser("remove", parents=[common], help="remove a partner")
    remove.add_argument("name")
    verbs.add_parser("self", parents=[common], help="print this server's CA fingerprint")


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        return {"add": _add, "list": _list, "remove": _remove, "self": _self}[args.verb](
            args, config
        )
    except PartnerError as exc:
        raise ConfigError(str(exc)) from None


def _stored(data_dir: Path) -> list[Partner]:
    """The entries as written (``ca_file`` relative to the data dir)."""
    return [
        replace(
            p,
            ca_file=_relative(p.ca_file, data_dir),
            policy_file=_relative(p.policy_file, data_dir) if p.policy_file else "",
        )
        for p in partners_toml.read(data_dir)
    ]


def _relative(path: str, data_dir: Path) -> str:
    try:
        return str(Path(path).relative_to(data_dir))
    except ValueError:
        return path


def _separation(path: Path) -> tuple[tuple[str, float], ...]:
    """The agreed thresholds of a TOML file (top-level keys or a [separation] table), checked."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PartnerError(f"--separation {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PartnerError(f"--separation {path}: {exc}") from None
    table = data.get("separation", data)
    try:
        separation_from_mapping(table, str(path))
    except SeparationConfigError as exc:
        raise PartnerError(str(exc)) from None
    return tuple((k, float(v)) for k, v in sorted(table.items()))


def _add(args: argparse.Namespace, config: Config) -> int:
    try:
        ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
    except ValueError:
        raise PartnerError(f"{args.ca} is not a PEM certificate") from None
    actual = fingerprint(ca)
    if args.sha256 and normalise_fingerprint(args.sha256) != actual:
        raise PartnerError(
            f"{args.ca} has SHA-256 {actual}, not the {args.sha256} you were given: "
            "do not add it; check with the partner's admin"
        )
    policy_file = _store_policy(args.policy, args.name, config.data_dir) if args.policy else ""
    vkey = None
    if args.ledger_key:
        try:
            vkey = read_verifier(args.ledger_key)
        except PkiError as exc:
            raise PartnerError(f"--ledger-key: {exc}") from None
    stored = Path("partners") / f"{args.name}-ca.pem"
    (config.data_dir / "partners").mkdir(parents=True, exist_ok=True)
    (config.data_dir / stored).write_bytes(args.ca.read_bytes())
    if vkey is not None:
        keys = config.data_dir / "pki" / PARTNERS
        keys.mkdir(parents=True, exist_ok=True)
        (keys / f"{args.name}.vkey").write_text(vkey.vkey() + "\n")
    separation = _separation(args.separation) if args.separation else ()
    partner = Partner(
        name=args.name,
        ca_sha256=actual,
        ca_file=str(stored),
        address=args.address,
        groups_in=tuple(args.groups_in or ("__ANON__",)),
        groups_out=tuple(args.groups_out or ("__ANON__",)),
        callsign_prefix=f"[{args.name}] " if args.prefix is None else args.prefix,
        share_all=args.share_all,
        policy_file=policy_file,
        separation=separation,
    )
    partners = [p for p in _stored(config.data_dir) if p.name != args.name] + [partner]
    check_unique(partners, "partners.toml")
    partners_toml.write(config.data_dir, tuple(partners))
    print(f"partner {args.name} pinned to CA SHA-256 {actual}")
    if not args.sha256:
        print("compare this fingerprint with the partner's admin (`accord partner self` there)")
    if policy_file:
        kept = (config.data_dir / policy_file).resolve()
        print(f"release policy checked and kept as {kept}")
        running = read_record(config.data_dir)
        pid = running.pid if running is not None else "<accord pid>"
        print(
            f"edit that copy, not {args.policy}: the server reads it at start and on "
            f"`kill -HUP {pid}`"
        )
    elif not args.share_all:
        print("no --policy: nothing will be released to it (deny by default)")
    if vkey is not None:
        print(f"ledger key {vkey.name} kept for `accord ledger verify`")
    print(_in_force(config, "restart the server to bring the link up"))
    return 0


def _store_policy(source: Path, name: str, data_dir: Path) -> str:
    """Check ``source`` and copy it to ``partners/<name>-policy.toml``; its relative path."""
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise PartnerError(f"cannot read --policy {source}: {exc.strerror}") from None
    try:
        decode_policy(raw)
    except PolicyError as exc:
        problems = "\n  ".join(issue.format(str(source)) for issue in exc.issues)
        raise PartnerError(f"--policy {source} is not a valid policy:\n  {problems}") from None
    stored = Path("partners") / f"{name}-policy.toml"
    (data_dir / "partners").mkdir(parents=True, exist_ok=True)
    (data_dir / stored).write_bytes(raw)
    return str(stored)


def _list(args: argparse.Namespace, config: Config) -> int:
    for p in (*config.partners, *partners_toml.read(config.data_dir)):
        mode = f"dials {p.address}" if p.address else "dials us"
        share = "share_all" if p.share_all else ("policy" if p.policy_file else "deny")
        print(f"{p.name}\t{mode}\tca_sha256={p.ca_sha256}\tin={','.join(p.groups_in)}"
              f"\tout={','.join(p.groups_out)}\t{share}")  # fmt: skip
    return 0


def _remove(args: argparse.Namespace, config: Config) -> int:
    partners = _stored(config.data_dir)
    kept = [p for p in partners if p.name != args.name]
    if len(kept) == len(partners):
        raise PartnerError(f"no partner {args.name!r} in {partners_toml.path(config.data_dir)}")
    partners_toml.write(config.data_dir, tuple(kept))
    print(
        f"removed partner {args.name}; " + _in_force(config, "restart the server to drop the link")
    )
    return 0


def _in_force(config: Config, alone: str) -> str:
    """What puts a change of partners.toml in force: a restart, or (in a cluster) nothing."""
    if config.cluster.enabled:
        return "the running node publishes it to the cluster within a second (no restart)"
    return alone


def _self(args: argparse.Namespace, config: Config) -> int:
    """Read-only: the CA and ledger key the server of this data directory uses (never made
    here: a fresh CA's fingerprint sent to a partner would pin the wrong server)."""
    paths = PkiPaths(config.data_dir / "pki")
    load_authority(paths)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    host = config.server_names[0]
    print(f"ca_file   {paths.ca_cert.resolve()}")
    print(f"ca_sha256 {fingerprint(ca)}")
    print(f"name      {config.federation_name or host}")
    print(f"address   {host}:{config.federation_port}")
    if config.federation_files_port:  # not needed by the partner's admin: for its firewall
        print(f"files     {host}:{config.federation_files_port}")
    verifier = ledger_verifier(paths.root)
    if verifier is None:
        print("ledger_key (none yet: `accord serve` or `accord cert init` makes it)")
    else:
        print(f"ledger_key {verifier.vkey()}")
    return 0
