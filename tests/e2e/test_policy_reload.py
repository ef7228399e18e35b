"""`kill -HUP` on a running `accord serve` reloads the partners' release policies."""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from accord.federation.trust import fingerprint
from accord.identity.pki import ensure_pki
from tests.e2e.conftest import Served, free_port

POLICY = 'name = "to-b"\npartner = "org-b"\n[[rule]]\nname = "sa"\ntypes = ["a-f-*"]\n'


def _wait_for(served: Served, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in served.text():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{served.text()}"
        time.sleep(0.05)


def test_sighup_puts_an_edited_policy_in_force_and_a_bad_one_changes_nothing(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    partner = ensure_pki(tmp_path / "org-b" / "pki", ("localhost",), dt.datetime.now(dt.UTC))
    pin = fingerprint(x509.load_pem_x509_certificate(partner.ca_cert.read_bytes()))
    policy = tmp_path / "to-b.toml"
    policy.write_text(POLICY)
    config = tmp_path / "accord.toml"
    config.write_text(
        f"federation_port = {free_port()}\nfederation_files_port = {free_port()}\n"
        f'drone_port = 0\n[[partners]]\nname = "org-b"\nca_sha256 = "{pin}"\n'
        f'ca_file = "{partner.ca_cert}"\npolicy_file = "{policy}"\n'
    )
    served = serve("--config", str(config))

    served.proc.send_signal(signal.SIGHUP)
    _wait_for(served, "release policies reloaded: none changed")
    policy.write_text(POLICY + '[[rule]]\nname = "markers"\ntypes = ["b-m-p-*"]\n')
    served.proc.send_signal(signal.SIGHUP)
    _wait_for(served, "release policies reloaded: org-b (sha256:")
    policy.write_text(POLICY + "[[rule]]\nname = 3\n")
    served.proc.send_signal(signal.SIGHUP)
    _wait_for(served, "release policies not reloaded, those in force stay")
    assert "to-b.toml" in served.text().split("not reloaded")[-1]
    assert served.proc.poll() is None  # still serving
