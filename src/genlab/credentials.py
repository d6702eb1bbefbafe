"""Signed C2PA content credentials: a claim "made by a trained model, by this run" that is
bound to the file's bytes and to a certificate, so it can be verified instead of believed.

The IPTC text chunks that :mod:`genlab.provenance` writes can be typed by anyone; a C2PA manifest
cannot be forged without the signing key, and any change to the file (one pixel, bytes appended,
an edited claim) breaks its hash. Signing and reading use ``c2pa-python`` (c2pa-rs), offline.

The signing identity is a folder (``GENLAB_KEYS_DIR``, else ``$XDG_CONFIG_HOME/genlab/keys``, else
``~/.config/genlab/keys``) holding a local root CA and a signing certificate it issued, created on
first use; or an organisation's own chain and key, named by ``GENLAB_SIGNING_CERT`` and
``GENLAB_SIGNING_KEY``. Verifiers trust what they are given: the local root, the PEM files in
``GENLAB_TRUST_ANCHORS`` (``os.pathsep``-separated) and ``--trust-anchor`` files.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from genlab.errors import CredentialsError
from genlab.io import atomic_path, file_digest
from genlab.layout import (
    DETACHED_MANIFEST_SUFFIX,
    ROOT_CERT_FILE,
    ROOT_KEY_FILE,
    SIGNER_CERT_FILE,
    SIGNER_KEY_FILE,
)

KEYS_DIR_ENV = "GENLAB_KEYS_DIR"
SIGNING_CERT_ENV = "GENLAB_SIGNING_CERT"
SIGNING_KEY_ENV = "GENLAB_SIGNING_KEY"
TRUST_ANCHORS_ENV = "GENLAB_TRUST_ANCHORS"

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# an image that puts generated samples beside real ones (nearest-training pairs, reconstructions)
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
GENLAB_ASSERTION = "org.genlab.provenance"
CREATED_ACTION = "c2pa.created"

# c2pa's validation states, and the one genlab adds for a file that carries no manifest
TRUSTED, VALID, INVALID, NO_CREDENTIALS = "Trusted", "Valid", "Invalid", "No credentials"
UNTRUSTED_CODE = "signingCredential.untrusted"
REMOTE_NOT_FETCHED = "genlab.manifest.remoteNotFetched"  # genlab never fetches a remote manifest
UNEXPECTED_SHAPE = "genlab.manifest.unexpectedShape"

ROOT_DAYS = 20 * 365
SIGNER_DAYS = 5 * 365
# without a thumbnail a manifest adds ~3 KB and ~2 ms; c2pa's default one adds 0.1-2 MB and ~70 ms
# A file from someone else may name a remote manifest (an XMP `dcterms:provenance` URL): c2pa
# would fetch it, telling its maker the file was checked and reaching any URL it names. genlab
# never goes online to sign or verify.
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_BUILDER_SETTINGS = {**_OFFLINE, "builder": {"thumbnail": {"enabled": False}}}
_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".onnx": "application/onnx",
}
DETACHED_MIME = "application/octet-stream"  # TorchScript (a zip) and any other model file


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain (signing certificate first) and its private key, as PEM bytes."""

    chain_pem: bytes
    key_pem: bytes
    source: str  # where it came from, for messages: the keys folder or the two files

    @property
    def certificates(self) -> list[Any]:
        from cryptography import x509

        return x509.load_pem_x509_certificates(self.chain_pem)

    @property
    def anchor_pem(self) -> bytes:
        """The chain's last certificate: the root a verifier must trust."""
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificates[-1].public_bytes(Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the trust anchor (the root): what model cards tell people to trust."""
        return certificate_fingerprint(self.anchor_pem)

    @property
    def signer_fingerprint(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        return certificate_fingerprint(self.certificates[0].public_bytes(Encoding.PEM))

    def describe(self) -> dict[str, str]:
        """What `genlab keys show` prints and export records keep (no secret in it)."""
        signer, anchor = self.certificates[0], self.certificates[-1]
        return {
            "source": self.source,
            "trust_anchor_fingerprint": self.fingerprint,
            "trust_anchor_subject": anchor.subject.rfc4514_string(),
            "signer_subject": signer.subject.rfc4514_string(),
            "signer_fingerprint": self.signer_fingerprint,
            "signer_valid_until": signer.not_valid_after_utc.isoformat(timespec="seconds"),
        }


def certificate_fingerprint(pem: bytes) -> str:
    """``SHA256:AB:CD:...`` of the first certificate in ``pem`` (its DER bytes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def default_keys_dir() -> Path:
    """``GENLAB_KEYS_DIR``, else ``$XDG_CONFIG_HOME/genlab/keys``, or ``~/.config/genlab/keys``."""
    if os.environ.get(KEYS_DIR_ENV):
        return Path(os.environ[KEYS_DIR_ENV]).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "genlab" / "keys"


def init_keys(
    folder: Path | None = None, force: bool = False, exist_ok: bool = False
) -> SigningIdentity:
    """Create a local root CA and a signing certificate it issued in ``folder``.

    The profile is the one c2pa-rs accepts: P-256 keys, a root with keyCertSign and a Subject Key
    Identifier, an end-entity certificate with digitalSignature, the emailProtection EKU and an
    Authority Key Identifier. Private keys are 0600 in a 0700 folder, which must not be inside a
    git work tree unless ignored there. The folder is built aside and renamed into place, so
    two processes creating keys at once end with one identity, never a mix of two.
    """
    target = (folder or default_keys_dir()).expanduser().absolute()
    if (target / SIGNER_CERT_FILE).exists() and exist_ok and not force:
        return load_identity(target, create=False)  # another process was first
    if (target / SIGNER_CERT_FILE).exists() and not force:
        raise CredentialsError(
            f"a signing identity already exists in {target} (trust anchor "
            f"{load_identity(target, create=False).fingerprint}); images signed with it verify "
            "only with its root. To replace it anyway, run `genlab keys init --force`"
        )
    if target.exists() and not (target / SIGNER_CERT_FILE).exists() and any(target.iterdir()):
        raise CredentialsError(
            f"{target} exists and holds no signing identity (no {SIGNER_CERT_FILE}): genlab will "
            "not put keys among other files; empty it or choose another folder"
        )
    _refuse_inside_git(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_new_identity(staging)
        if force and (target / SIGNER_CERT_FILE).exists():
            # the old keys are kept: their images still need the root
            aside = tempfile.mkdtemp(
                prefix=f"{target.name}.replaced-{_stamp()}-", dir=target.parent
            )
            os.replace(target, aside)
        try:
            os.rename(staging, target)
        except OSError as error:
            if not (target / SIGNER_CERT_FILE).exists():
                raise CredentialsError(
                    f"could not create the signing identity in {target} ({error.strerror}); "
                    "choose another folder with GENLAB_KEYS_DIR or `--dir`"
                ) from None
            # another process created the identity first: use that one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _cached_identity.cache_clear()
    return load_identity(target, create=False)


def load_identity(folder: Path | None = None, create: bool = True) -> SigningIdentity:
    """The identity that signs: the organisation's files when ``GENLAB_SIGNING_CERT`` /
    ``GENLAB_SIGNING_KEY`` are set, else the keys folder, created (with a note on stderr saying
    where) when ``create`` and it does not exist yet."""
    if folder is None and (os.environ.get(SIGNING_CERT_ENV) or os.environ.get(SIGNING_KEY_ENV)):
        cert, key = os.environ.get(SIGNING_CERT_ENV), os.environ.get(SIGNING_KEY_ENV)
        if not cert or not key:
            raise CredentialsError(
                f"set both {SIGNING_CERT_ENV} (a PEM chain, signing certificate first) and "
                f"{SIGNING_KEY_ENV} (its PEM private key), or neither to use the keys folder"
            )
        return _read_identity(Path(cert), Path(key), f"{SIGNING_CERT_ENV}={cert}")
    keys = (folder or default_keys_dir()).expanduser().absolute()
    if not (keys / SIGNER_CERT_FILE).exists():
        if not create:
            raise CredentialsError(
                f"no signing identity in {keys}: run `genlab keys init` to create one "
                f"(or set {KEYS_DIR_ENV} to the folder that holds yours)"
            )
        identity = init_keys(keys, exist_ok=True)
        print(
            f"genlab: created a signing identity in {keys} (trust anchor {identity.fingerprint});"
            f" give {keys / ROOT_CERT_FILE} to whoever verifies your images and models",
            file=sys.stderr,
        )
        return identity
    return _read_identity(keys / SIGNER_CERT_FILE, keys / SIGNER_KEY_FILE, str(keys))


def trust_anchors(extra: Sequence[str | os.PathLike] = ()) -> list[bytes]:
    """The PEM certificates a verifier trusts: this machine's own root (when a keys folder
    exists), the files in ``GENLAB_TRUST_ANCHORS`` and ``extra``. Each named file must hold
    at least one certificate."""
    from cryptography import x509

    found: list[bytes] = []
    own_root = default_keys_dir().expanduser() / ROOT_CERT_FILE
    named = [p for p in os.environ.get(TRUST_ANCHORS_ENV, "").split(os.pathsep) if p]
    for path in [*([own_root] if own_root.is_file() else []), *named, *extra]:
        data = _read_small(Path(path), "trust anchor")
        try:
            if not x509.load_pem_x509_certificates(data):
                raise ValueError("no certificate")
        except ValueError as error:
            raise CredentialsError(
                f"trust anchor {path} is not a PEM certificate file ({error}); pass the "
                f"{ROOT_CERT_FILE} of the signer you trust"
            ) from None
        found.append(data)
    return found


def mime_type(path: str | os.PathLike) -> str:
    """The media type c2pa signs a file as: PNG / JPEG / ONNX by suffix, else opaque bytes."""
    return _MIME.get(Path(path).suffix.lower(), DETACHED_MIME)


def manifest_definition(
    provenance: Mapping[str, str], title: str, source_type: str = TRAINED
) -> dict[str, Any]:
    """The claim: first action ``c2pa.created`` with the IPTC digital source type, a software
    agent naming genlab, its code version and the run id, a description naming the model and
    the run, then the genlab assertion with every provenance field (model, run id, training
    fingerprint, code version, dataset hash, seed...)."""
    fields = {str(k): str(v) for k, v in provenance.items()}
    run_fields = {key: fields[key] for key in ("model", "run_id") if key in fields}
    # c2pa-rs keeps an agent's fields beyond name and version in a hash map, written in a
    # random order: one such field (the run id; the model is in the description and the
    # genlab assertion) keeps the claim's bytes the same from one signing to the next
    agent = {"name": "genlab", "version": fields.get("code_version", "unknown")}
    agent |= {"run_id": fields["run_id"]} if "run_id" in fields else {}
    run = ", ".join(f"{key} {value}" for key, value in run_fields.items())
    return {
        "claim_generator_info": [{"name": "genlab", "version": _package_version()}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": CREATED_ACTION,
                            "digitalSourceType": source_type,
                            "softwareAgent": agent,
                            "description": f"generated by genlab ({run or 'run unknown'})",
                        }
                    ]
                },
            },
            {"label": GENLAB_ASSERTION, "data": fields},
        ],
    }


