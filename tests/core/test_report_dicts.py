"""One ``to_dict()`` per report: JSON-ready, the schema the guides document, paths and texts
through the caller's functions (what the HTTP API uses to hide its folders)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

import pytest

import sendtopacs_core as stp

DOCS: Final = Path(__file__).parents[2] / "docs" / "guides"
SC: Final = "1.2.840.10008.5.1.4.1.1.7"
JPEG_BASELINE: Final = "1.2.840.10008.1.2.4.50"


def _outcome(**changes: object) -> stp.FileOutcome:
    values: dict[str, object] = {
        "source": Path("/data/in/a.dcm"),
        "state": stp.SendState.SENT,
        "message": "0x0000 Success",
        "status": 0x0000,
        "sop_class_uid": SC,
        "sop_instance_uid": "1.2.3.4",
        "transfer_syntax_uid": JPEG_BASELINE,
    }
    values.update(changes)
    return stp.FileOutcome(**values)  # type: ignore[arg-type]


def _conversion() -> stp.ConversionReport:
    converted = stp.ConvertedFile(
        source=Path("/data/in/scan.tif"),
        path=Path("/data/out/scan-2.dcm"),
        sop_class_uid=SC,
        sop_instance_uid="1.2.3.5",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.1",
        transfer_syntax_uid=JPEG_BASELINE,
        action=stp.ConversionAction.ENCODED,
        reason="/data/in/scan.tif: 16-bit pages are encoded anew",
        page=1,
        warnings=("lossy: /data/in/scan.tif",),
    )
    failure = stp.ConversionFailure(
        source=Path("/data/in/broken.png"),
        error=stp.CorruptMediaError("/data/in/broken.png", "the file is cut short"),
    )
    return stp.ConversionReport(study_instance_uid="1.2.3", files=(converted,), failures=(failure,))


def _documented_keys(page: str, prefix: str) -> set[str]:
    """The keys named in the first column of the JSON report table of a guide."""
    text = (DOCS / page).read_text(encoding="utf-8")
    section = text.split("## The JSON report", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for row in re.findall(r"^\| (`.+?`) \|", section, re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", row):
            if name.startswith(prefix):
                keys.add(name.removeprefix(prefix))
            elif "[]" not in name:
                keys.add("." + name)
    return keys


# -- send ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "integer", "text"),
    [
        (0xA700, 42752, "0xA700"),
        (0x0000, 0, "0x0000"),
        (0xB000, 45056, "0xB000"),
        (None, None, None),
    ],
)
def test_status_as_integer_and_hex(
    status: int | None, integer: int | None, text: str | None
) -> None:
    state = stp.SendState.SENT if status == 0 else stp.SendState.FAILED
    entry = _outcome(status=status, state=state).to_dict()
    assert (entry["status"], entry["status_hex"]) == (integer, text)


def test_ok_is_delivery_sent_is_the_c_store() -> None:
    failed = _outcome(
        commitment=stp.CommitmentState.FAILED,
        commitment_failure_reason=0x0112,
        commitment_message="storage commitment failed: 0x0112 No such object instance",
    )
    entry = failed.to_dict()
    assert (entry["ok"], entry["sent"], entry["state"]) == (False, True, "sent")
    assert (entry["commitment"], entry["commitment_failure_reason"]) == ("failed", 274)
    assert entry["commitment_failure_reason_hex"] == "0x0112"
    committed = _outcome(commitment=stp.CommitmentState.COMMITTED).to_dict()
    assert (committed["ok"], committed["commitment_failure_reason_hex"]) == (True, None)
    plain = _outcome().to_dict()
    assert (plain["ok"], plain["commitment"]) == (True, None)
    refused = _outcome(state=stp.SendState.FAILED, status=0xA900).to_dict()
    assert (refused["ok"], refused["sent"]) == (False, False)


def test_send_report_counts_and_is_json() -> None:
    report = stp.SendReport(
        device="pacs",
        outcomes=(
            _outcome(),
            _outcome(commitment=stp.CommitmentState.NO_REPORT, commitment_message="no report"),
            _outcome(state=stp.SendState.RETRYABLE, status=0xA700),
            _outcome(state=stp.SendState.SKIPPED, status=None, message="DICOMDIR"),
        ),
        unreachable=False,
        kept_temp_dir=Path("/var/cache/kept"),
    )
    document = json.loads(json.dumps(report.to_dict()))
    assert document["ok"] is False
    counts = (document["sent"], document["failed"], document["uncommitted"], document["skipped"])
    assert counts == (2, 1, 1, 1)
    assert document["kept_temp_dir"] == "/var/cache/kept"
    assert [f["state"] for f in document["files"]] == [
        "sent",
        "sent",
        "retryable",
        "skipped",
    ]


def test_send_report_paths_and_texts_go_through_the_callers_functions() -> None:
    outcome = _outcome(
        state=stp.SendState.FAILED,
        message="not sent: /data/in/a.dcm is cut at offset 1234",
        commitment_message=None,
    )
    report = stp.SendReport(device="pacs", outcomes=(outcome,), unreachable=False)
    document = report.to_dict(
        path=lambda path: path.name, text=lambda text: text.replace("/data/in/", "")
    )
    (entry,) = document["files"]
    assert entry["source"] == "a.dcm"
    assert entry["message"] == "not sent: a.dcm is cut at offset 1234"
    assert "/data" not in json.dumps(document)


def test_send_schema_is_the_documented_one() -> None:
    report = stp.SendReport(device="pacs", outcomes=(_outcome(),), unreachable=False)
    document = report.to_dict()
    keys = {"." + key for key in document} | set(document["files"][0])
    assert _documented_keys("send.md", "files[].") == keys


# -- convert ---------------------------------------------------------------------------------


def test_conversion_report_as_json() -> None:
    document = json.loads(json.dumps(_conversion().to_dict()))
    assert (document["ok"], document["converted"], document["failed"]) == (False, 1, 1)
    (entry,) = document["files"]
    assert entry["page"] == 2  # counted from 1
    assert entry["sop_class"] == "Secondary Capture Image Storage"
    assert entry["transfer_syntax"] == "JPEG Baseline (Process 1)"
    assert entry["action"] == "encoded"
    assert (entry["source"], entry["path"]) == ("/data/in/scan.tif", "/data/out/scan-2.dcm")
    (failure,) = document["failures"]
    assert failure["error_type"] == "CorruptMediaError"
    assert failure["error"] == "cannot convert /data/in/broken.png: the file is cut short"


def test_conversion_paths_and_texts_go_through_the_callers_functions() -> None:
    document = _conversion().to_dict(
        path=lambda path: path.name, text=lambda text: text.replace("/data/in/", "")
    )
    (entry,) = document["files"]
    assert (entry["source"], entry["path"]) == ("scan.tif", "scan-2.dcm")
    assert entry["reason"] == "scan.tif: 16-bit pages are encoded anew"
    assert entry["warnings"] == ["lossy: scan.tif"]
    assert document["failures"][0]["error"] == "cannot convert broken.png: the file is cut short"
    assert "/data" not in json.dumps(document)


def test_convert_schema_is_the_documented_one() -> None:
    document = _conversion().to_dict()
    named = _documented_keys("convert.md", "files[].")
    assert {key for key in named if key.startswith(".")} == {"." + key for key in document}
    assert {key for key in named if not key.startswith(".")} == set(document["files"][0]) - {"data"}
    failures = _documented_keys("convert.md", "failures[].")
    assert {key for key in failures if not key.startswith(".")} == set(document["failures"][0])
