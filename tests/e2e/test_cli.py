"""``accord serve`` as an operator runs it: a real process, real signals, real logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from accord.cot.xml import encode_xml
from accord.server import memory
from tests.e2e.clients import sa
from tests.e2e.conftest import Served


def accord(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_unknown_config_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "accord.toml"
    config.write_text("tcp_prot = 8087\n")
    result = accord("serve", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unknown key 'tcp_prot'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    result = accord("serve", "--data-dir", str(tmp_path), env={"ACCORD_TLS_PORT": "eighty"})
    assert result.returncode == 2
    assert "tls_port" in result.stderr
    assert "integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_says_which_and_how_to_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = accord(
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--tcp-port",
            str(port),
            "--tls-port",
            "0",
            "--udp-port",
            "0",
            "--enroll-port",
            "0",
            "--https-port",
            "0",
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert "--tcp-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # checked before a CA or a database is made


def test_bind_address_not_on_this_machine_is_explained(tmp_path: Path) -> None:
    # TEST-NET-3 (RFC 5737): never assigned to a host, so the bind fails at once, no traffic.
    result = accord(
        "serve", "--data-dir", str(tmp_path / "data"), "--bind", "203.0.113.7", "--udp-port", "0"
    )
    assert result.returncode == 2
    assert "203.0.113.7 is not on this machine" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_unreadable_ca_is_reported_with_the_fix(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "ca.pem").write_text("not a certificate")
    (pki / "ca.key").write_text("not a key")
    (pki / "ca.key").chmod(0o600)
    result = accord("serve", "--data-dir", str(tmp_path), "--udp-port", "0")
    assert result.returncode == 2
    assert "cannot read the CA" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_routes_logs_and_stops_cleanly_on_sigterm(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    ca_first = (tmp_path / "data" / "pki" / "ca.pem").read_bytes()
    a = socket.create_connection(("127.0.0.1", served.tcp))
    b = socket.create_connection(("127.0.0.1", served.tcp))
    b.settimeout(5)
    a.sendall(encode_xml(sa("CLI-1", "CLIALPHA")))
    assert b"CLI-1" in b.recv(65536)
    a.close()
    assert b"t-x-d-d" in b.recv(65536)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(10) == 0
    text = served.text()
    assert "connect peer=127.0.0.1:" in text
    assert "disconnect peer=127.0.0.1:" in text
    assert "uid=CLI-1 callsign=CLIALPHA" in text
    assert "stopped" in text
    assert "Traceback" not in text
    b.close()

    again = serve()  # the CA made on first start is kept and reused
    assert (tmp_path / "data" / "pki" / "ca.pem").read_bytes() == ca_first
    again.proc.send_signal(signal.SIGINT)
    assert again.proc.wait(10) == 0


def test_json_logs_are_one_object_per_line(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve("--log-json")
    sock = socket.create_connection(("127.0.0.1", served.tcp))
    sock.close()
    time.sleep(0.3)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(10) == 0
    lines = [json.loads(line) for line in served.text().splitlines() if line.strip()]
    assert any("connect peer=" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


@pytest.mark.timeout(240)  # ten CLI processes: on a loaded 2-core CI machine, ~10 s each
def test_cert_commands_init_issue_list_and_revoke(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert accord("cert", "init", *data).returncode == 0
    ca = (tmp_path / "data" / "pki" / "ca.pem").read_bytes()
    again = accord("cert", "init", *data)  # as the README says: on an existing one too
    assert again.returncode == 0, again.stderr
    assert "CA kept" in again.stdout
    assert (tmp_path / "data" / "pki" / "ca.pem").read_bytes() == ca
    issued = accord("cert", "client", "alice", "--out", str(tmp_path / "out"), *data)
    assert issued.returncode == 0, issued.stderr
    assert (tmp_path / "out" / "alice.p12").exists()
    listed = accord("cert", "list", *data)
    assert "alice" in listed.stdout
    assert "valid" in listed.stdout
    assert accord("cert", "revoke", "alice", *data).returncode == 0
    assert "revoked" in accord("cert", "list", *data).stdout
    twice = accord("cert", "revoke", "alice", *data)
    assert twice.returncode == 2
    assert "already revoked" in twice.stderr
    unknown = accord("cert", "revoke", "nobody", *data)
    assert unknown.returncode == 2
    assert "no certificate was issued to 'nobody'" in unknown.stderr
    bad = accord("cert", "client", "../etc/x", *data)
    assert bad.returncode == 2
    assert "cannot be a certificate name" in bad.stderr


def test_user_commands_add_list_change_and_remove(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]

    def user(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "accord", "user", *args, *data],
            input=password,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = user("add", "alice", "--group", "Blue", "--in", "Reports", "--password-stdin",
                 password="correct horse\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = user("list").stdout
    assert "alice groups=Blue in=Reports" in listed
    assert user("groups", "alice", "--group", "Red").returncode == 0
    assert "alice groups=Red" in user("list").stdout
    short = user("passwd", "alice", "--password-stdin", password="short\n")
    assert short.returncode == 2
    assert "at least 8" in short.stderr
    duplicate = user("add", "Alice", "--password-stdin", password="another pass\n")
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr
    evil = user("add", "../root", "--password-stdin", password="another pass\n")
    assert evil.returncode == 2
    assert "path character" in evil.stderr
    assert user("remove", "alice").returncode == 0
    assert "alice" not in user("list").stdout


def test_package_command_writes_an_importable_connection_package(tmp_path: Path) -> None:
    import io
    import zipfile

    from cryptography.hazmat.primitives.serialization import pkcs12
    from lxml import etree

    data = ["--data-dir", str(tmp_path / "data")]
    assert accord("cert", "init", *data).returncode == 0  # from here, one command to a package
    out = tmp_path / "alice.zip"
    made = accord(
        "package", "alice", "--group", "Blue", "--host", "tak.example.org", "--out", str(out),
        *data,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "new user alice (groups: Blue)" in made.stdout
    archive = zipfile.ZipFile(io.BytesIO(out.read_bytes()))
    names = set(archive.namelist())
    assert names == {
        "MANIFEST/manifest.xml",
        "certs/config.pref",
        "certs/truststore-tak.example.org.p12",
        "certs/alice-tak.example.org.p12",
    }
    pref = etree.fromstring(archive.read("certs/config.pref"))
    entries = {e.get("key"): e.text for e in pref.iter("entry")}
    assert entries["connectString0"] == "tak.example.org:8089:ssl"
    key, cert, _ = pkcs12.load_key_and_certificates(
        archive.read("certs/alice-tak.example.org.p12"), entries["clientPassword0"].encode()
    )
    assert key is not None
    assert cert is not None
    enroll = tmp_path / "enroll.zip"
    made = accord("package", "alice", "--enroll", "--out", str(enroll), *data)
    assert made.returncode == 0, made.stderr
    assert not any(
        "alice" in name for name in zipfile.ZipFile(io.BytesIO(enroll.read_bytes())).namelist()
    )


def test_qr_command_encodes_an_enrollment_link_that_signs_in(tmp_path: Path) -> None:
    import zxingcpp
    from PIL import Image

    from accord.identity.users import UserStore

    data = ["--data-dir", str(tmp_path / "data")]
    subprocess.run(
        [sys.executable, "-m", "accord", "user", "add", "alice", "--password-stdin", *data],
        input="first password\n", text=True, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    png = tmp_path / "alice.png"
    made = accord("qr", "alice", "--host", "tak.example.org", "--out", str(png), *data)
    assert made.returncode == 0, made.stderr
    (decoded,) = zxingcpp.read_barcodes(Image.open(png))
    assert decoded.text.startswith(
        "tak://com.atakmap.app/enroll?host=tak.example.org&username=alice&token="
    )
    token = decoded.text.rsplit("token=", 1)[1]
    store = UserStore(tmp_path / "data")
    assert store.verify("alice", token) is not None  # the token is the enrolment password
    assert store.verify("alice", "first password") is None
    itak = accord("qr", "alice", "--itak", "--host", "tak.example.org", "--out", str(png), *data)
    assert itak.returncode == 0
    (decoded,) = zxingcpp.read_barcodes(Image.open(png))
    assert decoded.text == "Accord tak.example.org,tak.example.org,8089,SSL"


def test_ca_directory_problems_are_explained_and_change_nothing(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert accord("cert", "init", *data).returncode == 0
    key = tmp_path / "data" / "pki" / "ca.key"
    key.chmod(0o644)
    exposed = accord("cert", "client", "alice", "--out", str(tmp_path / "out"), *data)
    assert exposed.returncode == 2
    assert "can be read by other users" in exposed.stderr
    assert not (tmp_path / "out").exists()
    key.chmod(0o600)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    result = accord("cert", "init", "--data-dir", str(blocked))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_package_leaves_no_device_key_on_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = accord("package", "alice", "--out", str(tmp_path / "a.zip"), "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    keys = sorted(p.name for p in data_dir.rglob("*.key"))
    assert keys == ["ca.key", "server.key"]


READ_ONLY = [
    ["history"],
    ["ledger", "show"],
    ["ledger", "verify"],
    ["partner", "self"],
    ["partner", "list"],
    ["cert", "list"],
    ["cert", "revoke", "alice"],
    ["status"],
    ["drone", "list"],
]


def test_read_only_commands_on_a_mistyped_data_dir_say_so_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.cli import main

    missing = tmp_path / "acord-data"
    for command in READ_ONLY:
        assert main([*command, "--data-dir", str(missing)]) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1, (command, err)
        assert str(missing) in err, command
        assert "--data-dir" in err, command
        assert not missing.exists(), command


def test_read_only_commands_on_an_empty_data_dir_leave_it_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    for command in READ_ONLY:
        assert main([*command, "--data-dir", str(empty)]) == 2, command
        assert str(empty) in capsys.readouterr().err, command
        assert list(empty.iterdir()) == [], command


def test_partner_self_prints_the_ca_the_server_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.cli import main

    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["cert", "init", *data]) == 0
    capsys.readouterr()
    ca = (tmp_path / "data" / "pki" / "ca.pem").read_bytes()
    assert main(["partner", "self", *data]) == 0
    out = capsys.readouterr().out
    assert "ca_sha256 " in out
    assert "ledger_key localhost+" in out  # made with the CA by cert init
    assert (tmp_path / "data" / "pki" / "ca.pem").read_bytes() == ca


def test_qr_defaults_to_the_first_server_name_a_phone_can_dial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zxingcpp
    from PIL import Image

    from accord.cli import main

    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(tmp_path / "data")]
    refused = main(["qr", "alice", *data])  # default server_names: localhost, 127.0.0.1
    err = capsys.readouterr().err
    assert refused == 2
    assert err.count("\n") == 1
    assert "--host" in err
    assert not (tmp_path / "data").exists()  # refused before any user or password is made
    assert not (tmp_path / "alice-qr.png").exists()
    monkeypatch.setenv("ACCORD_SERVER_NAMES", "localhost,127.0.0.1,tak.example.org,10.0.0.5")
    assert main(["qr", "alice", *data]) == 0
    assert "the QR carries host=tak.example.org" in capsys.readouterr().out
    (decoded,) = zxingcpp.read_barcodes(Image.open(tmp_path / "alice-qr.png"))
    assert "host=tak.example.org&" in decoded.text


def test_loopback_names_and_addresses_are_recognised() -> None:
    from accord.cli.package import is_loopback

    for name in ("localhost", "LOCALHOST.", "org-a.localhost", "127.0.0.1", "127.1.2.3", "::1",
                 "[::1]", "0.0.0.0", "ip6-localhost"):  # fmt: skip
        assert is_loopback(name), name
    for name in ("tak.example.org", "10.0.0.5", "192.168.1.20", "fd00::5", "localhost.example"):
        assert not is_loopback(name), name


def test_serve_banner_says_how_to_put_accord_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from accord.cli import path_hint

    venv_bin = Path(sys.executable).parent
    if sys.prefix == sys.base_prefix or not (venv_bin / "accord").exists():
        pytest.skip("needs the accord of a virtual environment (scripts/bootstrap)")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    hint = path_hint()
    assert hint is not None
    assert f". {venv_bin / 'activate'}" in hint
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert path_hint() is None


def test_serve_logs_the_path_hint(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(10) == 0
    on_path = shutil.which("accord") == str(Path(sys.executable).parent / "accord")
    assert ("the accord command is not on this shell's PATH" in served.text()) != on_path


def test_a_password_sent_in_the_query_string_never_reaches_the_servers_log(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    # node-tak signs in with the password in the query string of /oauth/token; uvicorn's
    # access log would write that request line into the server's log.
    data = tmp_path / "data"
    added = subprocess.run(
        [sys.executable, "-m", "accord", "user", "add", "alice", "--group", "Blue",
         "--password-stdin", "--data-dir", str(data)],
        input="correct horse battery\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    served = serve(data_dir=data)
    answer = httpx.post(
        f"https://127.0.0.1:{served.enroll}/oauth/token",
        params={"grant_type": "password", "username": "alice", "password": "correct horse battery"},
        verify=ssl.create_default_context(cafile=str(data / "pki" / "ca.pem")),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(20)
    log = served.text()
    assert "listening" in log
    assert "battery" not in log


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_cert_list_on_a_fresh_ca_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.cli import main

    data = tmp_path / "data"
    assert main(["cert", "init", "--data-dir", str(data)]) == 0
    before = _snapshot(data)
    assert main(["cert", "list", "--data-dir", str(data)]) == 0
    assert "name" in capsys.readouterr().out
    assert _snapshot(data) == before  # no server.pem, issued.json or re-signed CRL


def _environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


@pytest.mark.skipif(memory._TRIM is None, reason="the C allocator is chosen on glibc only")
def test_serve_runs_on_the_c_allocator_unless_configured_otherwise(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    # issue 13 §2: pymalloc kept ~40 mostly empty arenas after a 5x overload; `accord serve`
    # execs itself once with PYTHONMALLOC=malloc (same pid), unless the config says pymalloc.
    served = serve()
    assert b"PYTHONMALLOC=malloc" in _environ(served.proc.pid)
    config = tmp_path / "pymalloc.toml"
    config.write_text('allocator = "pymalloc"\n')
    kept = serve("--config", str(config), data_dir=tmp_path / "data2")
    assert not any(v.startswith(b"PYTHONMALLOC=") for v in _environ(kept.proc.pid))