def sign_bytes(
    data: bytes,
    mime: str,
    provenance: Mapping[str, str],
    title: str,
    source_type: str = TRAINED,
    identity: SigningIdentity | None = None,
) -> bytes:
    """``data`` (a PNG or JPEG) with an embedded, signed manifest: the signature covers every
    byte, so anything written into the file after this breaks it."""
    import c2pa

    definition = manifest_definition(provenance, title, source_type)
    signer = _signer(identity)
    ids = _content_ids(definition, data, mime, _signer_of(identity))
    builder = c2pa.Builder(ids, context=_builder_context())
    out = io.BytesIO()
    try:
        builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as error:
        raise _refused(title, identity, error) from None
    return out.getvalue()


def sign_detached(
    path: str | os.PathLike,
    provenance: Mapping[str, str],
    identity: SigningIdentity | None = None,
) -> Path:
    """Write ``<path>.c2pa``, a manifest bound to ``path``'s bytes (ONNX and TorchScript files
    cannot carry one inside). Returns the manifest's path."""
    import c2pa

    source = Path(path)
    definition = manifest_definition(provenance, source.name)
    content = file_digest(source).encode()  # the file's SHA-256 stands in for its bytes
    signer = _signer(identity)
    ids = _content_ids(definition, content, mime_type(source), _signer_of(identity))
    builder = c2pa.Builder(ids, context=_builder_context())
    builder.set_no_embed()
    with open(source, "rb") as asset:
        try:
            manifest = builder.sign(signer, mime_type(source), asset, io.BytesIO())
        except c2pa.C2paError as error:
            raise _refused(source.name, identity, error) from None
    target = detached_manifest_path(source)
    with atomic_path(target) as tmp:
        tmp.write_bytes(manifest)
    return target


