"""`genlab keys init` / `genlab keys show`: the signing identity, and the errors a user meets.

Threats: private keys readable by other users or committed to git; a second `init` silently
replacing the identity every earlier image was signed with; a key that does not match its
certificate, or a file that is not PEM, surfacing as a traceback instead of one line.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab import credentials

from ..support.cli import one_line, run_cli

pytestmark = pytest.mark.timeout(120)

GENLAB = Path(sys.executable).parent / "genlab"


def fingerprint_in(out: str) -> str:
    line = next(line for line in out.splitlines() if "trust anchor fingerprint:" in line)
    return line.split("fingerprint:")[1].strip()


def test_init_writes_private_keys_and_refuses_a_second_init(tmp_path, capsys):
    """keys init: 0600 private keys in a 0700 folder, prints where they are, the fingerprint and
    that root.pem is what to share. A second init would orphan every file already signed, so
    it is refused (exit 2, one line) unless --force, which keeps the old identity aside."""
    keys = tmp_path / "keys"
    code, out, err = run_cli(["keys", "init", "--dir", str(keys)], capsys)
    assert code == 0, err
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("root.key", "signer.key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert str(keys) in out and f"share {keys / 'root.pem'}" in out
    first = fingerprint_in(out)
    assert first == credentials.load_identity(keys, create=False).fingerprint

    code, out, err = run_cli(["keys", "init", "--dir", str(keys)], capsys)
    assert code == 2 and out == ""
    assert one_line(err).startswith("genlab keys: a signing identity already exists")
    assert "--force" in err
    assert credentials.load_identity(keys, create=False).fingerprint == first

    code, out, _ = run_cli(["keys", "init", "--dir", str(keys), "--force"], capsys)
    assert code == 0 and fingerprint_in(out) != first
    assert [p.name.startswith("keys.replaced-") for p in tmp_path.iterdir()].count(True) == 1


def test_show_prints_the_fingerprint_credentials_uses(tmp_path, capsys):
    """keys show prints the trust anchor fingerprint the model cards and the README name (the
    one credentials signs under), with subjects and validity; --json the same as an object.
    It never creates keys: without any, it says to run `genlab keys init`."""
    keys = tmp_path / "keys"
    identity = credentials.init_keys(keys)
    code, out, _ = run_cli(["keys", "show", "--dir", str(keys)], capsys)
    assert code == 0
    assert fingerprint_in(out) == identity.fingerprint
    assert "signer valid until:" in out and f"share: {keys / 'root.pem'}" in out
    assert "PRIVATE" not in out

    code, out, _ = run_cli(["keys", "show", "--dir", str(keys), "--json"], capsys)
    assert code == 0 and json.loads(out) == identity.describe()

    code, out, err = run_cli(["keys", "show", "--dir", str(tmp_path / "none")], capsys)
    assert code == 2 and "genlab keys init" in one_line(err)
    assert not (tmp_path / "none").exists()


def test_show_uses_the_session_identity_by_default(tmp_path, capsys):
    """Without --dir: the identity genlab signs with (GENLAB_KEYS_DIR here)."""
    identity = credentials.signing_identity()
    code, out, _ = run_cli(["keys", "show"], capsys)
    assert code == 0 and fingerprint_in(out) == identity.fingerprint


def _signed_png(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="PNG")
    data = credentials.sign_bytes(buffer.getvalue(), "image/png", {"run_id": "r1"}, path.name)
    path.write_bytes(data)
    return path


def test_organisation_chain_signs_and_is_shown(tmp_path, capsys, monkeypatch):
    """An organisation's chain and key (GENLAB_SIGNING_CERT / GENLAB_SIGNING_KEY; made here as
    a second keys folder) replace the local identity: keys show names it, files are signed
    with it, and they are Trusted for whoever trusts the organisation's root."""
    org = tmp_path / "org"
    identity = credentials.init_keys(org)
    monkeypatch.setenv(credentials.SIGNING_CERT_ENV, str(org / "signer.pem"))
    monkeypatch.setenv(credentials.SIGNING_KEY_ENV, str(org / "signer.key"))
    code, out, _ = run_cli(["keys", "show"], capsys)
    assert code == 0
    assert fingerprint_in(out) == identity.fingerprint
    assert f"GENLAB_SIGNING_CERT={org / 'signer.pem'}" in out

    path = _signed_png(tmp_path / "org.png")
    code, out, _ = run_cli(["verify", "--trust-anchor", str(org / "root.pem"), str(path)], capsys)
    assert code == 0 and "credentials: Trusted" in out
    monkeypatch.setenv("GENLAB_KEYS_DIR", str(tmp_path / "fresh"))  # no own root to trust
    code, out, _ = run_cli(["verify", str(path)], capsys)
    assert code == 1 and "Valid but untrusted" in out


