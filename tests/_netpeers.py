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
* ``wlmscpfs`` serves ``<-dfp>/<called AE title>/*.wl`` (a ``lockfile`` must exist there). With
  ``-efr`` (default) a file missing a type 1 return key (e.g. an empty Scheduled Station AE
  Title) is skipped with "is incomplete, file will be ignored" in its log, and the C-FIND still
  ends with Success; missing type 2 Referenced Study/Patient Sequences are added with a
  warning. It never converts character sets: ``-cs0`` (default) sends no (0008,0005) with the
  file's bytes, ``-csk`` sends the file's own Specific Character Set.
* Orthanc 1.10.1's worklist plugin (``Worklists.Database``, ``*.wl`` files read at every query)
  converts every answer to ``DefaultEncoding`` (``Latin1`` unless configured) and sets
  (0008,0005) to match (``ISO_IR 100``, ``ISO_IR 192``...), whatever the file's or the query's
  character set; characters the target cannot hold are dropped silently.
* ``dcmqrscp`` 3.6.7 crashes (SIGSEGV) after its first association in ``--single-process``
  mode, so it runs forking; ``dcmqridx`` indexes files in place before the start.
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

from tests._peers import dcmtk_env, find_tool, missing_tool, pydicom_writes_raise, require_tool

if TYPE_CHECKING:
    import pytest

    from sendtopacs_core import Device

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "ORTHANC_WORKLIST_PLUGIN",
    "STARTUP_TIMEOUT_S",
    "STORAGE_SOP_CLASSES",
    "UNCOMPRESSED_TRANSFER_SYNTAXES",
    "WORKLIST_CHARACTER_SETS",
    "BlackHolePeer",
    "DcmtkQRSCP",
    "DcmtkStoreSCP",
    "DcmtkWorklistSCP",
    "OrthancFactory",
    "OrthancOptions",
    "OrthancPeer",
    "OrthancWorklistPeer",
    "PeerStartError",
    "StoreSCPFactory",
    "StoreSCPOptions",
    "TlsFiles",
    "dcmtk_tls_client_args",
    "free_port",
    "make_tls_files",
    "write_secondary_capture",
    "write_worklist_item",
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


@pydicom_writes_raise()  # the objects the tests send are valid: pydicom raises otherwise
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


@pydicom_writes_raise()
def write_tiny_instance(path: Path, sop_class_uid: str) -> str:
    """Write a minimal object of any storage SOP class; return its instance UID.

    Enough for a storage SCP that does not validate the IOD (pynetdicom, ``storescp``). It
    has a 2x2 monochrome Image Pixel module, so that an image SOP class has its Pixel Data.
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
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x40\x80\xff"
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


# --------------------------------------------------------------------------------------------
# Worklist and query peers: wlmscpfs, dcmqrscp, Orthanc's worklist plugin, a black hole
# --------------------------------------------------------------------------------------------

#: Where Debian's orthanc package installs the worklist plugin.
ORTHANC_WORKLIST_PLUGIN: Final = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")
#: DCMTK's private "generic file" SOP class, which ``dump2dcm -g`` puts in ``.wl`` file meta.
_GENERIC_FILE_SOP_CLASS: Final = "1.2.276.0.7230010.3.1.0.1"
#: ``character_set`` values of :func:`write_worklist_item` for the usual test names.
WORKLIST_CHARACTER_SETS: Final[dict[str, str | list[str]]] = {
    "latin1": "ISO_IR 100",
    "utf8": "ISO_IR 192",
    "cyrillic": "ISO_IR 144",
    "japanese": ["", "ISO 2022 IR 87"],
}


def write_worklist_item(
    path: Path,
    *,
    patient_name: str,
    patient_id: str,
    accession_number: str,
    study_instance_uid: str | None = None,
    start_date: str,
    start_time: str = "080000",
    modality: str = "CT",
    scheduled_ae: str = "STATION1",
    character_set: str | Sequence[str] | None = None,
    requested_procedure_id: str = "RP0001",
    description: str = "Test procedure",
    referring_physician: str = "Referrer^Rita",
    step_id: str = "SPS0001",
    performing_physician: str = "",
    patient_birth_date: str = "19700101",
    patient_sex: str = "O",
    implicit_vr: bool = False,
) -> Any:
    """Write a worklist item (``.wl`` file) for wlmscpfs or Orthanc; return the dataset.

    The attribute set is that of DCMTK's ``wlistdb`` samples: the patient, Accession Number,
    Referring Physician, Study Instance UID, Requested Procedure ID and Description (also as
    Requested Procedure Code Sequence) and one Scheduled Procedure Step (Modality, Station AE
    Title, start date/time, performing physician, description, step ID), plus the empty type 2
    Referenced Study/Patient Sequences (wlmscpfs adds them with a warning otherwise).
    wlmscpfs ignores files missing a type 1 return key (with ``-efr``, its default: "file will
    be ignored" in its log, the C-FIND still succeeds), among them an empty Scheduled Station
    AE Title: ``scheduled_ae=""`` writes an incomplete item (served only with
    ``reject_incomplete=False``; Orthanc serves it).

    ``character_set`` is Specific Character Set (see :data:`WORKLIST_CHARACTER_SETS`; for
    Japanese ``["", "ISO 2022 IR 87"]``, which pydicom writes as ``\\ISO 2022 IR 87``). The
    file is a Part 10 file (DCMTK's generic-file SOP class in the meta), explicit VR little
    endian, or implicit VR little endian with ``implicit_vr``.
    """
    import pydicom
    import pydicom.uid

    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.UID(_GENERIC_FILE_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = (
        pydicom.uid.ImplicitVRLittleEndian if implicit_vr else pydicom.uid.ExplicitVRLittleEndian
    )
    ds = pydicom.Dataset()
    ds.file_meta = meta
    if character_set is not None:
        ds.SpecificCharacterSet = (
            character_set if isinstance(character_set, str) else list(character_set)
        )
    ds.AccessionNumber = accession_number
    ds.ReferringPhysicianName = referring_physician
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = patient_sex
    ds.StudyInstanceUID = study_instance_uid or pydicom.uid.generate_uid()
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    ds.RequestedProcedureDescription = description
    code = pydicom.Dataset()
    code.CodeValue = requested_procedure_id
    code.CodingSchemeDesignator = "99TEST"
    code.CodeMeaning = description
    ds.RequestedProcedureCodeSequence = [code]
    ds.RequestedProcedureID = requested_procedure_id
    step = pydicom.Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = scheduled_ae
    step.ScheduledProcedureStepStartDate = start_date
    step.ScheduledProcedureStepStartTime = start_time
    step.ScheduledPerformingPhysicianName = performing_physician
    step.ScheduledProcedureStepDescription = description
    step.ScheduledProcedureStepID = step_id
    ds.ScheduledProcedureStepSequence = [step]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True, implicit_vr=implicit_vr, little_endian=True)
    return ds


class _DcmtkProcessPeer:
    """A DCMTK server program on 127.0.0.1 and a free port (``TCP_NODELAY=1``).

    Subclasses give the program name, prepare their files and build the command line; this
    class starts it (retrying if the port was taken), probes it with ``echoscu`` and stops it.
    """

    program: str = ""

    def __init__(self, directory: Path | None, *, ae_title: str, verbose: str) -> None:
        self._given_directory = directory
        self._temp_directory: tempfile.TemporaryDirectory[str] | None = None
        self.directory = Path()
        self.ae_title = ae_title
        self.verbose = verbose
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.program}.log"

    @property
    def log(self) -> str:
        """Everything the program has printed so far (stdout and stderr)."""
        return _read_text(self.log_path)

    @property
    def address(self) -> tuple[str, int]:
        return (_LOCALHOST, self.port)

    def _prepare(self) -> None:
        """Write the files the program needs (in :attr:`directory`)."""

    def command(self) -> list[str]:
        """The command line (for the current :attr:`port`)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the program and wait until it answers a C-ECHO."""
        if self._given_directory is None:
            self._temp_directory = tempfile.TemporaryDirectory(prefix=f"{self.program}-")
            self.directory = Path(self._temp_directory.name)
        else:
            self.directory = self._given_directory
            self.directory.mkdir(parents=True, exist_ok=True)
        self._prepare()
        echoscu = require_tool("echoscu")
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
        raise PeerStartError(f"{self.program} could not listen on a free port\n{_tail(self.log)}")

    def _wait_ready(self, echoscu: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        output = ""
        args = [str(echoscu), "-aec", self.ae_title, "-to", "2", "-ta", "2", "-td", "2"]
        args += [_LOCALHOST, str(self.port)]
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PeerStartError(
                    f"{self.program} exited with status {self._process.returncode} before "
                    f"answering\ncommand: {' '.join(self.command())}\n--- log ---\n"
                    + _tail(self.log)
                )
            proc = subprocess.run(
                args,
                capture_output=True,
                timeout=STARTUP_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
                env=dcmtk_env(),
            )
            output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
            if proc.returncode == 0 or "Association Rejected" in output:
                return
            time.sleep(_PROBE_INTERVAL_S)
        raise PeerStartError(
            f"{self.program} did not answer on port {self.port} within "
            f"{STARTUP_TIMEOUT_S:.0f} s\nlast echoscu output:\n{output}\n--- log ---\n"
            + _tail(self.log)
        )

    def stop(self) -> None:
        """Stop the program (terminate, then kill); its files and log stay."""
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
        """Stop the program and remove the temporary directory, if one was made."""
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
        return f"{type(self).__name__}(ae_title={self.ae_title!r}, port={self.port})"


def _copy_or_write(item: Path | Any, target: Path) -> None:
    """Copy file ``item`` to ``target`` or, for a pydicom dataset, save it there."""
    import shutil

    if isinstance(item, Path):
        shutil.copyfile(item, target)
    else:
        item.save_as(target, enforce_file_format=True)


class DcmtkWorklistSCP(_DcmtkProcessPeer):
    """DCMTK's ``wlmscpfs`` serving worklist files; a context manager.

    Parameters
    ----------
    items
        A folder whose ``*.wl`` files are served, or ``.wl`` files, or pydicom datasets with
        file meta (saved as ``item<N>.wl``). They are copied into the database folder
        ``directory / "db" / ae_title`` (with the ``lockfile`` wlmscpfs needs).
    directory
        Working directory (database, log ``wlmscpfs.log``); a temporary one if ``None``.
    ae_title
        Our AE title: wlmscpfs serves the database folder named like the *called* AE title and
        answers other called AE titles with a failure (or rejects the association).
    character_set
        ``"keep"`` (``-csk``: return the Specific Character Set of the file), ``"none"``
        (``-cs0``, wlmscpfs's default: no (0008,0005) in responses, the values still in the
        file's encoding) or ``"latin1"`` (``-cs1``: always claim ISO_IR 100).
    reject_incomplete
        ``-efr`` (default, wlmscpfs ignores files missing a type 1 return key, with a
        warning in its log) or ``-dfr``.
    extra_args
        More options, e.g. ``--sleep-during N``, ``--refuse``, ``-nse``.
    verbose
        ``"verbose"`` (``-v``) or ``"debug"`` (``-d``).
    """

    program = "wlmscpfs"

    def __init__(
        self,
        items: Path | Sequence[Path | Any],
        directory: Path | None = None,
        *,
        ae_title: str = "WLMSCP",
        character_set: str = "keep",
        reject_incomplete: bool = True,
        extra_args: Sequence[str] = (),
        verbose: str = "verbose",
    ) -> None:
        super().__init__(directory, ae_title=ae_title, verbose=verbose)
        if character_set not in _WLMSCPFS_CHARACTER_SETS:
            raise ValueError(f"character_set must be one of {sorted(_WLMSCPFS_CHARACTER_SETS)}")
        self.items = items if isinstance(items, Path) else list(items)
        self.character_set = character_set
        self.reject_incomplete = reject_incomplete
        self.extra_args = tuple(extra_args)

    @property
    def database(self) -> Path:
        """The folder given to ``-dfp`` (one sub-folder per AE title)."""
        return self.directory / "db"

    @property
    def worklist_dir(self) -> Path:
        """The folder of our AE title, holding the ``.wl`` files and ``lockfile``."""
        return self.database / self.ae_title

    def _prepare(self) -> None:
        self.worklist_dir.mkdir(parents=True, exist_ok=True)
        (self.worklist_dir / "lockfile").touch()
        if isinstance(self.items, Path):
            sources: list[Path | Any] = sorted(self.items.glob("*.wl"))
        else:
            sources = list(self.items)
        for number, item in enumerate(sources, start=1):
            name = item.name if isinstance(item, Path) else f"item{number}.wl"
            _copy_or_write(item, self.worklist_dir / name)

    def command(self) -> list[str]:
        args = [str(require_tool("wlmscpfs"))]
        args.append("-d" if self.verbose == "debug" else "-v")
        args += ["-s", "-dhl", "-dfp", str(self.database)]
        args.append("-efr" if self.reject_incomplete else "-dfr")
        args.append(_WLMSCPFS_CHARACTER_SETS[self.character_set])
        return [*args, *self.extra_args, str(self.port)]


_WLMSCPFS_CHARACTER_SETS: Final = {"keep": "-csk", "none": "-cs0", "latin1": "-cs1"}


def _dcmqrscp_config(port: int, ae_title: str, storage: Path) -> str:
    """A ``dcmqrscp`` configuration: one AE title with a read/write storage area.

    The quota's study count must stay <= 500 (dcmqrscp warns and lowers it otherwise). No
    ``UserName``/``GroupName``: dcmqrscp would switch to that user when started as root.
    """
    return "\n".join(
        [
            f"NetworkTCPPort  = {port}",
            "MaxPDUSize      = 16384",
            "MaxAssociations = 16",
            "",
            "HostTable BEGIN",
            "HostTable END",
            "",
            "VendorTable BEGIN",
            "VendorTable END",
            "",
            "AETable BEGIN",
            f"{ae_title}  {storage}  RW  (200, 1024mb)  ANY",
            "AETable END",
            "",
        ]
    )


class DcmtkQRSCP(_DcmtkProcessPeer):
    """DCMTK's ``dcmqrscp`` (Query/Retrieve SCP) holding given instances; a context manager.

    The instances are copied into the storage area and registered with ``dcmqridx`` before
    the start, so C-FIND at the PATIENT, STUDY, SERIES and IMAGE levels (Patient Root, Study
    Root, Patient/Study Only) finds them.

    Parameters
    ----------
    datasets
        DICOM files or pydicom datasets with file meta (each needs Patient ID, Study, Series
        and SOP Instance UIDs and SOP Class UID).
    directory
        Working directory (``storage/``, ``dcmqrscp.cfg``, log ``dcmqrscp.log``); a
        temporary one if ``None``.
    ae_title
        Our AE title; dcmqrscp rejects associations calling another one.
    extra_args
        More dcmqrscp options (e.g. ``-XF`` to check C-FIND identifiers).
    """

    program = "dcmqrscp"

    def __init__(
        self,
        datasets: Sequence[Path | Any],
        directory: Path | None = None,
        *,
        ae_title: str = "QRSCP",
        extra_args: Sequence[str] = (),
        verbose: str = "verbose",
    ) -> None:
        super().__init__(directory, ae_title=ae_title, verbose=verbose)
        self.datasets = list(datasets)
        self.extra_args = tuple(extra_args)

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    @property
    def config_path(self) -> Path:
        return self.directory / "dcmqrscp.cfg"

    def _prepare(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        files = []
        for number, item in enumerate(self.datasets, start=1):
            target = self.storage / f"instance{number:04d}.dcm"
            _copy_or_write(item, target)
            files.append(str(target))
        if files:
            proc = subprocess.run(
                [str(require_tool("dcmqridx")), str(self.storage), *files],
                capture_output=True,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
                raise PeerStartError(f"dcmqridx failed ({proc.returncode}):\n{output}")

    def command(self) -> list[str]:
        self.config_path.write_text(
            _dcmqrscp_config(self.port, self.ae_title, self.storage), encoding="utf-8"
        )
        args = [str(require_tool("dcmqrscp"))]
        args.append("-d" if self.verbose == "debug" else "-v")
        # Not --single-process: DCMTK 3.6.7's dcmqrscp -s crashes (SIGSEGV) after its first
        # association; forked children end with their associations.
        args += ["-c", str(self.config_path)]
        return [*args, *self.extra_args, str(self.port)]


class OrthancWorklistPeer(OrthancPeer):
    """Orthanc with its Modality Worklists plugin serving the ``.wl`` files of a folder.

    Parameters
    ----------
    database
        The folder of ``.wl`` files (``Worklists.Database``); read at every query, so files
        may be added while Orthanc runs.
    directory
        As for :class:`OrthancPeer`.
    default_encoding
        ``DefaultEncoding`` (``"Latin1"``, ``"Utf8"``...), Orthanc's default ``Latin1`` if
        ``None``.
    plugin
        The worklist plugin file.
    options
        More :class:`OrthancPeer` options; ``always_allow_find_worklist`` is true by default.
    """

    def __init__(
        self,
        database: Path,
        directory: Path | None = None,
        *,
        default_encoding: str | None = None,
        plugin: Path = ORTHANC_WORKLIST_PLUGIN,
        **options: Unpack[OrthancOptions],
    ) -> None:
        options.setdefault("always_allow_find_worklist", True)
        options.setdefault("plugins", [plugin])
        super().__init__(directory, **options)
        self.database = database
        self.default_encoding = default_encoding

    def config(self) -> dict[str, object]:
        config = super().config()
        config["Worklists"] = {"Enable": True, "Database": str(self.database)}
        if self.default_encoding is not None:
            config["DefaultEncoding"] = self.default_encoding
        config.update(self.extra_config)
        return config

    def start(self) -> Self:
        for plugin in self.plugins:
            if not Path(plugin).exists():
                missing_tool(f"Orthanc plugin {plugin} not found; apt-get install orthanc")
        self.database.mkdir(parents=True, exist_ok=True)
        return super().start()


class BlackHolePeer:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte.

    For timeout tests: an association request to it is never answered. It drains what it
    receives and keeps every connection open until :meth:`stop` (a context manager).
    """

    def __init__(self) -> None:
        import threading

        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self.received = 0

    @property
    def address(self) -> tuple[str, int]:
        return (_LOCALHOST, self.port)

    @property
    def connections(self) -> int:
        """How many connections were accepted."""
        with self._lock:
            return len(self._connections)

    def start(self) -> Self:
        import threading

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((_LOCALHOST, 0))
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="BlackHolePeer", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        import selectors

        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _events in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        try:
                            conn, _peer = sock.accept()
                        except OSError:
                            continue
                        conn.setblocking(False)
                        with self._lock:
                            self._connections.append(conn)
                        selector.register(conn, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    self.received += len(data)
                    if not data:  # closed by the client: forget it
                        selector.unregister(sock)

    def stop(self) -> None:
        """Stop the thread and close the listener and every connection."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_TIMEOUT_S)
            self._thread = None
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BlackHolePeer(port={self.port})"