def _signer_of(identity: SigningIdentity | None) -> str:
    """The fingerprint of the certificate that signs (``identity``, or the default one)."""
    return (identity if identity is not None else signing_identity()).signer_fingerprint


def _content_ids(
    definition: dict[str, Any], content: bytes, mime: str, signer: str
) -> dict[str, Any]:
    """``definition`` with its manifest label and instance id derived from what is signed
    (the content, its type and the claim) and by whom (``signer``: the signing certificate's
    fingerprint), not drawn at random as c2pa does by default: the same bytes signed twice by
    one signer carry the same ids, a re-signing by another signer other ones. (The signed
    manifest still differs: c2pa-rs salts every assertion with 16 random bytes and ECDSA
    signatures are randomised.)"""
    digest = hashlib.sha256()
    claim = json.dumps(definition, sort_keys=True).encode()
    for part in (content, mime.encode(), claim, signer.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    # in the shape of a random (version 4) UUID, the only kind c2pa-rs accepts in a label
    ident = uuid.UUID(bytes=digest.digest()[:16], version=4)
    return {**definition, "label": f"urn:c2pa:{ident}", "instance_id": f"xmp.iid:{ident}"}


def detached_manifest_path(path: str | os.PathLike) -> Path:
    source = Path(path)
    return source.with_name(source.name + DETACHED_MANIFEST_SUFFIX)


@dataclass
class Credentials:
    """What a file's manifest proves. ``state``: Trusted (valid, chain to a trusted anchor),
    Valid (valid, signer not trusted), Invalid (``codes`` say what failed), No credentials."""

    state: str
    codes: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)
    signer: dict[str, str] = field(default_factory=dict)
    action: dict[str, Any] = field(default_factory=dict)  # the first action (c2pa.created)
    genlab: dict[str, str] = field(default_factory=dict)  # the genlab assertion

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "codes": self.codes,
            "explanations": self.explanations,
            "signer": self.signer,
            "action": self.action,
            "genlab": self.genlab,
        }


