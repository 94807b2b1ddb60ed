"""Real network peers for the sender tests: DCMTK ``storescp`` and Orthanc on 127.0.0.1.

Each peer is a context manager that starts the program on a free port, waits until it answers
(DCMTK: ``echoscu`` in a retry loop; Orthanc: ``GET /system`` on its HTTP port) and stops it on
exit (terminate, then kill). If a peer does not come up within :data:`STARTUP_TIMEOUT_S`, the
start fails with :class:`PeerStartError`, whose message ends with the peer's log.

Findings about the installed programs (DCMTK 3.6.7, Orthanc 1.10.1) that the options below rely
on:

* ``storescp`` without ``+x?`` options accepts, for every storage SOP class it knows, only the
  uncompressed transfer syntaxes (explicit VR little endian, explicit VR big endian, implicit VR
  little endian), so a JPEG-compressed object is refused at association negotiation. ``+xa``
  (``accept_all=True``) adds every compressed syntax DCMTK knows (JPEG, JPEG-LS, JPEG 2000, RLE,
  MPEG-2/4, HEVC, deflate). ``-xf FILE PROFILE`` (``transfer_syntaxes=`` or
  ``uncompressed_only=True``) restricts it to the generated profile: only the listed storage
  SOP classes (:data:`STORAGE_SOP_CLASSES` by default) with the listed syntaxes, plus
  Verification.
* ``storescp`` has no bind-address option; it listens on every interface, on a port picked by
  :func:`free_port`. Orthanc 1.10 has no bind-address option either; ``RemoteAccessAllowed`` is
  false, so its REST API only answers localhost.
* DCMTK TLS in the Debian build: ``+tls KEY CERT`` (PEM by default), ``+cf CA`` to trust a CA,
  ``-rc`` (require a peer certificate, the default), ``-vc`` (verify if present), ``-ic``
  (ignore). The default security profile is BCP 195 non-downgrading (TLS 1.2+).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, Self, TypedDict, Unpack

from tests._peers import dcmtk_env, find_tool, missing_tool, require_tool

if TYPE_CHECKING:
    import pytest

    from sendtopacs_core import Device

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "STARTUP_TIMEOUT_S",
    "STORAGE_SOP_CLASSES",
    "UNCOMPRESSED_TRANSFER_SYNTAXES",
    "DcmtkStoreSCP",
    "OrthancFactory",
    "OrthancOptions",
    "OrthancPeer",
    "PeerStartError",
    "StoreSCPFactory",
    "StoreSCPOptions",
    "TlsFiles",
    "dcmtk_tls_client_args",
    "free_port",
    "make_tls_files",
    "write_secondary_capture",
]

#: How long a peer may take to answer its readiness probe.
STARTUP_TIMEOUT_S: Final = 10.0
#: How long a stopping storescp gets after SIGTERM before it is killed.
_STOP_TIMEOUT_S: Final = 5.0
#: Orthanc needs about 3.5 s to stop cleanly (HTTP server, DICOM server, jobs); its storage is
#: thrown away after a test, so it is killed after this grace period instead.
_ORTHANC_STOP_TIMEOUT_S: Final = 0.5
_PROBE_INTERVAL_S: Final = 0.05
_LOG_TAIL_CHARS: Final = 4000

IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
#: Explicit VR little endian first, then implicit VR little endian (no big endian).
UNCOMPRESSED_TRANSFER_SYNTAXES: Final = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)

#: The storage SOP classes sendtopacs produces or forwards.
STORAGE_SOP_CLASSES: Final = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
)
_VERIFICATION_SOP_CLASS: Final = "1.2.840.10008.1.1"
_LOCALHOST: Final = "127.0.0.1"


class PeerStartError(RuntimeError):
    """A peer did not start or did not answer its readiness probe in time."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str) -> str:
    return text if len(text) <= _LOG_TAIL_CHARS else "...\n" + text[-_LOG_TAIL_CHARS:]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Terminate ``process``, then kill it if it has not exited after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_TIMEOUT_S)


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files for DICOM TLS tests: a CA, a server and a client certificate it signed.

    The server certificate is for ``localhost`` (SAN ``DNS:localhost``, ``IP:127.0.0.1``); keys
    are unencrypted RSA 2048.
    """

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def dcmtk_tls_client_args(tls: TlsFiles) -> list[str]:
    """DCMTK client options (``echoscu``, ``storescu``) for a TLS association with ``tls``."""
    return ["+tls", str(tls.client_key), str(tls.client_cert), "-pw", "+cf", str(tls.ca_cert)]


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a test CA, a ``localhost`` server certificate and a client certificate.

    Uses the ``openssl`` command line if present, else the ``cryptography`` package; if neither
    is available the test fails under CI and is skipped elsewhere (:func:`missing_tool`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    openssl = find_tool("openssl")
    if openssl is not None:
        _make_tls_files_openssl(openssl, directory, files)
        return files
    if importlib.util.find_spec("cryptography") is None:
        missing_tool(
            "neither the openssl command nor the cryptography package is available; "
            "install one with: apt-get install openssl"
        )
    _make_tls_files_cryptography(files)
    return files


def _openssl(openssl: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(openssl), *args],
        capture_output=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{output}")


def _make_tls_files_openssl(openssl: Path, directory: Path, files: TlsFiles) -> None:
    _openssl(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-days",
        "3650",
        "-subj",
        "/CN=sendtopacs test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        str(files.ca_key),
        "-out",
        str(files.ca_cert),
    )
    leaves = (
        (
            files.server_key,
            files.server_cert,
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "extendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "basicConstraints=critical,CA:FALSE\n",
        ),
        (
            files.client_key,
            files.client_cert,
            "sendtopacs test client",
            "extendedKeyUsage=clientAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "basicConstraints=critical,CA:FALSE\n",
        ),
    )
    for serial, (key, cert, common_name, extensions) in enumerate(leaves, start=1):
        csr = directory / f"{cert.stem}.csr"
        ext_file = directory / f"{cert.stem}.ext"
        ext_file.write_text(extensions, encoding="ascii")
        _openssl(
            openssl,
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        _openssl(
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(files.ca_cert),
            "-CAkey",
            str(files.ca_key),
            "-set_serial",
            str(serial),
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            str(ext_file),
            "-out",
            str(cert),
        )


def _make_tls_files_cryptography(files: TlsFiles) -> None:
    # Imported here: the package is optional (only a fallback for a missing openssl command).
    import datetime
    import ipaddress

    from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found, unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found, unused-ignore]
        rsa,
    )
    from cryptography.x509.oid import (  # type: ignore[import-not-found, unused-ignore]
        ExtendedKeyUsageOID,
        NameOID,
    )

    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=3650)

    def new_key(path: Path) -> Any:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        return key

    def name(common_name: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def key_usage(*, ca: bool) -> Any:
        return x509.KeyUsage(
            digital_signature=not ca,
            content_commitment=False,
            key_encipherment=not ca,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = new_key(files.ca_key)
    ca_name = name("sendtopacs test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    leaves = (
        (files.server_key, files.server_cert, "localhost", ExtendedKeyUsageOID.SERVER_AUTH),
        (
            files.client_key,
            files.client_cert,
            "sendtopacs test client",
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
    )
    for key_path, cert_path, common_name, usage in leaves:
        key = new_key(key_path)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address(_LOCALHOST)),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --------------------------------------------------------------------------------------------
# DCMTK storescp
# --------------------------------------------------------------------------------------------


def _storescp_config(sop_classes: Sequence[str], transfer_syntaxes: Sequence[str]) -> str:
    """A DCMTK association negotiation config file with one profile, ``Restricted``.

    UIDs are written as they are: DCMTK accepts numeric UIDs as well as its symbolic names.
    """
    lines = ["[[TransferSyntaxes]]", "[Restricted]"]
    lines += [f"TransferSyntax{n} = {uid}" for n, uid in enumerate(transfer_syntaxes, start=1)]
    lines += ["[Verification]", f"TransferSyntax1 = {IMPLICIT_VR_LITTLE_ENDIAN}"]
    lines += ["[[PresentationContexts]]", "[RestrictedStorageSCP]"]
    contexts = [f"{_VERIFICATION_SOP_CLASS}\\Verification"]
    contexts += [f"{uid}\\Restricted" for uid in sop_classes]
    lines += [f"PresentationContext{n} = {ctx}" for n, ctx in enumerate(contexts, start=1)]
    lines += ["[[Profiles]]", "[Restricted]", "PresentationContexts = RestrictedStorageSCP"]
    return "\n".join(lines) + "\n"


class DcmtkStoreSCP:
    """DCMTK's ``storescp`` on 127.0.0.1 and a free port; a context manager.

    Parameters
    ----------
    directory
        Working directory: received files go to ``directory / "received"``, the log to
        ``directory / "storescp.log"``, a generated negotiation profile to
        ``directory / "storescp.cfg"``. A temporary directory (removed on exit) if ``None``.
    ae_title
        Our AE title (``-aet``). storescp does not check the called AE title.
    accept_all
        ``+xa``: accept every transfer syntax DCMTK knows, compressed ones included. Without it
        (and without a profile) storescp accepts uncompressed syntaxes only.
    uncompressed_only
        Shorthand for ``transfer_syntaxes=UNCOMPRESSED_TRANSFER_SYNTAXES`` (explicit and
        implicit VR little endian, not big endian).
    transfer_syntaxes, sop_classes
        Use a generated ``-xf`` profile that accepts only these transfer syntaxes for only these
        storage SOP classes (default :data:`STORAGE_SOP_CLASSES`), plus Verification.
    bit_preserving
        ``+B``: write the received data set byte for byte (default); else DCMTK may re-encode.
    tls
        Serve DICOM TLS with ``tls.server_key``/``tls.server_cert``, trusting ``tls.ca_cert``.
    require_client_cert
        With ``tls``: ``-rc`` (a client certificate signed by the CA is required) if true,
        else ``-ic`` (client certificates are not checked).
    extra_args
        More storescp options, e.g. fault injection: ``--refuse``, ``--reject``, ``--ignore``,
        ``--sleep-during N``, ``--sleep-after N``, ``--abort-during``, ``--abort-after``.
    verbose
        Log level: ``-v`` (default) or ``-d`` if ``"debug"``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        ae_title: str = "STORESCP",
        accept_all: bool = False,
        uncompressed_only: bool = False,
        transfer_syntaxes: Sequence[str] | None = None,
        sop_classes: Sequence[str] = STORAGE_SOP_CLASSES,
        bit_preserving: bool = True,
        tls: TlsFiles | None = None,
        require_client_cert: bool = True,
        extra_args: Sequence[str] = (),
        verbose: str = "verbose",
    ) -> None:
        if uncompressed_only:
            if transfer_syntaxes is not None:
                raise ValueError("give uncompressed_only or transfer_syntaxes, not both")
            transfer_syntaxes = UNCOMPRESSED_TRANSFER_SYNTAXES
        if accept_all and transfer_syntaxes is not None:
            raise ValueError("accept_all cannot be combined with a transfer syntax profile")
        self._given_directory = directory
        self._temp_directory: tempfile.TemporaryDirectory[str] | None = None
        self.directory = Path()
        self.ae_title = ae_title
        self.accept_all = accept_all
        self.transfer_syntaxes = tuple(transfer_syntaxes) if transfer_syntaxes else None
        self.sop_classes = tuple(sop_classes)
        self.bit_preserving = bit_preserving
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.extra_args = tuple(extra_args)
        self.verbose = verbose
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- paths and state ---------------------------------------------------------------------

    @property
    def output_dir(self) -> Path:
        """Where storescp writes the objects it receives (``-od``)."""
        return self.directory / "received"

    @property
    def log_path(self) -> Path:
        return self.directory / "storescp.log"

    @property
    def log(self) -> str:
        """Everything storescp has printed so far (stdout and stderr)."""
        return _read_text(self.log_path)

    @property
    def address(self) -> tuple[str, int]:
        return (_LOCALHOST, self.port)

    def received_files(self) -> list[Path]:
        """The files storescp has written, sorted by name."""
        if not self.output_dir.is_dir():
            return []
        return sorted(path for path in self.output_dir.iterdir() if path.is_file())

    def command(self) -> list[str]:
        """The storescp command line (for the current :attr:`port`)."""
        args = [str(require_tool("storescp"))]
        args.append("-d" if self.verbose == "debug" else "-v")
        args += ["-aet", self.ae_title, "-od", str(self.output_dir), "-dhl"]
        if self.bit_preserving:
            args.append("+B")
        if self.accept_all:
            args.append("+xa")
        if self.transfer_syntaxes is not None:
            config = self.directory / "storescp.cfg"
            config.write_text(
                _storescp_config(self.sop_classes, self.transfer_syntaxes), encoding="ascii"
            )
            args += ["-xf", str(config), "Restricted"]
        if self.tls is not None:
            args += ["+tls", str(self.tls.server_key), str(self.tls.server_cert), "-pw"]
            args += ["+cf", str(self.tls.ca_cert)]
            args.append("-rc" if self.require_client_cert else "-ic")
        args += self.extra_args
        args.append(str(self.port))
        return args

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start storescp and wait until it answers a C-ECHO (or an association request)."""
        if self._given_directory is None:
            self._temp_directory = tempfile.TemporaryDirectory(prefix="storescp-")
            self.directory = Path(self._temp_directory.name)
        else:
            self.directory = self._given_directory
            self.directory.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(exist_ok=True)
        echoscu = require_tool("echoscu")
        # The port may be taken between free_port() and storescp's bind: retry a few times.
        for _attempt in range(3):
            self.port = free_port()
            self._log_file = self.log_path.open("ab")
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=dcmtk_env(),
                cwd=self.directory,
            )
            try:
                self._wait_ready(echoscu)
            except PeerStartError:
                exited = self._process.poll() is not None
                self.stop()
                if exited and "cannot listen" in self.log.lower():
                    continue
                raise
            return self
        raise PeerStartError(f"storescp could not listen on a free port\n{_tail(self.log)}")

    def echo_args(self, echoscu: Path) -> list[str]:
        """An ``echoscu`` command line that talks to this storescp."""
        args = [str(echoscu), "-aec", self.ae_title, "-to", "2", "-ta", "2", "-td", "2"]
        if self.tls is not None:
            args += dcmtk_tls_client_args(self.tls)
        return [*args, _LOCALHOST, str(self.port)]

    def _wait_ready(self, echoscu: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        output = ""
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PeerStartError(
                    f"storescp exited with status {self._process.returncode} before answering\n"
                    f"command: {' '.join(self.command())}\n--- storescp log ---\n" + _tail(self.log)
                )
            proc = subprocess.run(
                self.echo_args(echoscu),
                capture_output=True,
                timeout=STARTUP_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
                env=dcmtk_env(),
            )
            output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
            # A rejection (e.g. with --refuse) proves it is up and speaking DICOM, too.
            if proc.returncode == 0 or "Association Rejected" in output:
                return
            time.sleep(_PROBE_INTERVAL_S)
        raise PeerStartError(
            f"storescp did not answer on port {self.port} within {STARTUP_TIMEOUT_S:.0f} s\n"
            f"last echoscu output:\n{output}\n--- storescp log ---\n{_tail(self.log)}"
        )

    def stop(self) -> None:
        """Stop storescp (terminate, then kill); the received files and the log stay."""
        try:
            _stop_process(self._process, _STOP_TIMEOUT_S)
        finally:
            self._process = None
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        """Stop storescp and remove the temporary directory, if one was made."""
        self.stop()
        if self._temp_directory is not None:
            self._temp_directory.cleanup()
            self._temp_directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DcmtkStoreSCP(ae_title={self.ae_title!r}, port={self.port})"


# --------------------------------------------------------------------------------------------
# Orthanc
# --------------------------------------------------------------------------------------------


class OrthancPeer:
    """Orthanc on free HTTP and DICOM ports, with a generated configuration; a context manager.

    Parameters
    ----------
    directory
        Working directory for the configuration, storage, index and log (``orthanc.log``); a
        temporary directory (removed on exit) if ``None``.
    ae_title
        ``DicomAet``. ``DicomCheckCalledAet`` is false, so any called AE title is accepted.
    modalities
        ``DicomModalities``: name -> ``(aet, host, port)``.
    always_allow_echo, always_allow_store, always_allow_find, always_allow_find_worklist, \
