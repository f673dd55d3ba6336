"""Certificates made for this run: a CA, and a server certificate for localhost only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # PEM of the CA that signed the server certificate
    cert_file: Path
    key_file: Path
    other_ca_file: Path  # a CA that signed nothing here: trusting it must not help


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("localhost")  # not 127.0.0.1: tests reach it by IP to get a mismatch
    files = Certificates(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        other_ca_file=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.private_key_pem.write_to_path(str(files.key_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca_file))
    return files