def read_credentials(
    data: bytes, mime: str, manifest: bytes | None = None, anchors: Sequence[bytes] = ()
) -> Credentials:
    """Validate the manifest embedded in ``data`` (or the detached ``manifest`` bound to it)
    against ``anchors``. Never raises on hostile input: a malformed manifest is Invalid with
    c2pa's reason, a file without one is No credentials."""
    import c2pa

    settings: dict[str, Any] = dict(_OFFLINE)
    if anchors:
        settings["trust"] = {
            "trust_anchors": "\n".join(a.decode("ascii", "replace") for a in anchors)
        }
    try:
        context = c2pa.Context.from_dict(settings)
        with c2pa.Reader(mime, io.BytesIO(data), manifest, context=context) as reader:
            report = json.loads(reader.json())
    except Exception as error:  # c2pa raises one subclass per failure kind
        kind = type(error).__name__.lstrip("_").removeprefix("C2pa")
        reason = " ".join(str(error).split())[:300]
        if kind == "ManifestNotFound":
            return Credentials(NO_CREDENTIALS)
        if reason.startswith("Remote"):
            return Credentials(INVALID, [REMOTE_NOT_FETCHED], [reason])
        return Credentials(INVALID, [f"c2pa.{kind}"], [reason])
    try:
        return _credentials_of(report)
    except (AttributeError, KeyError, TypeError, IndexError) as error:
        # validly signed, but not in the shape any C2PA writer produces
        return Credentials(INVALID, [UNEXPECTED_SHAPE], [f"{type(error).__name__}: {error}"[:300]])