always_allow_get, always_allow_move
        ``DicomAlwaysAllow*``. With all of them false and no ``modalities``, Orthanc rejects
        every association; if only ``always_allow_store`` is false, the association is accepted
        (C-ECHO works) but C-STORE requests are refused.
    accepted_transfer_syntaxes
        ``AcceptedTransferSyntaxes`` (UIDs, ``*`` and ``?`` wildcards allowed); Orthanc's
        default (all syntaxes) if ``None``.
    unknown_sop_class_accepted
        ``UnknownSopClassAccepted``.
    plugins
        ``Plugins``: paths of plugin files or folders (e.g. ``/usr/share/orthanc/plugins``).
    extra_config
        More configuration entries; they override the generated ones.
    verbose
        Start Orthanc with ``--verbose``.
    stop_timeout
        Seconds between SIGTERM and SIGKILL when stopping. Short by default: a clean stop takes
        about 3.5 s and the storage is thrown away anyway.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        ae_title: str = "ORTHANC",
        modalities: Mapping[str, tuple[str, str, int]] | None = None,
        always_allow_echo: bool = True,
        always_allow_store: bool = True,
        always_allow_find: bool = False,
        always_allow_find_worklist: bool = False,
        always_allow_get: bool = False,
        always_allow_move: bool = False,
        accepted_transfer_syntaxes: Sequence[str] | None = None,
        unknown_sop_class_accepted: bool = False,
        plugins: Sequence[str | os.PathLike[str]] = (),
        extra_config: Mapping[str, object] | None = None,
        verbose: bool = True,
        stop_timeout: float = _ORTHANC_STOP_TIMEOUT_S,
    ) -> None:
        self._given_directory = directory
        self._temp_directory: tempfile.TemporaryDirectory[str] | None = None
        self.directory = Path()
        self.ae_title = ae_title
        self.modalities = dict(modalities or {})
        self.always_allow = {
            "DicomAlwaysAllowEcho": always_allow_echo,
            "DicomAlwaysAllowStore": always_allow_store,
            "DicomAlwaysAllowFind": always_allow_find,
            "DicomAlwaysAllowFindWorklist": always_allow_find_worklist,
            "DicomAlwaysAllowGet": always_allow_get,
            "DicomAlwaysAllowMove": always_allow_move,
        }
        self.accepted_transfer_syntaxes = (
            list(accepted_transfer_syntaxes) if accepted_transfer_syntaxes is not None else None
        )
        self.unknown_sop_class_accepted = unknown_sop_class_accepted
        self.plugins = [os.fspath(plugin) for plugin in plugins]
        self.extra_config = dict(extra_config or {})
        self.verbose = verbose
        self.stop_timeout = stop_timeout
        self.http_port = 0
        self.dicom_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- paths and state ---------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "orthanc.log"

    @property
    def log(self) -> str:
        """Orthanc's log so far (``--logfile``, then anything it printed to stdout/stderr)."""
        return _read_text(self.log_path) + _read_text(self.directory / "orthanc.out")

    @property
    def port(self) -> int:
        """The DICOM port (same as :attr:`dicom_port`)."""
        return self.dicom_port

    @property
    def address(self) -> tuple[str, int]:
        return (_LOCALHOST, self.dicom_port)

    @property
    def base_url(self) -> str:
        return f"http://{_LOCALHOST}:{self.http_port}"

    def config(self) -> dict[str, object]:
        """The configuration Orthanc is started with."""
        storage = self.directory / "storage"
        config: dict[str, object] = {
            "Name": "sendtopacs-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": self.plugins,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "UnknownSopClassAccepted": self.unknown_sop_class_accepted,
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
            "DicomModalitiesInDatabase": False,
            **self.always_allow,
            "DicomAssociationCloseDelay": 0,
            "DicomScpTimeout": 30,
            "SaveJobs": False,
            "DeidentifyLogs": True,
            "ExecuteLuaEnabled": False,
            "StorageCompression": False,
        }
        if self.accepted_transfer_syntaxes is not None:
            config["AcceptedTransferSyntaxes"] = self.accepted_transfer_syntaxes
        config.update(self.extra_config)
        return config

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Write the configuration, start Orthanc and wait until ``GET /system`` answers."""
        executable = require_tool("Orthanc")
        if self._given_directory is None:
            self._temp_directory = tempfile.TemporaryDirectory(prefix="orthanc-")
            self.directory = Path(self._temp_directory.name)
        else:
            self.directory = self._given_directory
            self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.http_port = free_port()
            self.dicom_port = free_port()
            while self.dicom_port == self.http_port:
                self.dicom_port = free_port()
            self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
            args = [str(executable)]
            if self.verbose:
                args.append("--verbose")
            args += [f"--logfile={self.log_path}", "--no-jobs", str(self.config_path)]
            with (self.directory / "orthanc.out").open("ab") as out:
                self._process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            try:
                self._wait_ready()
            except PeerStartError:
                exited = self._process.poll() is not None
                self.stop()
                if exited and "address already in use" in self.log.lower():
                    continue
                raise
            return self
        raise PeerStartError(f"Orthanc could not listen on free ports\n{_tail(self.log)}")

    def _wait_ready(self) -> None:
        # Orthanc starts its DICOM server before its HTTP server, so an answer on the HTTP
        # port means the DICOM port is listening too.
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        error = ""
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PeerStartError(
                    f"Orthanc exited with status {self._process.returncode} before answering\n"
                    f"--- Orthanc log ---\n{_tail(self.log)}"
                )
            try:
                self.get_json("/system", timeout=1.0)
            except (OSError, ValueError) as exc:
                error = repr(exc)
                time.sleep(_PROBE_INTERVAL_S)
            else:
                return
        raise PeerStartError(
            f"Orthanc did not answer GET /system on port {self.http_port} within "
            f"{STARTUP_TIMEOUT_S:.0f} s (last error: {error})\n--- Orthanc log ---\n"
            + _tail(self.log)
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop Orthanc: terminate, then kill after ``timeout`` (default ``stop_timeout``).

        Its storage and log stay. A clean stop takes about 3.5 s; pass ``timeout=10`` for one.
        """
        try:
            _stop_process(self._process, self.stop_timeout if timeout is None else timeout)
        finally:
            self._process = None

    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        """Stop Orthanc and remove the temporary directory, if one was made."""
        self.stop()
        if self._temp_directory is not None:
            self._temp_directory.cleanup()
            self._temp_directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"OrthancPeer(ae_title={self.ae_title!r}, dicom_port={self.dicom_port}, "
            f"http_port={self.http_port})"
        )

    # -- REST (urllib only, 127.0.0.1) -------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float = 10.0
    ) -> bytes:
        """Send ``method path`` to the REST API and return the response body.

        Raises ``urllib.error.HTTPError`` on an error status.
        """
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base_url + path, data=body, method=method
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data: bytes = response.read()
            return data

    def get(self, path: str, *, timeout: float = 10.0) -> bytes:
        return self.request("GET", path, timeout=timeout)

    def get_json(self, path: str, *, timeout: float = 10.0) -> Any:
        return json.loads(self.get(path, timeout=timeout))

    def instances(self) -> list[dict[str, Any]]:
        """``GET /instances?expand``: one dict per stored instance."""
        result: list[dict[str, Any]] = self.get_json("/instances?expand")
        return result

    def count(self) -> int:
        """How many instances Orthanc holds."""
        return len(self.get_json("/instances"))

    def sop_instance_uids(self) -> list[str]:
        """The SOP Instance UIDs of the stored instances, sorted."""
        return sorted(item["MainDicomTags"]["SOPInstanceUID"] for item in self.instances())

    def instance_id(self, sop_instance_uid: str) -> str:
        """Orthanc's ID of the instance with ``sop_instance_uid`` (``KeyError`` if absent)."""
        for item in self.instances():
            if item["MainDicomTags"].get("SOPInstanceUID") == sop_instance_uid:
                instance_id: str = item["ID"]
                return instance_id
        raise KeyError(sop_instance_uid)

    def instance_tags(self, instance_id: str, *, simplify: bool = True) -> dict[str, Any]:
        """``GET /instances/{id}/simplified-tags`` (or ``/tags`` if not ``simplify``)."""
        suffix = "simplified-tags" if simplify else "tags"
        tags: dict[str, Any] = self.get_json(f"/instances/{instance_id}/{suffix}")
        return tags

    def transfer_syntax(self, instance_id: str) -> str:
        """The transfer syntax UID the instance was stored with (its ``TransferSyntax``)."""
        return self.get(f"/instances/{instance_id}/metadata/TransferSyntax").decode("ascii")

    def raw_tag(self, instance_id: str, tag: str) -> bytes:
        """The raw value bytes of ``tag`` (``"0010-0010"``) as stored."""
        return self.get(f"/instances/{instance_id}/content/{tag}")

    def file(self, instance_id: str) -> bytes:
        """The stored DICOM file."""
        return self.get(f"/instances/{instance_id}/file")

    def delete_all(self) -> None:
        """Delete every stored instance (via its patient)."""
        for patient in self.get_json("/patients"):
            self.request("DELETE", f"/patients/{patient}")


