"""settings.json: defaults, round trips, and errors that name the key path and the value."""

from __future__ import annotations

import json
import os
import re
import stat
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import (
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
)

from sendtopacs_core._vr import CHARSETS
from sendtopacs_core.errors import ConfigError, InvalidValueError
from sendtopacs_core.model import (
    Code,
    ConversionType,
    Device,
    ImageTransferSyntax,
    SopClassRule,
    Study,
    TagPattern,
    VideoFormat,
    WorklistDevice,
)
from sendtopacs_core.monitor import MonitorRule
from sendtopacs_core.settings import (
    DEFAULT_SOP_CLASS_RULES,
    DESCRIPTIONS,
    VIDEO_EXTENSIONS,
    DicomSettings,
    MainSettings,
    NonDicomSettings,
    SettingExplanation,
    Settings,
    make_converter,
)

# -- helpers -----------------------------------------------------------------------------------


def config_error(data: object) -> ConfigError:
    """The ConfigError that ``Settings.from_dict(data)`` raises."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_dict(data)
    return caught.value


def lines_of(error: ConfigError) -> list[str]:
    """The problem lines of a ConfigError (one, or several after a count)."""
    message = error.message
    if re.match(r"\d+ problems:\n", message):
        return [line.strip() for line in message.splitlines()[1:]]
    return [message]


def rule(name: str, extensions: tuple[str, ...], *, default: bool = False) -> dict[str, Any]:
    return {"name": name, "uid": "1.2.3", "extensions": list(extensions), "default": default}


STAR = rule("All", ("*",), default=True)

# -- defaults ----------------------------------------------------------------------------------


def test_defaults_are_those_of_the_design() -> None:
    s = Settings()
    assert s.main.ae_title == "SENDTOPACS"
    assert s.main.institution_name is None
    assert s.main.temp_dir is None
    assert s.main.clean_temp_on_exit is True
    assert s.main.clean_unused_temp is False
    assert s.main.clean_sent_files_from_list is False
    assert s.non_dicom.modalities == ("OT",)
    assert s.non_dicom.default_modality == "OT"
    assert s.non_dicom.video_format is VideoFormat.AUTO
    assert s.non_dicom.image_transfer_syntax is ImageTransferSyntax.AUTO
    assert s.non_dicom.jpeg_quality == 90
    assert s.non_dicom.charset == "auto"
    assert s.dicom.update_tags == ()
    assert s.dicom.replace_with_worklist is False


def test_default_sop_class_rules() -> None:
    rules = Settings().non_dicom.sop_class_rules
    assert rules == DEFAULT_SOP_CLASS_RULES
    assert [(r.name, r.uid, r.extensions, r.default) for r in rules] == [
        ("Secondary Capture Image Storage", SecondaryCaptureImageStorage, ("*",), True),
        ("Encapsulated PDF Storage", EncapsulatedPDFStorage, ("pdf",), False),
        (
            "Video Photographic Image Storage",
            VideoPhotographicImageStorage,
            VIDEO_EXTENSIONS,
            False,
        ),
    ]
    assert rules[1].conversion_type is ConversionType.WSD
    assert set(VIDEO_EXTENSIONS) >= {"mp4", "mov", "mpg", "mpeg", "avi", "mkv", "webm", "3gp"}
    assert all(type(r.uid) is str for r in rules)


@pytest.mark.parametrize(
    ("extension", "uid"),
    [
        ("pdf", EncapsulatedPDFStorage),
        (".PDF", EncapsulatedPDFStorage),
        ("MP4", VideoPhotographicImageStorage),
        ("m2ts", VideoPhotographicImageStorage),
        ("jpg", SecondaryCaptureImageStorage),
        ("", SecondaryCaptureImageStorage),
        ("*", SecondaryCaptureImageStorage),
    ],
)
def test_rule_for_prefers_the_named_extension_then_the_default(extension: str, uid: str) -> None:
    assert Settings().non_dicom.rule_for(extension).uid == uid


def test_rule_for_with_a_default_that_is_not_first() -> None:
    with pytest.raises(InvalidValueError, match=r"sop_class_rules\[2\]\.extensions '\*'"):
        NonDicomSettings(  # two rules name '*'; the one that is not the default would never apply
            sop_class_rules=(
                SopClassRule(name="Scans", uid="1.2.4", extensions=("tif", "tiff")),
                SopClassRule(name="Other", uid="1.2.5", extensions=("*",)),
                SopClassRule(name="All", uid="1.2.3", extensions=("*", "png"), default=True),
            )
        )
    non_dicom = NonDicomSettings(
        sop_class_rules=(
            SopClassRule(name="Scans", uid="1.2.4", extensions=("tif", "tiff")),
            SopClassRule(name="All", uid="1.2.3", extensions=("*", "png"), default=True),
        )
    )
    assert non_dicom.rule_for("TIFF").name == "Scans"
    assert non_dicom.rule_for("png").name == "All"
    assert non_dicom.rule_for("jpg").name == "All"


# -- loading and dumping -----------------------------------------------------------------------


def test_default_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings().dump(path)
    assert Settings.load(path) == Settings()
    assert os.listdir(tmp_path) == ["settings.json"]  # no temporary file left behind


def test_dump_writes_every_key_in_class_order(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings().dump(path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "main": {\n    "institution_name": null,\n')
    data = json.loads(text)
    assert list(data) == [f.name for f in attrs.fields(Settings)]
    for name, section in attrs.asdict(Settings(), recurse=False).items():
        if not attrs.has(type(section)):
            assert data[name] == []  # the lists of objects (devices) are empty by default
            continue
        assert list(data[name]) == [f.name for f in attrs.fields(type(section))]
    for item in data["non_dicom"]["sop_class_rules"]:
        assert list(item) == [f.name for f in attrs.fields(SopClassRule)]
    assert data["non_dicom"]["sop_class_rules"][2]["extensions"] == list(VIDEO_EXTENSIONS)


def test_dump_keeps_non_ascii_text_readable(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    s = Settings(main=MainSettings(institution_name="Klinik Müller \u2013 Süd"))
    s.dump(path)
    assert "Klinik Müller \u2013 Süd" in path.read_text(encoding="utf-8")
    assert Settings.load(path) == s


def test_dump_creates_the_folder_and_replaces_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "settings.json"
    Settings().dump(path)
    changed = Settings(main=MainSettings(ae_title="CLINIC"))
    changed.dump(path)
    assert Settings.load(path) == changed
    assert os.listdir(path.parent) == ["settings.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_dump_keeps_the_permissions_of_the_file_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o640)
    Settings().dump(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_dump_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"main": {"ae_title": "OLD"}}', encoding="utf-8")

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(
        ConfigError, match="cannot write the settings file: No space left"
    ) as caught:
        Settings().dump(path)
    assert caught.value.path == path
    assert os.listdir(tmp_path) == ["settings.json"]
    assert json.loads(path.read_text(encoding="utf-8")) == {"main": {"ae_title": "OLD"}}


def test_dump_into_a_file_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write the settings file"):
        Settings().dump(tmp_path)


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert Settings.load(tmp_path / "nothing-here.json") == Settings()
    assert Settings.load(tmp_path / "no" / "folder" / "settings.json") == Settings()


def test_empty_object_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{}\n", encoding="utf-8")
    assert Settings.load(path) == Settings()
    assert Settings.from_dict({"main": {}, "non_dicom": {}, "dicom": {}}) == Settings()


def test_every_section_and_key_is_optional() -> None:
    s = Settings.from_dict({"non_dicom": {"jpeg_quality": 75}})
    assert s.non_dicom.jpeg_quality == 75
    assert s.main == MainSettings()
    assert s.dicom == DicomSettings()
    assert s.non_dicom.sop_class_rules == DEFAULT_SOP_CLASS_RULES


def test_optional_fields_may_be_null() -> None:
    s = Settings.from_dict(
        {
            "main": {"institution_name": None, "station_name": None, "temp_dir": None},
            "non_dicom": {"additional_info_tag": None, "additional_info_default": None},
        }
    )
    assert s == Settings()


def test_values_are_read_into_their_types() -> None:
    s = Settings.from_dict(
        {
            "main": {"temp_dir": "/srv/stp", "ae_title": " CLINIC "},
            "non_dicom": {
                "modalities": ["OT", "ES", "XC"],
                "default_modality": "ES",
                "video_format": "h264-high",
                "image_transfer_syntax": "jpeg-baseline",
                "charset": "ISO_IR 192",
                "additional_info_tag": "0020,4000",
                "additional_info_values": ["left", "right"],
                "additional_info_default": "left",
                "sop_class_rules": [STAR, {"name": "Scan", "uid": "1.2.4", "extensions": ["tif"]}],
            },
            "dicom": {
                "update_tags": [{"tag": "InstitutionName", "value": "{InstitutionName} (copy)"}]
            },
        }
    )
    assert s.main.temp_dir == Path("/srv/stp")
    assert s.main.ae_title == "CLINIC"
    assert s.non_dicom.modalities == ("OT", "ES", "XC")
    assert s.non_dicom.video_format is VideoFormat.H264_HIGH
    assert s.non_dicom.image_transfer_syntax is ImageTransferSyntax.JPEG_BASELINE
    assert s.non_dicom.additional_info_values == ("left", "right")
    assert s.non_dicom.sop_class_rules[1].conversion_type is ConversionType.WSD
    assert s.dicom.update_tags == (
        TagPattern(tag="InstitutionName", value="{InstitutionName} (copy)"),
    )


def test_to_dict_is_plain_json_data() -> None:
    data = Settings(main=MainSettings(temp_dir=Path("/srv/tmp"))).to_dict()
    assert data["main"]["temp_dir"] == "/srv/tmp"
    assert type(data["non_dicom"]["video_format"]) is str
    assert type(data["non_dicom"]["sop_class_rules"]) is list
    assert type(data["non_dicom"]["sop_class_rules"][0]["conversion_type"]) is str
    assert type(data["non_dicom"]["modalities"]) is list
    assert json.loads(json.dumps(data)) == data


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(b'\xef\xbb\xbf{"main": {"station_name": "R\xc3\xb6ntgen"}}')
    assert Settings.load(path).main.station_name == "Röntgen"


def test_converter_is_a_fresh_json_converter() -> None:
    converter = make_converter()
    assert converter is not cattrs.global_converter
    assert converter is not make_converter()
    assert converter.structure({"ae_title": "X"}, MainSettings) == MainSettings(ae_title="X")
    with pytest.raises(cattrs.BaseValidationError):
        converter.structure({"ae_title": "X", "typo": 1}, MainSettings)


# -- Hypothesis round trip ---------------------------------------------------------------------

AE_CHARACTERS = "".join(c for c in string.printable if c not in "\\\t\n\r\x0b\x0c")
ae_titles = st.text(alphabet=AE_CHARACTERS, min_size=1, max_size=16).filter(
    lambda text: text.strip(" ") != ""
)
modality_codes = st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True)
lo_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\"),
    max_size=64,
)
uids = st.lists(
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True)),
    min_size=2,
    max_size=8,
).map(".".join)
extensions = st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True)
keywords = st.sampled_from(
    ["Modality", "InstitutionName", "StudyDescription", "0008,0060", "(0020,4000)", "0009,1001"]
)
charsets = st.one_of(
    st.just("auto"),
    st.sampled_from(sorted(CHARSETS)),
    st.just("ISO 2022 IR 6\\ISO 2022 IR 87"),
    st.just("\\ISO 2022 IR 149"),
)
templates = st.lists(
    st.one_of(
        st.text(alphabet=string.ascii_letters + " -_", max_size=8),
        keywords.map(lambda k: "{" + k.strip("()") + "}"),
        st.sampled_from(["{{", "}}"]),
    ),
    max_size=4,
).map("".join)
tag_patterns = st.builds(
    TagPattern,
    tag=keywords,
    value=templates,
    only_if_empty=st.booleans(),
    create_if_missing=st.booleans(),
)


@st.composite
def sop_class_rule_sets(draw: st.DrawFn) -> tuple[SopClassRule, ...]:
    names = draw(
        st.lists(lo_texts.filter(str.strip), min_size=1, max_size=4, unique_by=str.casefold)
    )
    pool = draw(st.lists(extensions, min_size=len(names), max_size=12, unique=True))
    default_index = draw(st.integers(0, len(names) - 1))
    rules = []
    for index, name in enumerate(names):
        own = pool[index :: len(names)]
        exts = ("*", *own[1:]) if index == default_index else tuple(own)
        rules.append(
            SopClassRule(
                name=name,
                uid=draw(uids.filter(lambda u: len(u) <= 64)),
                extensions=exts,
                default=index == default_index,
                conversion_type=draw(st.sampled_from(ConversionType)),
                burned_in_annotation=draw(st.none() | st.booleans()),
            )
        )
    return tuple(rules)


@st.composite
def non_dicom_sections(draw: st.DrawFn) -> NonDicomSettings:
    modalities = draw(st.lists(modality_codes, min_size=1, max_size=5, unique=True))
    tag = draw(st.none() | keywords)
    values = draw(
        st.lists(lo_texts.filter(str.strip), max_size=4, unique_by=lambda v: v.strip().casefold())
        if tag
        else st.just([])
    )
    default = None
    if tag:
        default = draw(st.none() | (st.sampled_from(values) if values else lo_texts))
    return NonDicomSettings(
        modalities=tuple(modalities),
        default_modality=draw(st.sampled_from(modalities)),
        sop_class_rules=draw(sop_class_rule_sets()),
        video_format=draw(st.sampled_from(VideoFormat)),
        image_transfer_syntax=draw(st.sampled_from(ImageTransferSyntax)),
        jpeg_quality=draw(st.integers(1, 100)),
        charset=draw(charsets),
        additional_info_tag=tag,
        additional_info_values=tuple(values),
        additional_info_default=default,
        worklist_only=draw(st.booleans()),
        parse_file_name=draw(st.booleans()),
    )


whole_settings = st.builds(
    Settings,
    main=st.builds(
        MainSettings,
        institution_name=st.none() | lo_texts,
        station_name=st.none() | lo_texts.map(lambda t: t[:16]),
        ae_title=ae_titles,
        temp_dir=st.none()
        | st.lists(st.from_regex(r"[A-Za-z0-9_ .-]{1,8}", fullmatch=True), max_size=3).map(
            lambda parts: Path("/", *parts)
        ),
        clean_temp_on_exit=st.booleans(),
        clean_unused_temp=st.booleans(),
        clean_sent_files_from_list=st.booleans(),
    ),
    non_dicom=non_dicom_sections(),
    dicom=st.builds(
        DicomSettings,
        update_tags=st.lists(tag_patterns, max_size=3).map(tuple),
        replace_with_worklist=st.booleans(),
        parse_dicom_for_worklist=st.booleans(),
    ),
)


@given(whole_settings)
@settings(max_examples=60)
def test_any_settings_round_trip_through_json(s: Settings) -> None:
    text = json.dumps(s.to_dict(), indent=2, ensure_ascii=False)
    assert Settings.from_dict(json.loads(text)) == s


@given(whole_settings)
@settings(max_examples=20)
def test_any_settings_round_trip_through_a_file(s: Settings) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.json"
        s.dump(path)
        assert Settings.load(path) == s


# -- errors: the examples of the brief ---------------------------------------------------------


def test_invalid_value_names_key_path_value_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"main": {"ae_title": "XXXXXXXXXXXXXXXXXXXX"}}', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.load(path)
    expected = (
        "invalid value 'XXXXXXXXXXXXXXXXXXXX' @ $.main.ae_title: "
        "20 characters; at most 16 are allowed"
    )
    assert caught.value.message == expected
    assert caught.value.path == path
    assert str(caught.value) == f"{path}: {expected}"


def test_unknown_key_names_the_object_and_suggests_the_key() -> None:
    error = config_error({"main": {"ae_titel": "CLINIC"}})
    assert error.message == "unknown key 'ae_titel' @ $.main (did you mean 'ae_title'?)"
    assert error.path is None
    assert str(error) == error.message


def test_wrong_type_names_what_was_expected_and_found() -> None:
    error = config_error({"non_dicom": {"jpeg_quality": "high"}})
    assert error.message == 'expected int @ $.non_dicom.jpeg_quality (found "high")'


# -- errors: unknown keys at every level -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"mian": {}}, "unknown key 'mian' @ $ (did you mean 'main'?)"),
        ({"colour": []}, "unknown key 'colour' @ $"),
        ({"main": {"aetitle": "X"}}, "unknown key 'aetitle' @ $.main (did you mean 'ae_title'?)"),
        (
            {"non_dicom": {"modality": ["OT"]}},
            "unknown key 'modality' @ $.non_dicom (did you mean 'modalities'?)",
        ),
        (
            {"dicom": {"update_tag": []}},
            "unknown key 'update_tag' @ $.dicom (did you mean 'update_tags'?)",
        ),
        (
            {"non_dicom": {"sop_class_rules": [STAR, {**rule("P", ("pdf",)), "dflt": True}]}},
            "unknown key 'dflt' @ $.non_dicom.sop_class_rules[1] (did you mean 'default'?)",
        ),
        (
            {"dicom": {"update_tags": [{"tag": "Modality", "value": "OT", "only_if_emtpy": True}]}},
            "unknown key 'only_if_emtpy' @ $.dicom.update_tags[0] (did you mean 'only_if_empty'?)",
        ),
    ],
)
def test_unknown_keys_are_errors_at_every_level(data: dict[str, Any], line: str) -> None:
    assert lines_of(config_error(data)) == [line]


def test_several_unknown_keys_give_one_line_each() -> None:
    assert lines_of(config_error({"main": {"b": 1, "a": 2}})) == [
        "unknown key 'a' @ $.main",
        "unknown key 'b' @ $.main",
    ]


# -- errors: wrong JSON types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"main": {"ae_title": 104}}, "expected str @ $.main.ae_title (found 104)"),
        ({"main": {"ae_title": None}}, "expected str @ $.main.ae_title (found null)"),
        ({"main": {"station_name": ["A"]}}, 'expected str @ $.main.station_name (found ["A"])'),
        (
            {"main": {"clean_temp_on_exit": "false"}},
            'expected bool (true or false) @ $.main.clean_temp_on_exit (found "false")',
        ),
        (
            {"main": {"clean_unused_temp": 1}},
            "expected bool (true or false) @ $.main.clean_unused_temp (found 1)",
        ),
        (
            {"non_dicom": {"jpeg_quality": True}},
            "expected int @ $.non_dicom.jpeg_quality (found true)",
        ),
        (
            {"non_dicom": {"jpeg_quality": 90.0}},
            "expected int @ $.non_dicom.jpeg_quality (found 90.0)",
        ),
        (
            {"non_dicom": {"jpeg_quality": "90"}},
            'expected int @ $.non_dicom.jpeg_quality (found "90")',
        ),
        (
            {"non_dicom": {"modalities": "OT"}},
            'expected a list @ $.non_dicom.modalities (found "OT")',
        ),
        (
            {"non_dicom": {"modalities": ["OT", 5]}},
            "expected str @ $.non_dicom.modalities[1] (found 5)",
        ),
        (
            {"non_dicom": {"video_format": "h265"}},
            "expected one of auto, mpeg2-main, mpeg2-high, h264-high, h264-bd"
            ' @ $.non_dicom.video_format (found "h265")',
        ),
        (
            {"non_dicom": {"image_transfer_syntax": "JPEG"}},
            "expected one of auto, explicit-le, jpeg-baseline"
            ' @ $.non_dicom.image_transfer_syntax (found "JPEG")',
        ),
        (
            {"non_dicom": {"sop_class_rules": [{**STAR, "conversion_type": "wsd"}]}},
            "expected one of DV, DI, DF, WSD, SD, SI, DRW, SYN"
            ' @ $.non_dicom.sop_class_rules[0].conversion_type (found "wsd")',
        ),
        (
            {"non_dicom": {"sop_class_rules": [{**STAR, "extensions": "*"}]}},
            'expected a list @ $.non_dicom.sop_class_rules[0].extensions (found "*")',
        ),
        (
            {"non_dicom": {"sop_class_rules": [{**STAR, "burned_in_annotation": "NO"}]}},
            "expected bool (true or false) @ $.non_dicom.sop_class_rules[0].burned_in_annotation"
            ' (found "NO")',
        ),
        (
            {"non_dicom": {"sop_class_rules": {"All": STAR}}},
            'expected a list @ $.non_dicom.sop_class_rules (found {"All": ',
        ),
        (
            {"non_dicom": {"sop_class_rules": ["Secondary Capture"]}},
            'expected an object @ $.non_dicom.sop_class_rules[0] (found "Secondary Capture")',
        ),
        (
            {"main": {"temp_dir": 5}},
            "expected a path as a non-empty string @ $.main.temp_dir (found 5)",
        ),
        (
            {"main": {"temp_dir": ""}},
            'expected a path as a non-empty string @ $.main.temp_dir (found "")',
        ),
        ({"main": None}, "expected an object @ $.main (found null)"),
        ({"dicom": []}, "expected an object @ $.dicom (found [])"),
        ([], "expected an object @ $ (found [])"),
        ("settings", 'expected an object @ $ (found "settings")'),
    ],
)
def test_wrong_types_name_the_key_path_and_what_was_found(data: Any, line: str) -> None:
    lines = lines_of(config_error(data))
    assert len(lines) == 1
    assert lines[0].startswith(line)


def test_long_found_values_are_shortened() -> None:
    (line,) = lines_of(config_error({"main": {"ae_title": list(range(100))}}))
    assert line.startswith("expected str @ $.main.ae_title (found [0, 1, 2")
    assert line.endswith("...)")
    assert len(line) < 140


# -- errors: validators, inside attrs __init__ -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"main": {"ae_title": "A\\B"}}, r"invalid value 'A\\B' @ $.main.ae_title: a backslash"),
        (
            {"main": {"ae_title": "   "}},
            "invalid value '' @ $.main.ae_title: an AE title cannot be empty",
        ),
        ({"main": {"ae_title": "PÄCS"}}, "invalid value 'PÄCS' @ $.main.ae_title: only ASCII"),
        (
            {"main": {"station_name": "Röntgen Raum 12 Nord"}},
            "invalid value 'Röntgen Raum 12 Nord' @ $.main.station_name: 20 characters; at most 16",
        ),
        (
            {"main": {"institution_name": "Clinic\nNorth"}},
            "invalid value 'Clinic\\nNorth' @ $.main.institution_name: control characters",
        ),
        (
            {"main": {"temp_dir": "tmp/stp"}},
            "invalid value 'tmp/stp' @ $.main.temp_dir: expected an absolute folder path",
        ),
        (
            {"non_dicom": {"modalities": []}},
            "invalid value [] @ $.non_dicom.modalities: at least one modality",
        ),
        (
            {"non_dicom": {"modalities": ["OT", "es"]}},
            "invalid value 'es' @ $.non_dicom.modalities[1]: only upper-case letters",
        ),
        (
            {"non_dicom": {"modalities": ["OT", " "]}},
            "invalid value '' @ $.non_dicom.modalities[1]: a modality cannot be empty",
        ),
        (
            {"non_dicom": {"modalities": ["OT", "XC", "OT"]}},
            "invalid value 'OT' @ $.non_dicom.modalities[2]: listed twice (also modalities[0])",
        ),
        (
            {"non_dicom": {"modalities": ["OT", "ES"], "default_modality": "XC"}},
            "invalid value 'XC' @ $.non_dicom.default_modality: "
            "must be one of the modalities (OT, ES)",
        ),
        (
            {"non_dicom": {"jpeg_quality": 0}},
            "invalid value 0 @ $.non_dicom.jpeg_quality: expected a whole number from 1 to 100",
        ),
        (
            {"non_dicom": {"jpeg_quality": 101}},
            "invalid value 101 @ $.non_dicom.jpeg_quality: expected a whole number from 1 to 100",
        ),
        (
            {"non_dicom": {"charset": "UTF-8"}},
            "invalid value 'UTF-8' @ $.non_dicom.charset: 'UTF-8' is not a defined term",
        ),
        (
            {"non_dicom": {"charset": "ISO_IR 100\\ISO_IR 192"}},
            r"invalid value 'ISO_IR 100\\ISO_IR 192' @ $.non_dicom.charset: several values",
        ),
        (
            {"non_dicom": {"additional_info_tag": "Coment"}},
            "invalid value 'Coment' @ $.non_dicom.additional_info_tag: not a DICOM keyword",
        ),
        (
            {"non_dicom": {"additional_info_tag": "0008,9999"}},
            "invalid value '0008,9999' @ $.non_dicom.additional_info_tag: not a tag of the DICOM",
        ),
        (
            {
                "non_dicom": {
                    "additional_info_tag": "0020,4000",
                    "additional_info_values": ["left", "right"],
                    "additional_info_default": "both",
                }
            },
            "invalid value 'both' @ $.non_dicom.additional_info_default: must be one of "
            "additional_info_values",
        ),
        (
            {"non_dicom": {"additional_info_values": ["left"]}},
            "invalid value null @ $.non_dicom.additional_info_tag: a tag is needed when "
            "additional_info_values or additional_info_default is set",
        ),
        (
            {"non_dicom": {"additional_info_default": "note"}},
            "invalid value null @ $.non_dicom.additional_info_tag: a tag is needed",
        ),
        (
            {
                "non_dicom": {
                    "additional_info_tag": "Modality",
                    "additional_info_values": ["a", "A"],
                }
            },
            "invalid value 'A' @ $.non_dicom.additional_info_values[1]: listed twice",
        ),
        (
            {"non_dicom": {"additional_info_tag": "Modality", "additional_info_values": ["a", ""]}},
            "invalid value '' @ $.non_dicom.additional_info_values[1]: a value cannot be empty",
        ),
    ],
)
def test_invalid_values_name_the_key_path_and_value(data: dict[str, Any], line: str) -> None:
    (only,) = lines_of(config_error(data))
    assert only.startswith(line)


@pytest.mark.parametrize(
    ("rules", "line"),
    [
        ([], "invalid value [] @ $.non_dicom.sop_class_rules: at least one rule"),
        (
            [rule("All", ("*",)), rule("PDF", ("pdf",))],
            "invalid value ['All', 'PDF'] @ $.non_dicom.sop_class_rules: no rule is the default",
        ),
        (
            [STAR, rule("Other", ("*",), default=True)],
            "invalid value true @ $.non_dicom.sop_class_rules[1].default: only one rule can be the "
            "default (sop_class_rules[0] is)",
        ),
        (
            [STAR, rule("PDF", ("pdf",)), rule("pdf", ("pdfa",))],
            "invalid value 'pdf' @ $.non_dicom.sop_class_rules[2].name: rule names must be unique "
            "(also sop_class_rules[1])",
        ),
        (
            [STAR, rule("PDF", ("pdf",)), rule("Docs", ("doc", "PDF"))],
            "invalid value 'pdf' @ $.non_dicom.sop_class_rules[2].extensions: already named by "
            "sop_class_rules[1] (PDF)",
        ),
        (
            [STAR, rule("Unused", ("*",))],
            "invalid value '*' @ $.non_dicom.sop_class_rules[1].extensions: already named by "
            "sop_class_rules[0] (All)",
        ),
        (
            [rule("PDF", ("pdf",), default=True)],
            "invalid value true @ $.non_dicom.sop_class_rules[0].default: "
            "only a rule for all files ('*') can be the default (rule 'PDF' names pdf)",
        ),
        (
            [{**STAR, "uid": "1.2.840.10008.5.1.4.1.1.07"}],
            "invalid value '1.2.840.10008.5.1.4.1.1.07' @ $.non_dicom.sop_class_rules[0].uid: "
            "expected digits separated by dots, without leading zeros",
        ),
        (
            [{**STAR, "name": " "}],
            "invalid value '' @ $.non_dicom.sop_class_rules[0].name: a rule needs a name",
        ),
        (
            [{**STAR, "extensions": []}],
            "invalid value [] @ $.non_dicom.sop_class_rules[0].extensions: at least one extension",
        ),
        (
            [STAR, {**rule("Archive", ("tar.gz",))}],
            "invalid value 'tar.gz' @ $.non_dicom.sop_class_rules[1].extensions: an extension is",
        ),
        (
            [STAR, {"name": "No UID", "extensions": ["x"]}],
            "missing key 'uid' @ $.non_dicom.sop_class_rules[1]",
        ),
    ],
)
def test_sop_class_rule_problems_name_the_rule(rules: list[Any], line: str) -> None:
    (only,) = lines_of(config_error({"non_dicom": {"sop_class_rules": rules}}))
    assert only.startswith(line)


@pytest.mark.parametrize(
    ("pattern", "line"),
    [
        (
            {"tag": "Modalty", "value": "OT"},
            "invalid value 'Modalty' @ $.dicom.update_tags[0].tag: not a DICOM keyword",
        ),
        (
            {"tag": "Modality", "value": "{Modality - test"},
            "invalid value '{Modality - test' @ $.dicom.update_tags[0].value: "
            "a '{' without its '}'",
        ),
        (
            {"tag": "Modality", "value": "Modality} - test"},
            "invalid value 'Modality} - test' @ $.dicom.update_tags[0].value: "
            "a '}' without its '{'",
        ),
        (
            {"tag": "Modality", "value": "{Modalty} - test"},
            "invalid value 'Modalty' @ $.dicom.update_tags[0].value: not a DICOM keyword",
        ),
        ({"value": "OT"}, "missing key 'tag' @ $.dicom.update_tags[0]"),
        (
            {"tag": "Modality", "value": "OT", "create_if_missing": "yes"},
            "expected bool (true or false) @ $.dicom.update_tags[0].create_if_missing",
        ),
    ],
)
def test_tag_pattern_problems_name_the_pattern(pattern: dict[str, Any], line: str) -> None:
    (only,) = lines_of(config_error({"dicom": {"update_tags": [pattern]}}))
    assert only.startswith(line)


def test_every_invalid_field_of_one_object_is_reported() -> None:
    error = config_error(
        {"main": {"ae_title": "X" * 20, "station_name": "Y" * 17, "institution_name": "a\\b"}}
    )
    assert error.message.startswith("3 problems:\n")
    assert lines_of(error) == [
        "invalid value 'a\\\\b' @ $.main.institution_name: a backslash is not allowed "
        "(it separates values)",
        "invalid value 'YYYYYYYYYYYYYYYYY' @ $.main.station_name: 17 characters; "
        "at most 16 are allowed",
        "invalid value 'XXXXXXXXXXXXXXXXXXXX' @ $.main.ae_title: 20 characters; "
        "at most 16 are allowed",
    ]


def test_type_errors_unknown_keys_and_invalid_values_are_reported_together() -> None:
    error = config_error(
        {
            "main": {"ae_title": "A\\B", "ae_titel": "X"},
            "non_dicom": {
                "jpeg_quality": "high",
                "modalities": ["OT", "es"],
                "sop_class_rules": [STAR, rule("PDF", ("pdf",), default=True)],
            },
            "dicom": {"update_tags": [{"tag": "Nope", "value": "{"}, {"tag": 5, "value": "x"}]},
            "apis": {},
        }
    )
    assert sorted(lines_of(error)) == sorted(
        [
            "invalid value 'A\\\\B' @ $.main.ae_title: a backslash is not allowed "
            "(it separates values)",
            "unknown key 'ae_titel' @ $.main (did you mean 'ae_title'?)",
            'expected int @ $.non_dicom.jpeg_quality (found "high")',
            "invalid value 'es' @ $.non_dicom.modalities[1]: only upper-case letters, digits, "
            "space and underscore are allowed",
            "invalid value true @ $.non_dicom.sop_class_rules[1].default: only a rule for all "
            "files ('*') can be the default (rule 'PDF' names pdf)",
            "invalid value 'Nope' @ $.dicom.update_tags[0].tag: not a DICOM keyword (e.g. "
            "Modality) or tag number (e.g. 0008,0060)",
            "invalid value '{' @ $.dicom.update_tags[0].value: a '{' without its '}'",
            "expected str @ $.dicom.update_tags[1].tag (found 5)",
            "unknown key 'apis' @ $ (did you mean 'api'?)",
        ]
    )
    assert error.message.startswith("9 problems:\n")


def test_a_check_across_fields_is_skipped_when_its_neighbour_is_wrongly_typed() -> None:
    # modalities cannot be read, so whether "XC" is one of them is unknown: no second line
    error = config_error({"non_dicom": {"modalities": "XC", "default_modality": "XC"}})
    assert lines_of(error) == ['expected a list @ $.non_dicom.modalities (found "XC")']


def test_config_error_is_raised_from_the_cattrs_error() -> None:
    error = config_error({"main": {"ae_title": "X" * 20}})
    assert isinstance(error.__cause__, cattrs.BaseValidationError)


# -- errors: reading the file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{\n  "main": {\n    "ae_title": "A"\n    "station_name": "B"\n  }\n}',
            "line 4, column 5",
        ),
        ('{"main": {"ae_title": "A",}}', "line 1, column 27"),
        ("{'main': {}}", "line 1, column 2: Expecting property name enclosed in double quotes"),
        ('{"main": {}} x', "line 1, column 14: Extra data"),
    ],
)
def test_invalid_json_gives_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"invalid JSON at {message}")) as caught:
        Settings.load(path)
    assert caught.value.path == path
    assert str(caught.value).startswith(str(path))


def test_an_empty_file_is_an_error_not_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=re.escape("the file is empty (write {} for the defaults)")
    ):
        Settings.load(path)


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes('{"main": {"station_name": "Röntgen"}}'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 28 is b'\\xf6'\)"):
        Settings.load(path)


def test_a_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"main": {"ae_title": "A", "ae_title": "B"}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'ae_title'"):
        Settings.load(path)


def test_absurdly_nested_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"main": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON: nested too deeply"):
        Settings.load(path)


def test_invisible_characters_in_found_values_are_escaped() -> None:
    (line,) = lines_of(config_error({"main": {"ae_title": ["a\u2028b\x85"]}}))
    assert line == 'expected str @ $.main.ae_title (found ["a\\u2028b\\u0085"])'


def test_an_unreadable_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the settings file") as caught:
        Settings.load(tmp_path)  # a folder
    assert caught.value.path == tmp_path
    blocker = tmp_path / "file"
    blocker.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the settings file"):
        Settings.load(blocker / "settings.json")  # a file where a folder should be


def test_load_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"non_dicom": {"modalities": ["OT", "xc"]}}', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: invalid value 'xc' @ $.non_dicom.modalities[1]")
    ):
        Settings.load(path)


# -- sections built in Python ------------------------------------------------------------------


def test_sections_normalise_and_validate_python_values() -> None:
    non_dicom = NonDicomSettings(
        modalities=[" OT ", "XC"],
        default_modality=" XC",
        video_format="mpeg2-main",
    )
    assert non_dicom.modalities == ("OT", "XC")
    assert non_dicom.default_modality == "XC"
    assert non_dicom.video_format is VideoFormat.MPEG2_MAIN
    main = MainSettings(temp_dir="/srv/stp", institution_name="  ", station_name=" R1 ")
    assert main.temp_dir == Path("/srv/stp")
    assert main.institution_name is None
    assert main.station_name == "R1"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MainSettings(ae_title="A" * 17), r"invalid ae_title 'A{17}': 17 characters"),
        (
            lambda: MainSettings(clean_temp_on_exit=1),  # type: ignore[arg-type]
            "'clean_temp_on_exit' must be <class 'bool'>",
        ),
        (lambda: NonDicomSettings(modalities="OT"), r"invalid modalities 'OT': expected a list"),
        (lambda: NonDicomSettings(jpeg_quality=True), "invalid jpeg_quality True"),
        (lambda: NonDicomSettings(video_format="h265"), "'h265' is not a valid VideoFormat"),
        (lambda: NonDicomSettings(sop_class_rules=()), "at least one rule"),
        (lambda: DicomSettings(update_tags=("Modality",)), "expected a TagPattern"),
        (lambda: Settings(main=NonDicomSettings()), "'main' must be <class"),  # type: ignore[arg-type]
    ],
)
def test_sections_reject_invalid_python_values(build: Any, message: str) -> None:
    with pytest.raises((InvalidValueError, TypeError, ValueError), match=message):
        build()


def test_settings_are_changed_with_evolve() -> None:
    s = Settings()
    changed = attrs.evolve(s, non_dicom=attrs.evolve(s.non_dicom, modalities=("OT", "ES")))
    assert changed.non_dicom.modalities == ("OT", "ES")
    with pytest.raises(InvalidValueError, match="default_modality"):
        attrs.evolve(s.non_dicom, modalities=("ES",))


# -- explain -----------------------------------------------------------------------------------


def _example_with_every_key() -> Settings:
    return Settings(
        dicom=DicomSettings(update_tags=(TagPattern(tag="Modality", value="OT"),)),
        devices=(Device(name="pacs", ae_title="PACS", host="127.0.0.1", port=104),),
        worklist_devices=(WorklistDevice(name="mwl", ae_title="MWL", host="127.0.0.1", port=1),),
        monitors=(
            MonitorRule(
                name="endo",
                directory=Path("/srv/endo"),
                update_tags=(TagPattern(tag="InstitutionName", value="Endo"),),
                study=Study(procedure_codes=(Code(value="X", scheme="99LOCAL", meaning="X"),)),
            ),
            MonitorRule(name="plain", directory=Path("/srv/plain")),  # the empty lists
        ),
    )


def test_explain_gives_every_leaf_key_with_value_and_description() -> None:
    rows = Settings().explain()
    assert all(isinstance(row, SettingExplanation) for row in rows)
    keys = [row.key_path for row in rows]
    assert keys[:3] == ["main.institution_name", "main.station_name", "main.ae_title"]
    assert "non_dicom.sop_class_rules[1].uid" in keys
    assert "dicom.update_tags" in keys
    assert all(row.description for row in rows), [
        row.key_path for row in rows if not row.description
    ]
    values = {row.key_path: row.value for row in rows}
    assert values["main.ae_title"] == '"SENDTOPACS"'
    assert values["non_dicom.sop_class_rules[1].extensions"] == '["pdf"]'
    assert values["dicom.update_tags"] == "[]"
    assert values["main.temp_dir"] == "null"


def test_explain_shows_current_values() -> None:
    s = Settings.from_dict({"main": {"ae_title": "CLINIC", "institution_name": "Süd"}})
    values = {key: value for key, value, _ in s.explain()}
    assert values["main.ae_title"] == '"CLINIC"'
    assert values["main.institution_name"] == '"Süd"'


def test_every_description_belongs_to_a_key_and_every_key_has_one() -> None:
    rows = _example_with_every_key().explain() + Settings().explain()
    described = {re.sub(r"\[\d+\]", "[]", row.key_path) for row in rows}
    assert described == set(DESCRIPTIONS)
    assert all(len(text) <= 110 and "\n" not in text for text in DESCRIPTIONS.values())


# -- any JSON anywhere -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path of a JSON document, inner nodes included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@given(st.data())
@settings(max_examples=300)
def test_any_json_value_anywhere_gives_settings_or_a_located_config_error(
    data: st.DataObject,
) -> None:
    document: Any = Settings().to_dict()
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    value = data.draw(json_values)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    try:
        Settings.from_dict(document)
    except ConfigError as exc:
        lines = lines_of(exc)
        assert lines
        assert all(" @ $" in line for line in lines), lines