def _credentials_of(report: dict[str, Any]) -> Credentials:
    active = report.get("manifests", {}).get(report.get("active_manifest") or "", {})
    results = report.get("validation_results", {}).get("activeManifest", {})
    failures = results.get("failure") or report.get("validation_status") or []
    state = str(report.get("validation_state") or INVALID)
    if state not in (TRUSTED, VALID, INVALID):
        state = INVALID
    signature = active.get("signature_info", {}) or {}
    assertions = {a.get("label"): a.get("data") for a in active.get("assertions", []) or []}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get(
        "actions"
    ) or [{}]
    genlab = assertions.get(GENLAB_ASSERTION) or {}
    return Credentials(
        state,
        [str(f.get("code")) for f in failures],
        [str(f.get("explanation", "")) for f in failures],
        {k: str(signature[k]) for k in ("issuer", "common_name", "alg") if k in signature},
        actions[0] if isinstance(actions[0], dict) else {},
        {str(k): str(v) for k, v in genlab.items()} if isinstance(genlab, dict) else {},
    )


# -- internals ------------------------------------------------------------------------------------


def _refused(what: str, identity: SigningIdentity | None, error: Exception) -> CredentialsError:
    """c2pa's refusal of a certificate (an organisation's chain that is not a C2PA signing
    profile) as an error that says what C2PA needs."""
    source = (identity or signing_identity()).source
    reason = " ".join(str(error).split())[:300]
    return CredentialsError(
        f"cannot sign {what} with the certificate from {source}: c2pa refused it ({reason}). "
        "C2PA needs an end-entity certificate with digitalSignature, the emailProtection "
        "extended key usage and an Authority Key Identifier, issued by a CA (`genlab keys "
        "init` creates such a local identity)"
    )


_MAX_PEM_BYTES = 1 << 20


