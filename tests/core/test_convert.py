"""The Converter against real validators: every object passes dciodvfy and dcmdump."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.encaps import generate_frames
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
)

from sendtopacs_core import (
    ConversionError,
    CorruptMediaError,
    ImageTransferSyntax,
    Settings,
    SopClassRule,
    Study,
    TagPattern,
    UnsupportedMediaError,
)
from sendtopacs_core.convert import ConversionAction, Converter
from sendtopacs_core.media.jpeg import parse_jpeg
from tests import _corpus

NOW = dt.datetime(2026, 11, 27, 10, 30, 0, tzinfo=dt.UTC)
STUDY = Study(
    patient_id="PID-0001",
    patient_name="Test^Patient",
    patient_birth_date="19800101",
    patient_sex="F",
    accession_number="ACC42",
    study_description="Wound photo",
)


def converter(settings: Settings | None = None) -> Converter:
    return Converter(settings, clock=lambda: NOW)


def with_non_dicom(**changes: Any) -> Settings:
    import attrs

    base = Settings()
    return attrs.evolve(base, non_dicom=attrs.evolve(base.non_dicom, **changes))


def scan_data(jpeg: bytes) -> bytes:
    """The bytes from the first SOS marker to EOI: the entropy-coded data and its header."""
    start = jpeg.index(b"\xff\xda")
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[start : end + 2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _corpus.make_corpus(tmp_path_factory.mktemp("corpus"))


def test_every_input_kind_converts_and_validates(
    corpus: dict[str, Path],
    tmp_path: Path,
    dciodvfy: Callable[[Path], Any],
    dcmdump: Callable[[Path], str],
) -> None:
    paths = list(corpus.values())
    report = converter().convert(paths, STUDY, out_dir=tmp_path)
    assert report.failures == ()
    # the 3-page TIFF gives 3 objects; every other input one
    assert len(report.files) == len(paths) + 2
    for item in report:
        result = dciodvfy(item.path)
        assert result.errors == [], f"{item.source.name}: {result.output}"
        assert "SOPInstanceUID" in dcmdump(item.path)
        ds = pydicom.dcmread(item.path)
        assert ds.SOPInstanceUID == item.sop_instance_uid
        assert ds.file_meta.MediaStorageSOPInstanceUID == item.sop_instance_uid
        assert ds.PatientID == "PID-0001"
        assert ds.StudyInstanceUID == report.study_instance_uid


def test_baseline_jpeg_passes_through_with_identical_scan_data(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    for name, photometric in (
        ("baseline.jpg", "YBR_FULL_422"),
        ("baseline444.jpg", "YBR_FULL_422"),
        ("grey.jpg", "MONOCHROME2"),
    ):
        (item,) = converter().convert([corpus[name]], STUDY, out_dir=tmp_path)
        assert item.action is ConversionAction.PASSED_THROUGH
        assert item.transfer_syntax_uid == JPEGBaseline8Bit
        ds = pydicom.dcmread(item.path)
        assert ds.PhotometricInterpretation == photometric
        (fragment,) = generate_frames(ds.PixelData, number_of_frames=1)
        source = corpus[name].read_bytes()
        assert scan_data(fragment) == scan_data(source)
        assert b"JFIF" not in fragment[:64]
        assert parse_jpeg(fragment).sof == 0
        assert ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == "ISO_10918_1"
        raw = ds.Rows * ds.Columns * ds.SamplesPerPixel
        assert float(ds.LossyImageCompressionRatio) == pytest.approx(raw / len(fragment), 0.01)
        with Image.open(corpus[name]) as source_image, Image.open(io.BytesIO(fragment)) as stored:
            expected = np.asarray(source_image)
            assert np.array_equal(np.asarray(stored), expected)
        # pydicom decodes with another JPEG library (its own upsampling and colour conversion)
        difference = np.abs(ds.pixel_array.astype(int) - expected.astype(int))
        assert difference.max() <= 8
        assert difference.mean() < 0.5


@pytest.mark.parametrize(
    ("name", "mode", "lossy"),
    [
        ("grey8.png", "L", "00"),
        ("rgb.png", "RGB", "00"),
        ("image.bmp", "RGB", "00"),
        ("lossless.webp", "RGB", "00"),
        ("progressive.jpg", "RGB", "01"),
        ("cmyk.jpg", "RGB", "01"),
        ("lossy.webp", "RGB", "01"),
    ],
)
def test_lossless_paths_store_pillows_pixels(
    corpus: dict[str, Path], tmp_path: Path, name: str, mode: str, lossy: str
) -> None:
    (item,) = converter().convert([corpus[name]], STUDY, out_dir=tmp_path)
    assert item.action is ConversionAction.DECODED
    assert item.transfer_syntax_uid == ExplicitVRLittleEndian
    ds = pydicom.dcmread(item.path)
    with Image.open(corpus[name]) as source:
        expected = np.asarray(source.convert(mode))
    assert np.array_equal(ds.pixel_array, expected)
    assert ds.LossyImageCompression == lossy


def test_16_bit_grey_png_keeps_its_depth(corpus: dict[str, Path], tmp_path: Path) -> None:
    (item,) = converter().convert([corpus["grey16.png"]], STUDY, out_dir=tmp_path)
    ds = pydicom.dcmread(item.path)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 16, 15)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds["PixelData"].VR == "OW"
    assert np.array_equal(ds.pixel_array, np.asarray(_corpus.grey16()))


def test_exif_rotated_jpeg_is_stored_upright(corpus: dict[str, Path], tmp_path: Path) -> None:
    (item,) = converter().convert([corpus["exif6.jpg"]], STUDY, out_dir=tmp_path)
    assert item.action is ConversionAction.DECODED
    ds = pydicom.dcmread(item.path)
    with Image.open(corpus["exif6.jpg"]) as source:
        upright = ImageOps.exif_transpose(source)
        assert source.size == (40, 24)
        expected = np.asarray(upright.convert("RGB"))
    assert (ds.Rows, ds.Columns) == (40, 24)
    assert np.array_equal(ds.pixel_array, expected)
    assert ds.LossyImageCompression == "01"


def test_rgba_is_flattened_onto_white(corpus: dict[str, Path], tmp_path: Path) -> None:
    (item,) = converter().convert([corpus["rgba.png"]], STUDY, out_dir=tmp_path)
    ds = pydicom.dcmread(item.path)
    with Image.open(corpus["rgba.png"]) as source:
        white = Image.new("RGBA", source.size, (255, 255, 255, 255))
        expected = np.asarray(Image.alpha_composite(white, source.convert("RGBA")).convert("RGB"))
    assert ds.SamplesPerPixel == 3
    assert np.array_equal(ds.pixel_array, expected)


def test_multi_page_tiff_gives_one_instance_per_page(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    report = converter().convert([corpus["pages.tiff"]], STUDY, out_dir=tmp_path)
    assert [item.page for item in report] == [0, 1, 2]
    numbers = [pydicom.dcmread(item.path).InstanceNumber for item in report]
    assert numbers == [1, 2, 3]
    assert len({item.sop_instance_uid for item in report}) == 3
    assert len({item.series_instance_uid for item in report}) == 1


def test_explicit_le_setting_decodes_baseline_jpeg(corpus: dict[str, Path], tmp_path: Path) -> None:
    settings = with_non_dicom(image_transfer_syntax=ImageTransferSyntax.EXPLICIT_LE)
    (item,) = converter(settings).convert([corpus["baseline.jpg"]], STUDY, out_dir=tmp_path)
    assert item.transfer_syntax_uid == ExplicitVRLittleEndian
    ds = pydicom.dcmread(item.path)
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"


def test_jpeg_baseline_setting_encodes_png(
    corpus: dict[str, Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    settings = with_non_dicom(
        image_transfer_syntax=ImageTransferSyntax.JPEG_BASELINE, jpeg_quality=80
    )
    report = converter(settings).convert(
        [corpus["rgb.png"], corpus["baseline.jpg"], corpus["grey16.png"]], STUDY, out_dir=tmp_path
    )
    png, jpeg, grey16 = report.files
    assert png.action is ConversionAction.ENCODED
    assert png.transfer_syntax_uid == JPEGBaseline8Bit
    assert jpeg.action is ConversionAction.PASSED_THROUGH
    assert grey16.transfer_syntax_uid == ExplicitVRLittleEndian
    assert any("16-bit" in w for w in grey16.warnings)
    ds = pydicom.dcmread(png.path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.LossyImageCompression == "01"
    for item in report:
        assert dciodvfy(item.path).errors == []


def test_pdf_is_encapsulated_with_title(corpus: dict[str, Path], tmp_path: Path) -> None:
    report = converter().convert(
        [corpus["report.pdf"], corpus["untitled.pdf"]], STUDY, out_dir=tmp_path
    )
    titled, untitled = report.files
    assert titled.action is ConversionAction.ENCAPSULATED
    assert titled.sop_class_uid == EncapsulatedPDFStorage
    ds = pydicom.dcmread(titled.path)
    assert ds.DocumentTitle == "Befund Müller"
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    source = corpus["report.pdf"].read_bytes()
    assert ds.EncapsulatedDocumentLength == len(source)
    assert ds.EncapsulatedDocument[: len(source)] == source
    assert pydicom.dcmread(untitled.path).DocumentTitle == "untitled"
    assert titled.series_instance_uid == untitled.series_instance_uid
    assert [pydicom.dcmread(i.path).InstanceNumber for i in report] == [1, 2]


def test_images_and_pdfs_share_the_study_in_separate_series(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    report = converter().convert(
        [corpus["rgb.png"], corpus["report.pdf"], corpus["baseline.jpg"]], STUDY, out_dir=tmp_path
    )
    png, pdf, jpeg = report.files
    assert len({png.study_instance_uid, pdf.study_instance_uid, jpeg.study_instance_uid}) == 1
    assert png.series_instance_uid == jpeg.series_instance_uid != pdf.series_instance_uid
    assert [pydicom.dcmread(i.path).InstanceNumber for i in (png, jpeg)] == [1, 2]


def test_uids_are_deterministic(corpus: dict[str, Path], tmp_path: Path) -> None:
    inputs = [corpus["rgb.png"], corpus["report.pdf"], corpus["pages.tiff"]]
    first = converter().convert(inputs, STUDY, out_dir=tmp_path / "a")
    later_that_day = Converter(clock=lambda: NOW + dt.timedelta(hours=9)).convert(
        inputs, STUDY, out_dir=tmp_path / "b"
    )
    assert [f.sop_instance_uid for f in first] == [f.sop_instance_uid for f in later_that_day]
    assert first.study_instance_uid == later_that_day.study_instance_uid
    # Three days later the objects are new ones (their dates differ), in the same study: the
    # accession number identifies it.
    days_later = Converter(clock=lambda: NOW + dt.timedelta(days=3)).convert(
        inputs, STUDY, out_dir=tmp_path / "c"
    )
    assert days_later.study_instance_uid == first.study_instance_uid
    assert not {f.sop_instance_uid for f in days_later} & {f.sop_instance_uid for f in first}
    other = converter().convert(inputs, Study(patient_id="SOMEONE-ELSE"), out_dir=tmp_path / "d")
    assert other.study_instance_uid != first.study_instance_uid
    assert not {f.sop_instance_uid for f in other} & {f.sop_instance_uid for f in first}


def test_given_study_uid_is_used(corpus: dict[str, Path], tmp_path: Path) -> None:
    study = Study(study_instance_uid="1.2.826.0.1.3680043.10.1.42")
    (item,) = converter().convert([corpus["rgb.png"]], study, out_dir=tmp_path)
    assert pydicom.dcmread(item.path).StudyInstanceUID == "1.2.826.0.1.3680043.10.1.42"


def test_same_content_twice_is_converted_once(corpus: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy.png"
    copy.write_bytes(corpus["rgb.png"].read_bytes())
    report = converter().convert([corpus["rgb.png"], copy], STUDY, out_dir=tmp_path / "out")
    first, second = report.files
    assert first.sop_instance_uid == second.sop_instance_uid
    assert first.path == second.path
    assert any("same content" in w for w in second.warnings)
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_settings_and_patterns_are_applied(
    corpus: dict[str, Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    import attrs

    base = Settings()
    settings = attrs.evolve(
        base,
        main=attrs.evolve(base.main, institution_name="Klinik Süd", station_name="CAPTURE1"),
        non_dicom=attrs.evolve(
            base.non_dicom,
            modalities=("OT", "XC"),
            default_modality="XC",
            additional_info_tag="0020,4000",
            additional_info_values=("left", "right"),
            additional_info_default="left",
        ),
        dicom=attrs.evolve(
            base.dicom,
            update_tags=(
                TagPattern(
                    tag="SeriesDescription", value="{Modality} - test", create_if_missing=True
                ),
                TagPattern(tag="0008,1030", value="never", only_if_empty=True),
                TagPattern(tag="OperatorsName", value="nobody"),
            ),
        ),
    )
    (item,) = converter(settings).convert([corpus["rgb.png"]], STUDY, out_dir=tmp_path)
    ds = pydicom.dcmread(item.path)
    assert ds.InstitutionName == "Klinik Süd"
    assert ds.StationName == "CAPTURE1"
    assert ds.Modality == "XC"
    assert ds.ImageComments == "left"
    assert ds.SeriesDescription == "XC - test"
    assert ds.StudyDescription == "Wound photo"  # only_if_empty: it was not empty
    assert "OperatorsName" not in ds  # not created without create_if_missing
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert dciodvfy(item.path).errors == []


def test_custom_sop_class_is_written_with_a_warning(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    custom = "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image Storage
    settings = with_non_dicom(
        sop_class_rules=(
            SopClassRule(name="Photo", uid=custom, extensions=("*",), default=True),
            SopClassRule(name="PDF", uid=str(EncapsulatedPDFStorage), extensions=("pdf",)),
        )
    )
    (item,) = converter(settings).convert([corpus["rgb.png"]], STUDY, out_dir=tmp_path)
    assert item.sop_class_uid == custom
    assert pydicom.dcmread(item.path).SOPClassUID == custom
    assert any("stays Secondary Capture" in w for w in item.warnings)


def test_default_rules_pick_the_sop_class(corpus: dict[str, Path], tmp_path: Path) -> None:
    report = converter().convert([corpus["rgb.png"], corpus["report.pdf"]], STUDY, out_dir=tmp_path)
    assert [f.sop_class_uid for f in report] == [
        SecondaryCaptureImageStorage,
        EncapsulatedPDFStorage,
    ]
    assert all(not f.warnings for f in report)


@pytest.mark.parametrize(
    ("name", "charset", "expected"),
    [
        ("Doe^John", "auto", None),
        ("Müller^Anna", "auto", "ISO_IR 100"),
        ("Ωμέγα^Άλφα", "auto", "ISO_IR 192"),
        ("Иванов^Иван", "ISO_IR 144", "ISO_IR 144"),
        ("Ωμέγα^Άλφα", "ISO_IR 126", "ISO_IR 126"),
        (
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "ISO 2022 IR 87",
            ["ISO 2022 IR 6", "ISO 2022 IR 87"],
        ),
        ("王^小明", "GB18030", "GB18030"),
        ("Müller^Anna", "ISO_IR 192", "ISO_IR 192"),
    ],
)
def test_names_round_trip_in_their_charset(
    corpus: dict[str, Path],
    tmp_path: Path,
    dciodvfy: Callable[[Path], Any],
    dcmdump: Callable[..., str],
    name: str,
    charset: str,
    expected: str | list[str] | None,
) -> None:
    settings = with_non_dicom(charset=charset)
    (item,) = converter(settings).convert(
        [corpus["grey8.png"]], Study(patient_name=name), out_dir=tmp_path
    )
    ds = pydicom.dcmread(item.path)
    assert ds.get("SpecificCharacterSet") == expected
    assert str(ds.PatientName) == name
    assert dciodvfy(item.path).errors == []
    if charset.startswith("ISO 2022"):
        # DCMTK's iconv cannot convert ISO 2022 IR 87; it must still read the file
        assert "Yamada^Tarou=" in dcmdump(item.path)
    else:
        assert name in dcmdump(item.path, "+U8")


def test_text_the_charset_cannot_hold_is_an_error(corpus: dict[str, Path], tmp_path: Path) -> None:
    settings = with_non_dicom(charset="ISO_IR 144")
    report = converter(settings).convert(
        [corpus["grey8.png"]], Study(patient_name="Müller^Anna"), out_dir=tmp_path
    )
    (failure,) = report.failures
    assert "grey8.png" in str(failure.error)
    assert "ISO_IR 144 cannot hold" in str(failure.error)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("key", "error", "cause"),
    [
        ("empty", CorruptMediaError, "empty file"),
        ("truncated", CorruptMediaError, "truncated"),
        ("fake_jpeg", CorruptMediaError, ""),
        ("text_png", CorruptMediaError, ""),
        ("fake_pdf", CorruptMediaError, "PDF"),
        ("unknown", UnsupportedMediaError, "unknown kind of file"),
        ("bomb", CorruptMediaError, "decompression"),
        ("missing", CorruptMediaError, "cannot read"),
        ("folder", CorruptMediaError, "folder"),
    ],
)
def test_bad_input_fails_alone_with_a_clear_error(
    corpus: dict[str, Path],
    tmp_path: Path,
    key: str,
    error: type[ConversionError],
    cause: str,
) -> None:
    bad = _corpus.bad_inputs(tmp_path / "bad")[key]
    good = corpus["rgb.png"]
    report = converter().convert([good, bad, corpus["report.pdf"]], STUDY, out_dir=tmp_path / "out")
    assert [f.source for f in report] == [good, corpus["report.pdf"]]
    (failure,) = report.failures
    assert failure.source == bad
    assert isinstance(failure.error, error)
    message = str(failure.error)
    assert bad.name in message
    assert cause.lower() in message.lower()
    with pytest.raises(error, match=bad.name):
        report.raise_for_failures()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.dcm", "rgb.dcm"]


def test_dicom_input_is_refused(corpus: dict[str, Path], tmp_path: Path) -> None:
    (item,) = converter().convert([corpus["rgb.png"]], STUDY, out_dir=tmp_path / "a")
    report = converter().convert([item.path], STUDY, out_dir=tmp_path / "b")
    (failure,) = report.failures
    assert isinstance(failure.error, UnsupportedMediaError)
    assert "already a DICOM file" in str(failure.error)


def test_output_names_do_not_collide(corpus: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "in" / "rgb.bmp"
    other.parent.mkdir()
    _corpus.photo(8, 8, seed=99).save(other)
    report = converter().convert([corpus["rgb.png"], other], STUDY, out_dir=tmp_path / "out")
    assert [f.path.name for f in report] == ["rgb.dcm", "rgb.bmp.dcm"]


def test_worker_processes_give_the_same_result(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    inputs: list[Path] = []
    for number in range(20):
        path = folder / f"photo{number:02d}.{'jpg' if number % 2 else 'png'}"
        _corpus.photo(32, 24, seed=100 + number).save(path, quality=90)
        inputs.append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xdb garbage")
    inputs.insert(5, broken)
    alone = converter().convert(inputs, STUDY, out_dir=tmp_path / "one")
    parallel = Converter(workers=2, clock=lambda: NOW).convert(
        inputs, STUDY, out_dir=tmp_path / "two"
    )
    assert [(f.source, f.sop_instance_uid, f.path.name) for f in alone] == [
        (f.source, f.sop_instance_uid, f.path.name) for f in parallel
    ]
    assert [f.source for f in parallel.failures] == [broken]
    numbers = [pydicom.dcmread(f.path).InstanceNumber for f in parallel]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 20


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Converter(workers=0)


def test_password_protected_pdf_is_refused_but_owner_only_is_accepted(tmp_path: Path) -> None:
    import io as _io

    from pypdf import PdfWriter

    def encrypted(name: str, user_password: str) -> Path:
        writer = PdfWriter()
        writer.add_blank_page(width=200, height=200)
        writer.encrypt(user_password=user_password, owner_password="owner-secret")  # noqa: S106 (test data)
        buffer = _io.BytesIO()
        writer.write(buffer)
        path = tmp_path / name
        path.write_bytes(buffer.getvalue())
        return path

    locked = encrypted("locked.pdf", "open-sesame")
    owner_only = encrypted("owner-only.pdf", "")
    report = converter().convert([locked, owner_only], STUDY, out_dir=tmp_path / "out")
    (failure,) = report.failures
    assert failure.source == locked
    assert isinstance(failure.error, UnsupportedMediaError)
    assert "password" in str(failure.error)
    (item,) = report.files
    assert item.source == owner_only
    ds = pydicom.dcmread(item.path)
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == owner_only.read_bytes()


def test_patient_data_stays_out_of_info_logs(
    corpus: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = Study(patient_id="SENTINEL-ID-777", patient_name="Sentinelname^Zed")
    source = tmp_path / "Sentinelname_photo.png"
    source.write_bytes(corpus["rgb.png"].read_bytes())
    with caplog.at_level("INFO", logger="sendtopacs_core"):
        report = converter().convert([source, tmp_path / "gone.png"], study, out_dir=tmp_path / "o")
    assert len(report.files) == 1
    assert caplog.records, "the converter logs a summary at INFO"
    for record in caplog.records:
        text = record.getMessage()
        assert "SENTINEL" not in text
        assert "Sentinelname" not in text


def test_output_folder_that_cannot_be_created_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ConversionError, match="cannot create the output folder"):
        converter().convert([blocker], STUDY, out_dir=blocker / "out")


def test_a_file_alone_is_another_object_unless_its_number_is_kept(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    """The Instance Number is written, so it is part of the identity; a retry passes it back."""
    batch = converter().convert(
        [corpus["rgb.png"], corpus["baseline.jpg"], corpus["report.pdf"]],
        STUDY,
        out_dir=tmp_path / "batch",
    )
    in_batch = next(f for f in batch if f.source == corpus["baseline.jpg"])
    assert in_batch.instance_number == 2
    (alone,) = converter().convert([corpus["baseline.jpg"]], STUDY, out_dir=tmp_path / "alone")
    assert alone.instance_number == 1
    assert alone.sop_instance_uid != in_batch.sop_instance_uid
    assert alone.series_instance_uid == in_batch.series_instance_uid
    (retried,) = Converter(clock=lambda: NOW + dt.timedelta(days=2)).convert(
        [corpus["baseline.jpg"]],
        STUDY,
        out_dir=tmp_path / "retry",
        day=in_batch.day,
        instance_numbers={corpus["baseline.jpg"]: 2},
    )
    assert retried.sop_instance_uid == in_batch.sop_instance_uid
    assert retried.path.read_bytes() == in_batch.path.read_bytes()


def test_same_size_different_content_is_converted_twice(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bmp", tmp_path / "b.bmp"
    _corpus.photo(16, 16, seed=1).save(first)
    _corpus.photo(16, 16, seed=2).save(second)
    assert first.stat().st_size == second.stat().st_size
    report = converter().convert([first, second], STUDY, out_dir=tmp_path / "out")
    assert len({f.sop_instance_uid for f in report}) == 2
    assert not any(f.warnings for f in report)
