"""``<data_dir>/partners.toml``: the partners added with ``accord partner add``."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

from accord.domain.partners import Partner, PartnerError, parse_partners, to_table

FILE_NAME = "partners.toml"


def path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def read(data_dir: Path) -> tuple[Partner, ...]:
    """The partners of the file (none when it does not exist); ``ca_file`` and
    ``policy_file`` paths in it are relative to the data directory and come back resolved
    against it."""
    file = path(data_dir)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise PartnerError(f"cannot read {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PartnerError(f"{file} is not valid TOML: {exc}") from None
    entries = data.get("partners", [])
    if not isinstance(entries, list):
        raise PartnerError(f"{file}: expected [[partners]] tables")
    partners = parse_partners(entries, str(file))
    return tuple(
        replace(
            p,
            ca_file=str(data_dir / p.ca_file) if p.ca_file else "",
            policy_file=str(data_dir / p.policy_file) if p.policy_file else "",
        )
        for p in partners
    )


def write(data_dir: Path, partners: tuple[Partner, ...]) -> None:
    """Replace the file with ``partners`` (``ca_file`` as given: keep it data-dir relative)."""
    lines = ["# Partners of this Accord server; edit with `accord partner add|remove`.", ""]
    for partner in partners:
        lines.append("[[partners]]")
        for key, value in to_table(partner).items():
            # A JSON string or list of strings is also a valid TOML value.
            if isinstance(value, dict):  # an inline table (the agreed separation)
                pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {pairs} }}")
                continue
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    file = path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(file)
