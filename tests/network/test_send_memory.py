"""R11: a 2 GiB file is streamed from disk, never held in memory.

The file is a Multi-frame Grayscale Byte Secondary Capture whose 2 GiB of OB Pixel Data are a
sparse hole (written with ``os.truncate``): no disk space, fast to read. A child process sends it
to DCMTK storescp ``--ignore`` (which receives the bytes but writes nothing); its peak RSS is
its own high-water mark (``VmHWM`` in ``/proc/self/status``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pydicom
import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests._netpeers import StoreSCPFactory

MULTIFRAME_GRAYSCALE_BYTE_SC: Final = "1.2.840.10008.5.1.4.1.1.7.2"
FRAMES: Final = 2048
SIDE: Final = 1024
PIXEL_BYTES: Final = FRAMES * SIDE * SIDE  # 2 GiB
MAX_RSS_MB: Final = 150

_CHILD: Final = """
import json, sys
from sendtopacs_core import Device, Sender, Timeouts
port, path = int(sys.argv[1]), sys.argv[2]
device = Device(name="big", ae_title="STORESCP", host="127.0.0.1", port=port,
                timeouts=Timeouts(dimse_s=120, network_s=120))
[outcome] = Sender(device).send([path]).outcomes
with open("/proc/self/status", encoding="ascii") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"state": str(outcome.state), "message": outcome.message, "peak_kb": peak_kb}))
"""


def write_big_multiframe(path: Path) -> str:
    """The header with pydicom, then the Pixel Data element header, then a sparse hole."""
    uid = generate_uid()
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MULTIFRAME_GRAYSCALE_BYTE_SC)
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MULTIFRAME_GRAYSCALE_BYTE_SC
    ds.SOPInstanceUID = uid
    ds.PatientName = "Big^File"
    ds.PatientID = "BIG1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = FRAMES
    ds.Rows = SIDE
    ds.Columns = SIDE
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.save_as(path, enforce_file_format=True)
    with path.open("ab") as stream:
        stream.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, PIXEL_BYTES))
        end = stream.tell() + PIXEL_BYTES
    os.truncate(path, end)
    return str(uid)


@pytest.mark.slow
def test_two_gib_file_is_streamed(dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path) -> None:
    big = tmp_path / "big.dcm"
    write_big_multiframe(big)
    assert big.stat().st_size > PIXEL_BYTES
    peer = dcmtk_storescp_factory(extra_args=["--ignore"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(peer.port), str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdout is not None and child.stderr is not None
    output, errors = child.stdout.read(), child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    child.stderr.close()
    elapsed = time.monotonic() - start
    assert child.returncode == 0, errors.decode(errors="replace")[-3000:]
    result = json.loads(output.decode().strip().splitlines()[-1])
    assert result["state"] == "sent", result["message"]
    # The child's own high-water mark (VmHWM, reset by exec). ``ru_maxrss`` from wait4 is not
    # used: Linux carries the RSS of the forked copy of this (large) test process over exec.
    peak_mb = result["peak_kb"] / 1024
    assert usage.ru_utime + usage.ru_stime < 120
    assert peak_mb <= MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    assert elapsed < 120
    assert "Received Store Request" in peer.log or "C-STORE" in peer.log
