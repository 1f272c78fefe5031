"""``semafore oracle scan``: the plaintext-absence oracle over any files (issue #12 item 4).

A reviewer points it at log files, store dumps, object-store exports or captures (files or
directories, plain or whole-file gzip/bz2/xz) with the secrets to look for; it streams every
file through the same engine the scenario executor and the live gate use
(:mod:`semafore.oracle`) and prints each hit with its file, line or byte offset, the secret
and the decode chain. Exit 0 clean, 1 on any hit, 2 on bad input (the message names it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from semafore.oracle import TIER_FILE, Oracle, OracleError, file_stream

READ_BYTES = 1 << 20


@click.group("oracle")
def command() -> None:
    """The plaintext-absence oracle (SPEC §8, docs/oracle.md)."""


@command.command("scan")
@click.argument("paths", nargs=-1, required=True)
@click.option("--secret", "secrets_hex", multiple=True, metavar="HEX",
              help="A key (hex, at least 16 bytes) to look for; repeatable.")
@click.option("--canary", "canaries", multiple=True, metavar="TEXT",
              help="A canary text (at least 16 bytes) to look for; repeatable.")
@click.option("--secrets-file", type=click.Path(path_type=Path),
              help='Lines "key HEX [label]" / "canary TEXT [label]", or a JSON list of '
                   '{"label", "key": HEX} / {"label", "canary": TEXT}.')
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Also write the report as JSON.")
def scan(paths: tuple[str, ...], secrets_hex: tuple[str, ...], canaries: tuple[str, ...],
         secrets_file: Path | None, json_path: Path | None) -> None:
    """Search PATH... (files or directories) for every given secret, in every reversible
    encoding the oracle decodes, to its depth bound."""
    oracle = Oracle()
    for i, value in enumerate(secrets_hex, start=1):
        _register(oracle, "--secret", f"secret #{i}", "key", _hex("--secret", value))
    for i, text in enumerate(canaries, start=1):
        _register(oracle, "--canary", f"canary #{i}", "canary", text.encode("utf-8"))
    if secrets_file is not None:
        for label, kind, raw in _secrets_file(secrets_file):
            _register(oracle, "--secrets-file", label, kind, raw)
    if not oracle.secrets:
        raise click.UsageError("give at least one --secret, --canary or --secrets-file")
    files = _files(paths)
    scanner = oracle.scanner()
    for path in files:
        blocks, prefix = file_stream(path, READ_BYTES)
        scanner.add_stream(TIER_FILE, str(path), blocks, prefix)
    report = scanner.finish()
    for hit in report.hits:
        click.echo(f"HIT {hit.location} (offset {hit.offset}): {hit.label} [{hit.kind}] via "
                   f"{hit.encoding}")
    for note in report.truncated:
        click.echo(f"INCOMPLETE {note}", err=True)
    scanned = sum(report.bytes_by_tier.values())
    verdict = "clean" if report.clean else f"{len(report.hits)} hit(s)"
    click.echo(f"{verdict}: {len(oracle.secrets)} secret(s) over {len(files)} file(s), "
               f"{scanned} bytes")
    if json_path is not None:
        document: dict[str, Any] = {
            "clean": report.clean, "files": [str(p) for p in files], "bytes": scanned,
            "secrets": len(oracle.secrets), "hits": [h.to_dict() for h in report.hits],
            "truncated": report.truncated}
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    raise SystemExit(0 if report.clean else 1)


def _register(oracle: Oracle, option: str, label: str, kind: str, value: bytes) -> None:
    try:
        if kind == "canary":
            oracle.register_canary(label, value)
        else:
            oracle.register_key(label, value)
    except OracleError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _hex(option: str, value: str) -> bytes:
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not hex", param_hint=option) from None


def _secrets_file(path: Path) -> list[tuple[str, str, bytes]]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--secrets-file") from None
    if text.lstrip().startswith("["):
        return _secrets_json(path, text)
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split(None, 2)
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) < 2 or fields[0] not in ("key", "canary"):
            raise click.BadParameter(f'{where}: expected "key HEX [label]" or '
                                     f'"canary TEXT [label]"', param_hint="--secrets-file")
        label = fields[2] if len(fields) > 2 else where
        value = (_hex(f"--secrets-file ({where})", fields[1]) if fields[0] == "key"
                 else fields[1].encode("utf-8"))
        out.append((label, fields[0], value))
    return out


def _secrets_json(path: Path, text: str) -> list[tuple[str, str, bytes]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--secrets-file") from None
    out = []
    for i, item in enumerate(items if isinstance(items, list) else [None]):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or ("key" in item) == ("canary" in item):
            raise click.BadParameter(f'{where}: expected {{"label", "key": HEX}} or '
                                     f'{{"label", "canary": TEXT}}', param_hint="--secrets-file")
        label = str(item.get("label") or where)
        if "key" in item:
            out.append((label, "key", _hex(f"--secrets-file ({where}.key)", str(item["key"]))))
        else:
            out.append((label, "canary", str(item["canary"]).encode("utf-8")))
    return out


def _files(paths: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise click.BadParameter(f"{raw}: no such file or directory", param_hint="PATH")
    for path in out:
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise click.BadParameter(f"{path}: unreadable ({exc.strerror})",
                                     param_hint="PATH") from None
    return out