# --------------------------------------------------------------------------------------------
# Option types and factory protocols (for the fixtures in tests/network/conftest.py)
# --------------------------------------------------------------------------------------------


class StoreSCPOptions(TypedDict, total=False):
    """The keyword options of :class:`DcmtkStoreSCP`."""

    ae_title: str
    accept_all: bool
    uncompressed_only: bool
    transfer_syntaxes: Sequence[str] | None
    sop_classes: Sequence[str]
    bit_preserving: bool
    tls: TlsFiles | None
    require_client_cert: bool
    extra_args: Sequence[str]
    verbose: str


class OrthancOptions(TypedDict, total=False):
    """The keyword options of :class:`OrthancPeer`."""

    ae_title: str
    modalities: Mapping[str, tuple[str, str, int]] | None
    always_allow_echo: bool
    always_allow_store: bool
    always_allow_find: bool
    always_allow_find_worklist: bool
    always_allow_get: bool
    always_allow_move: bool
    accepted_transfer_syntaxes: Sequence[str] | None
    unknown_sop_class_accepted: bool
    plugins: Sequence[str | os.PathLike[str]]
    extra_config: Mapping[str, object] | None
    verbose: bool
    stop_timeout: float


class StoreSCPFactory(Protocol):
    """The ``dcmtk_storescp_factory`` fixture: start a storescp with these options."""

    def __call__(self, **options: Unpack[StoreSCPOptions]) -> DcmtkStoreSCP: ...


