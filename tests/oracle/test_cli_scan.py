"""``semafore oracle scan`` (issue #12 item 4): a reviewer's standalone scan of files and
directories. Each hit names the file, the line or byte, the secret and the decode chain; exit
1 on a hit, 0 clean, 2 on bad input with a message naming it."""

from __future__ import annotations

import base64
import gzip
import json
import os
from pathlib import Path

from click.testing import CliRunner, Result

from semafore.cli.main import cli
from semafore.oracle import canary
from semafore.oracle.leaks import encode

KEY = bytes(range(200, 232))
CANARY = canary(bytes(range(16)))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["oracle", "scan", *args])


def test_a_hit_names_file_line_secret_and_chain_and_exits_1(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(b'{"event": "ok"}\n{"event": "send", "x": "'
                    + encode("base64+gzip+utf-16le", CANARY) + b'"}\n')
    result = run(str(log), "--canary", CANARY.decode())
    assert result.exit_code == 1, result.output
    assert f"HIT {log}:line 2" in result.output
    assert "canary #1 [canary] via base64 → gzip → utf-16le" in result.output


def test_directories_and_compressed_files_are_scanned_and_json_written(tmp_path: Path) -> None:
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "clean.bin").write_bytes(os.urandom(4096))
    # binary with no line break, so the hit is located by byte (random bytes held a b"\n"
    # about one run in three and the hit was then located by line)
    binary = os.urandom(100).replace(b"\n", b"\x00").replace(b"\r", b"\x00")
    (tmp_path / "dump" / "store.gz").write_bytes(gzip.compress(binary + KEY))
    secrets = tmp_path / "secrets.txt"
    secrets.write_text(f"# reviewer's list\nkey {KEY.hex()} bob/phone root key\n")
    report = tmp_path / "report.json"
    result = run(str(tmp_path / "dump"), "--secrets-file", str(secrets), "--json", str(report))
    assert result.exit_code == 1, result.output
    document = json.loads(report.read_text())
    [hit] = document["hits"]
    assert hit["label"] == "bob/phone root key" and hit["encoding"] == "gzip"
    assert hit["location"] == f"{tmp_path / 'dump' / 'store.gz'}:byte 100"
    assert len(document["files"]) == 2 and not document["clean"]


def test_clean_files_exit_0(tmp_path: Path) -> None:
    data = tmp_path / "wire.bin"
    data.write_bytes(base64.b64encode(os.urandom(20000)))
    result = run(str(data), "--secret", KEY.hex(), "--canary", CANARY.decode())
    assert result.exit_code == 0, result.output
    assert result.output.startswith("clean: 2 secret(s) over 1 file(s)")


def test_json_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "s.json"
    secrets.write_text(json.dumps([{"label": "m.1", "canary": CANARY.decode()}]))
    log = tmp_path / "l.txt"
    log.write_bytes(b"body=" + CANARY.upper() + b"\n")
    result = run(str(log), "--secrets-file", str(secrets))
    assert result.exit_code == 1 and "m.1 [canary] via letter case changed" in result.output


def test_bad_input_exits_2_naming_it(tmp_path: Path) -> None:
    missing = run(str(tmp_path / "nope.log"), "--secret", KEY.hex())
    assert missing.exit_code == 2 and "nope.log: no such file or directory" in missing.output
    log = tmp_path / "l.log"
    log.write_text("x\n")
    not_hex = run(str(log), "--secret", "zz" * 16)
    assert not_hex.exit_code == 2 and "--secret" in not_hex.output and "not hex" in not_hex.output
    short = run(str(log), "--secret", "00" * 8)
    assert short.exit_code == 2 and "at least 16" in short.output
    nothing = run(str(log))
    assert nothing.exit_code == 2 and "at least one --secret" in nothing.output
    bad_file = tmp_path / "s.txt"
    bad_file.write_text("password hunter2\n")
    malformed = run(str(log), "--secrets-file", str(bad_file))
    assert malformed.exit_code == 2 and f"{bad_file}:1" in malformed.output