def _read_small(path: Path, what: str) -> bytes:
    """A certificate or key file: must exist, be a regular file and be small."""
    try:
        info = path.stat()
    except OSError as error:
        raise CredentialsError(f"{what} {path} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_PEM_BYTES:
        raise CredentialsError(f"{what} {path} is not a PEM file of at most 1 MiB")
    return path.read_bytes()


def _read_identity(cert_path: Path, key_path: Path, source: str) -> SigningIdentity:
    """Read and check a chain and key: PEM, the key matches the first certificate, and the key
    file is readable by its owner only (as ssh insists)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    chain = _read_small(cert_path, "signing certificate chain")
    key = _read_small(key_path, "signing key")
    if key_path.stat().st_mode & 0o077:
        raise CredentialsError(
            f"signing key {key_path} is readable by other users; run `chmod 600 {key_path}`"
        )
    try:
        certificates = x509.load_pem_x509_certificates(chain)
    except ValueError as error:
        raise CredentialsError(
            f"signing certificate chain {cert_path} is not PEM certificates ({error})"
        ) from None
    try:
        private = load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise CredentialsError(
            f"signing key {key_path} is not an unencrypted PEM private key ({error})"
        ) from None
    if _public_bytes(private.public_key()) != _public_bytes(certificates[0].public_key()):
        raise CredentialsError(
            f"signing key {key_path} does not belong to the first certificate in {cert_path} "
            "(the chain must start with the signing certificate)"
        )
    return SigningIdentity(chain, key, source)


def _public_bytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _write_new_identity(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.chmod(folder, 0o700)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    user = os.environ.get("USER") or "local"

    def name(role: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"genlab {role} ({user})"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genlab local signing identity"),
            ]
        )

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not sign,
            crl_sign=not sign,
            encipher_only=False,
            decipher_only=False,
        )

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("root"))
        .issuer_name(name("root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(name("signer"))
        .issuer_name(root.subject)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM

    def write(name: str, data: bytes, mode: int) -> None:
        path = folder / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def private(key: Any) -> bytes:
        return key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    write(ROOT_KEY_FILE, private(root_key), 0o600)
    write(SIGNER_KEY_FILE, private(signer_key), 0o600)
    write(ROOT_CERT_FILE, root.public_bytes(pem), 0o644)
    write(SIGNER_CERT_FILE, signer.public_bytes(pem) + root.public_bytes(pem), 0o644)


def _refuse_inside_git(folder: Path) -> None:
    """Private keys must never be committed: refuse a folder inside a git work tree unless git
    ignores it there."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        inside = subprocess.run(
            ["git", "-C", str(probe), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return
        ignored = subprocess.run(
            ["git", "-C", str(probe), "check-ignore", "-q", str(folder / SIGNER_KEY_FILE)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return  # no git on this machine: nothing to commit the keys into
    if ignored.returncode != 0:
        raise CredentialsError(
            f"{folder} is inside a git work tree and not ignored there: private keys would be "
            f"committed. Choose a folder outside the repository ({KEYS_DIR_ENV}) or add it to "
            ".gitignore"
        )


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("genlab")
    except metadata.PackageNotFoundError:
        return "unversioned"


@lru_cache(maxsize=1)
def _builder_context() -> Any:
    import c2pa

    return c2pa.Context.from_dict(_BUILDER_SETTINGS)


@lru_cache(maxsize=4)
def _cached_identity(keys_env: tuple[str | None, ...]) -> tuple[SigningIdentity, Any]:
    """One identity and c2pa signer per process (and per environment setting)."""
    identity = load_identity()
    return identity, _make_signer(identity)


def _make_signer(identity: SigningIdentity) -> Any:
    import c2pa
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(identity.key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name
        )
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ED25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "PS256"
    else:
        algorithm = None
    if algorithm is None:
        raise CredentialsError(
            f"the signing key from {identity.source} is of a kind C2PA cannot sign with: use an "
            "EC P-256/P-384/P-521, Ed25519 or RSA key"
        )
    info = c2pa.C2paSignerInfo(
        getattr(c2pa.C2paSigningAlg, algorithm), identity.chain_pem, identity.key_pem, None
    )
    try:
        return c2pa.Signer.from_info(info)
    except c2pa.C2paError as error:
        raise _refused("anything", identity, error) from None


def _signer(identity: SigningIdentity | None) -> Any:
    if identity is not None:
        return _make_signer(identity)
    return _cached_identity(_settings())[1]


def _settings() -> tuple[str | None, ...]:
    """The environment that decides which identity signs (the cache key)."""
    names = (KEYS_DIR_ENV, SIGNING_CERT_ENV, SIGNING_KEY_ENV, "XDG_CONFIG_HOME")
    return tuple(os.environ.get(name) for name in names)


def signing_identity() -> SigningIdentity:
    """The identity :func:`sign_bytes` and :func:`sign_detached` use by default (created on
    first use), e.g. for an export record or a model card to name its fingerprint."""
    return _cached_identity(_settings())[0]