class OrthancFactory(Protocol):
    """The ``orthanc_factory`` fixture: start an Orthanc with these options."""

    def __call__(self, **options: Unpack[OrthancOptions]) -> OrthancPeer: ...


# --------------------------------------------------------------------------------------------
# Objects to send
# --------------------------------------------------------------------------------------------


def write_secondary_capture(
    path: Path,
    *,
    jpeg: bool = False,
    implicit_vr: bool = False,
    patient_name: str = "Doe^Jane",
    character_set: str | None = None,
) -> str:
    """Write a tiny 16x16 grey Secondary Capture image to ``path``; return its SOP Instance UID.

    Explicit VR little endian by default, implicit VR little endian with ``implicit_vr``, or
    JPEG Baseline (Pillow-encoded, encapsulated) with ``jpeg``. ``character_set`` sets
    Specific Character Set (e.g. ``"ISO_IR 100"``) for a non-ASCII ``patient_name``.
    """
    import io

    import pydicom
    import pydicom.encaps
    import pydicom.uid
    from PIL import Image

    if jpeg and implicit_vr:
        raise ValueError("jpeg and implicit_vr exclude each other")
    rows = columns = 16
    pixels = bytes((x * 16 + y) % 256 for y in range(rows) for x in range(columns))
    sop_class = pydicom.uid.SecondaryCaptureImageStorage
    sop_instance = pydicom.uid.generate_uid()
    if jpeg:
        transfer_syntax = pydicom.uid.JPEGBaseline8Bit
    elif implicit_vr:
        transfer_syntax = pydicom.uid.ImplicitVRLittleEndian
    else:
        transfer_syntax = pydicom.uid.ExplicitVRLittleEndian

    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    if character_set is not None:
        ds.SpecificCharacterSet = character_set
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = "NETPEER1"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if jpeg:
        buffer = io.BytesIO()
        Image.frombytes("L", (columns, rows), pixels).save(buffer, format="JPEG", quality=90)
        ds.PixelData = pydicom.encaps.encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = "2.0"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.PixelData = pixels
        ds["PixelData"].VR = "OB" if not implicit_vr else "OW"
    ds.save_as(path, enforce_file_format=True)
    return str(sop_instance)