def _bad_key_setup(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    org, other = tmp_path / "org", tmp_path / "other"
    credentials.init_keys(org)
    cert, key = org / "signer.pem", org / "signer.key"
    if kind == "key of another certificate":
        credentials.init_keys(other)
        return cert, other / "signer.key", "does not belong"
    if kind == "Ed25519 key of another certificate":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        foreign = tmp_path / "ed25519.key"
        foreign.write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        foreign.chmod(0o600)
        return cert, foreign, "does not belong"
    if kind == "world-readable key":
        loose = tmp_path / "loose.key"
        shutil.copy(key, loose)
        loose.chmod(0o644)
        return cert, loose, "chmod 600"
    if kind == "certificate not PEM":
        notes = tmp_path / "notes.txt"
        notes.write_text("hello\n")
        return notes, key, "not PEM"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "key of another certificate",
        "Ed25519 key of another certificate",
        "world-readable key",
        "certificate not PEM",
    ],
)
def test_unusable_organisation_files_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, kind):
    """A key that does not match its certificate, a key other users can read, a certificate
    file that is not PEM: exit 2 and one line saying what and how to fix, no traceback."""
    cert, key, reason = _bad_key_setup(tmp_path, kind)
    monkeypatch.setenv(credentials.SIGNING_CERT_ENV, str(cert))
    monkeypatch.setenv(credentials.SIGNING_KEY_ENV, str(key))
    code, out, err = run_cli(["keys", "show"], capsys)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("genlab keys: ") and reason in line, line


def test_keys_folder_inside_a_git_work_tree_is_refused(tmp_path, capsys):
    """Private keys inside a repository would be committed with the next `git add .`: a keys
    folder in a git work tree (not ignored there) is refused, and nothing is written."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    code, out, err = run_cli(["keys", "init", "--dir", str(repo / "keys")], capsys)
    assert code == 2 and out == ""
    assert "inside a git work tree" in one_line(err)
    assert not (repo / "keys").exists()


def test_installed_genlab_keys_exit_codes(tmp_path):
    """The `genlab` console script: init 0, show 0 with the same fingerprint, a second init 2
    with one line and no traceback."""
    keys = tmp_path / "keys"
    env = {**os.environ, "GENLAB_KEYS_DIR": str(keys)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(GENLAB), "keys", *args], capture_output=True, text=True, timeout=60, env=env
        )

    created = run("init")
    assert created.returncode == 0, created.stderr
    shown = run("show")
    assert shown.returncode == 0 and fingerprint_in(shown.stdout) == fingerprint_in(created.stdout)
    again = run("init")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_init_never_puts_keys_among_other_files(tmp_path, capsys):
    """`keys init --dir` (even with --force) on a folder that holds other files and no signing
    identity: refused, exit 2, the folder untouched."""
    folder = tmp_path / "projects"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine\n")
    for force in ([], ["--force"]):
        code, out, err = run_cli(["keys", "init", "--dir", str(folder), *force], capsys)
        assert code == 2 and "holds no signing identity" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["projects"]
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


def test_force_twice_keeps_every_old_identity_aside(tmp_path, capsys):
    """Two `keys init --force` in the same second: each old identity is kept (its root still
    verifies the files it signed), none is overwritten."""
    folder = tmp_path / "keys"
    first = credentials.init_keys(folder).fingerprint
    second = credentials.init_keys(folder, force=True).fingerprint
    third = credentials.init_keys(folder, force=True).fingerprint
    assert len({first, second, third}) == 3
    kept = sorted(p for p in tmp_path.iterdir() if p.name.startswith("keys.replaced-"))
    assert {credentials.load_identity(p, create=False).fingerprint for p in kept} == {
        first,
        second,
    }
