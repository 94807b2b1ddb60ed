"""What each key of ``settings.json`` does: :data:`DESCRIPTIONS` and the rows of ``explain``.

:func:`explain_rows` turns the unstructured settings (the JSON-ready dict of
:meth:`~sendtopacs_core.settings.Settings.to_dict`) into one :class:`SettingExplanation` per
key, in file order, with the key's one-line description; ``config show`` prints them. A new
settings key needs its line in :data:`DESCRIPTIONS`. This module does not know cattrs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

__all__ = ["DESCRIPTIONS", "SettingExplanation", "explain_rows"]


class SettingExplanation(NamedTuple):
    """One row of :meth:`~sendtopacs_core.settings.Settings.explain`."""

    key_path: str
    """``main.ae_title``, ``non_dicom.sop_class_rules[0].uid``..."""
    value: str
    """The current value as JSON text."""
    description: str
    """What the key does, in one line."""


#: The Study fields, as the ``study`` of a monitor shows them.
_STUDY_KEYS: Final = {
    "patient_id": "Patient ID",
    "patient_name": "Patient's Name (Family^Given)",
    "patient_birth_date": "Patient's Birth Date (YYYYMMDD)",
    "patient_sex": "Patient's Sex (M, F, O)",
    "study_instance_uid": "Study Instance UID (null: derived)",
    "study_date": "Study Date (null: today)",
    "study_time": "Study Time (null: now)",
    "accession_number": "Accession Number",
    "study_id": "Study ID",
    "study_description": "Study Description",
    "referring_physician_name": "Referring Physician's Name",
    "requested_procedure_id": "Requested Procedure ID",
    "requested_procedure_description": "Requested Procedure Description",
    "scheduled_procedure_step_id": "Scheduled Procedure Step ID",
    "procedure_codes": "Procedure codes (value, scheme, meaning)",
    "procedure_codes[].value": "Code Value",
    "procedure_codes[].scheme": "Coding Scheme Designator",
    "procedure_codes[].meaning": "Code Meaning",
    "modality": "Modality",
    "additional_info": "the additional info value",
    "from_worklist": "whether the data came from a worklist (keep false)",
}

#: One line per key path saying what the key does; ``[]`` stands for any item of a list.
DESCRIPTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "main.institution_name": "Institution Name (0008,0080) of converted objects; "
        "null leaves it out.",
        "main.station_name": "Station Name (0008,1010) of converted objects; null leaves it out.",
        "main.ae_title": "Our AE title when sending and querying; the PACS must know it.",
        "main.temp_dir": "Absolute folder for temporary files; null uses the platform default.",
        "main.clean_temp_on_exit": "Remove our temporary files when the program ends.",
        "main.clean_unused_temp": "Remove each temporary file as soon as it is no longer used.",
        "main.clean_sent_files_from_list": "Leave sent files out of the file list (watch "
        "--list, the web app's); off: they are listed as sent.",
        "main.listen_port": "Our port for incoming associations such as storage commitment "
        "reports; null: none.",
        "non_dicom.modalities": "Modalities offered for converted files (code strings: OT, ES, "
        "XC...).",
        "non_dicom.default_modality": "Modality used when none is given; one of modalities.",
        "non_dicom.sop_class_rules[].name": "A label for the rule; unique.",
        "non_dicom.sop_class_rules[].uid": "SOP Class UID of the objects the rule creates.",
        "non_dicom.sop_class_rules[].extensions": "Extensions without the dot the rule applies "
        "to; '*' means every file.",
        "non_dicom.sop_class_rules[].default": "Used for every extension no other rule names; "
        "needs '*'.",
        "non_dicom.sop_class_rules[].conversion_type": "Conversion Type (0008,0064): WSD "
        "screenshot/export, SD scanned document, SI scanned image...",
        "non_dicom.sop_class_rules[].burned_in_annotation": "Whether the content shows patient "
        "identifiers; null means not known.",
        "non_dicom.sop_class_rules[].follow_modality": "Video: the SOP class follows the "
        "modality (ES endoscopic, GM microscopic, else photographic with Modality XC).",
        "non_dicom.video_format": "Video transfer syntax: auto, mpeg2-main, mpeg2-high, h264-high "
        "or h264-bd.",
        "non_dicom.image_transfer_syntax": "Still images: auto (JPEG passes through, else "
        "uncompressed), explicit-le or jpeg-baseline.",
        "non_dicom.jpeg_quality": "Quality (1-100) when an image is encoded as baseline JPEG.",
        "non_dicom.charset": "Specific Character Set: auto (chosen from the text) or a defined "
        "term such as ISO_IR 192.",
        "non_dicom.additional_info_tag": "Attribute (keyword or gggg,eeee) that receives the "
        "additional info; null: none.",
        "non_dicom.additional_info_values": "Values offered for the additional info; another "
        "typed value is refused. Empty means free text.",
        "non_dicom.additional_info_default": "Additional info used when none is given; one of "
        "the values if any.",
        "non_dicom.worklist_only": "Take patient and study data only from a worklist, never "
        "typed in.",
        "non_dicom.parse_file_name": "Search the worklist with what the file name says (e.g. "
        "the patient ID).",
        "non_dicom.file_name_pattern": "How a file name is read: {patient_id}, "
        "{accession_number}, {patient_name}, {date}, * for anything.",
        "dicom.update_tags": "Attribute updates applied, in order, to DICOM files before sending.",
        "dicom.update_tags[].tag": "The attribute to set: keyword (Modality) or number "
        "(0008,0060).",
        "dicom.update_tags[].value": "The new value; {Keyword} or {gggg,eeee} insert current "
        "values, {{ and }} are braces.",
        "dicom.update_tags[].only_if_empty": "Change the attribute only when its value is empty.",
        "dicom.update_tags[].create_if_missing": "Add the attribute when the file lacks it.",
        "dicom.replace_with_worklist": "Replace patient and study data of DICOM files with the "
        "worklist item.",
        "dicom.parse_dicom_for_worklist": "Search the worklist with the patient and study data "
        "of each DICOM file.",
        "devices": "The PACS we send to; each is named and one may be the default.",
        "devices[].name": "Unique name of the device; what --to NAME refers to.",
        "devices[].ae_title": "The device's AE title (the called AE title).",
        "devices[].host": "Host name or IP address of the device.",
        "devices[].port": "TCP port of the device (1-65535).",
        "devices[].description": "Free text shown beside the name in lists of devices.",
        "devices[].charset": "Specific Character Set the copies sent are encoded in; null keeps "
        "each file's own.",
        "devices[].decompress": "Always send uncompressed (Explicit VR Little Endian), lossy "
        "sources included.",
        "devices[].default": "The device used when none is named; at most one.",
        "devices[].files_per_association": "Files sent per association (File send count); 0: "
        "no limit.",
        "devices[].parallel_associations": "Associations used at the same time for one send "
        "(1-16).",
        "devices[].tls.enabled": "Connect with DICOM TLS.",
        "devices[].tls.ca_file": "PEM file of the authorities that sign the server certificate; "
        "null: the system's.",
        "devices[].tls.cert_file": "PEM file of our client certificate, if the server asks for "
        "one.",
        "devices[].tls.key_file": "PEM file of the key of our client certificate.",
        "devices[].tls.verify": "Check the server certificate and host name (turning it off is "
        "unsafe).",
        "devices[].tls.server_name": "Name the server certificate must carry, when not the host.",
        "devices[].timeouts.connect_s": "Seconds to open the connection (and TLS handshake).",
        "devices[].timeouts.acse_s": "Seconds to wait for the association to be accepted or "
        "released.",
        "devices[].timeouts.dimse_s": "Seconds to wait for the answer to a request (C-STORE, "
        "C-ECHO).",
        "devices[].timeouts.network_s": "Seconds of silence before an association is aborted.",
        "devices[].storage_commitment": "Ask the device for storage commitment after sending; "
        "a file counts as kept only once committed.",
        "devices[].commitment_timeout_s": "Seconds to wait for the storage commitment report.",
        "monitors": "Watched folders whose files are sent unattended.",
        "monitors[].name": "Unique name of the monitor (in logs and the journal).",
        "monitors[].directory": "The folder watched, with its sub-folders (absolute path).",
        "monitors[].mode": "native (operating-system events) or polling (scans).",
        "monitors[].interval_s": "Seconds between scans (polling; native mode also rescans).",
        "monitors[].scan_count": "Files taken per scan; 0 means all.",
        "monitors[].auto_forward": "Send files as they arrive; false: list them as pending.",
        "monitors[].failed_dir": "Where failed files go (dated, with a reason file); null: "
        "<directory>.failed.",
        "monitors[].retry_count": "Attempts after the first for failures that may pass.",
        "monitors[].retry_timeout_s": "Seconds between attempts.",
        "monitors[].device": "The device sent to; null: the default device.",
        "monitors[].remove_sent": "Delete a file once the PACS has accepted it.",
        "monitors[].success_dir": "Move accepted files here instead (relative paths kept).",
        "monitors[].update_tags": "Attribute updates for this folder's DICOM files.",
        "monitors[].update_tags[].tag": "The attribute to set: keyword or number.",
        "monitors[].update_tags[].value": "The new value; {Keyword} or {gggg,eeee} insert "
        "current values.",
        "monitors[].update_tags[].only_if_empty": "Change the attribute only when it is empty.",
        "monitors[].update_tags[].create_if_missing": "Add the attribute when the file lacks it.",
        "monitors[].settle_s": "Seconds a file must stay unchanged before it is taken.",
        **{
            f"monitors[].study.{key}": f"Non-DICOM files without a worklist item: {text}."
            for key, text in _STUDY_KEYS.items()
        },
        "api.bind": "Address the HTTP service listens on; not loopback needs HTTPS.",
        "api.port": "TCP port of the HTTP service.",
        "api.username": "The API user; null until config set-api-password.",
        "api.password_hash": "The API password as a salted scrypt hash (set it with config "
        "set-api-password).",
        "api.allowlist": "Client IPs or CIDR ranges allowed (the peer address).",
        "api.max_upload_mb": "Largest request body accepted, in MB.",
        "api.tls_cert_file": "PEM certificate for HTTPS; null: plain HTTP (loopback only).",
        "api.tls_key_file": "PEM key of that certificate.",
        "api.allow_insecure_bind": "Allow a non-loopback bind without HTTPS (unsafe).",
        "api.auth_failures_per_minute": "Failed logins per client per minute before 429.",
        "worklist_devices": "Modality Worklist and Query/Retrieve servers searched for patients.",
        "worklist_devices[].name": "Unique name of the worklist device; what --worklist NAME "
        "refers to.",
        "worklist_devices[].ae_title": "The server's AE title (the called AE title).",
        "worklist_devices[].host": "Host name or IP address of the server.",
        "worklist_devices[].port": "TCP port of the server (1-65535).",
        "worklist_devices[].description": "Free text shown beside the name in lists of devices.",
        "worklist_devices[].charset": "Character set of answers without (0008,0005); null: "
        "UTF-8 if valid, else Latin-1.",
        "worklist_devices[].default": "The worklist device used when none is named; at most one.",
        "worklist_devices[].modality": "Default Modality search key (e.g. ES); null: any.",
        "worklist_devices[].scheduled_ae_title": "Default Scheduled Station AE Title key; null: "
        "any.",
        "worklist_devices[].root_model": "Information model: worklist, patient, study or "
        "patient_study.",
        "worklist_devices[].model_level": "Q/R level when the model is not worklist: patient or "
        "study.",
        "worklist_devices[].fill_patient_id": "Use a file's Patient ID as a search key: off, "
        "exact or wildcard.",
        "worklist_devices[].fill_patient_name": "Use a file's Patient's Name as a search key: "
        "off, exact or wildcard.",
        "worklist_devices[].use_today": "Search for today's scheduled steps unless a date is "
        "given.",
        "worklist_devices[].tls.enabled": "Connect with DICOM TLS.",
        "worklist_devices[].tls.ca_file": "PEM file of the authorities that sign the server "
        "certificate; null: the system's.",
        "worklist_devices[].tls.cert_file": "PEM file of our client certificate, if the server "
        "asks for one.",
        "worklist_devices[].tls.key_file": "PEM file of the key of our client certificate.",
        "worklist_devices[].tls.verify": "Check the server certificate and host name (turning "
        "it off is unsafe).",
        "worklist_devices[].tls.server_name": "Name the server certificate must carry, when not "
        "the host.",
        "worklist_devices[].timeouts.connect_s": "Seconds to open the connection (and TLS "
        "handshake).",
        "worklist_devices[].timeouts.acse_s": "Seconds to wait for the association to be "
        "accepted or released.",
        "worklist_devices[].timeouts.dimse_s": "Seconds to wait for each answer of a search.",
        "worklist_devices[].timeouts.network_s": "Seconds of silence before an association is "
        "aborted.",
    }
)

_INDEX: Final = re.compile(r"\[\d+\]")


def _explain(value: Any, key_path: str, prefix: str, rows: list[SettingExplanation]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _explain(item, f"{prefix}{key}", f"{prefix}{key}.", rows)
        return
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            _explain(item, f"{key_path}[{index}]", f"{key_path}[{index}].", rows)
        return
    description = DESCRIPTIONS.get(_INDEX.sub("[]", key_path), "")
    rows.append(SettingExplanation(key_path, json.dumps(value, ensure_ascii=False), description))


def explain_rows(data: Mapping[str, Any]) -> list[SettingExplanation]:
    """Every key of ``data`` (unstructured settings) with its value as JSON and its description.

    Keys come in the order of ``data``; lists of objects are expanded per item
    (``non_dicom.sop_class_rules[0].uid``), and any other list, empty or not, is one row.
    """
    rows: list[SettingExplanation] = []
    _explain(dict(data), "", "", rows)
    return rows