# --------------------------------------------------------------------------------------------
# Sender helpers (tests/network/test_send_*.py)
# --------------------------------------------------------------------------------------------


def device_to(ae_title: str, port: int, **options: Any) -> Device:
    """A ``sendtopacs_core.Device`` named ``pacs`` for a peer on 127.0.0.1:``port``."""
    from sendtopacs_core import Device

    return Device(name="pacs", ae_title=ae_title, host=_LOCALHOST, port=port, **options)


def write_tiny_instance(path: Path, sop_class_uid: str) -> str:
    """Write a minimal object of any storage SOP class (no pixels); return its instance UID.

    Enough for a storage SCP that does not validate the IOD (pynetdicom, ``storescp``).
    """
    import pydicom
    import pydicom.uid

    sop_instance = pydicom.uid.generate_uid()
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance
    ds.PatientName = "Tiny^Instance"
    ds.PatientID = "TINY1"
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.Modality = "OT"
    ds.save_as(path, enforce_file_format=True)
    return str(sop_instance)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in pieces."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refused_socket_leak_ignored() -> pytest.MarkDecorator:
    """A pytest mark ignoring pynetdicom 3.0.4's leak of a refused connection's socket.

    ``AssociationSocket.connect`` calls ``shutdown`` (ENOTCONN) before ``close`` on a socket
    that never connected, so ``close`` never runs and the socket is collected unclosed.
    """
    import pytest

    return pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
