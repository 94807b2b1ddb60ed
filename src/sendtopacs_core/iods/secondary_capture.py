"""Secondary Capture Image (PS3.3 A.8.1): one still image, native pixels or baseline JPEG."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit

from sendtopacs_core.iods._modules import (
    ObjectContext,
    add_file_meta,
    add_general_equipment_module,
    add_general_study_module,
    add_lossy_compression,
    add_patient_module,
    add_request_attributes,
    add_sc_equipment_module,
    add_sop_common_module,
    da,
)
from sendtopacs_core.media.image import JpegImage, RasterImage

__all__ = ["build_secondary_capture"]

_NATIVE_PHOTOMETRIC = {1: "MONOCHROME2", 3: "RGB"}
_JPEG_PHOTOMETRIC = {1: {"MONOCHROME2"}, 3: {"YBR_FULL_422", "RGB"}}


def build_secondary_capture(
    image: JpegImage | RasterImage,
    *,
    context: ObjectContext,
    source_lossy: tuple[list[str], list[float], bool] = ([], [], False),
) -> Dataset:
    """Build a Secondary Capture Image dataset with its file meta.

    Parameters
    ----------
    image
        Native pixels (stored as Explicit VR Little Endian) or a baseline JPEG (stored as JPEG
        Baseline, passed through unchanged).
    context
        Identity, study, series and equipment of the new object.
    source_lossy
        The lossy compression history *before* ``image``: methods, ratios, and whether any
        step was lossy.

    Raises
    ------
    ValueError
        The image's photometric interpretation, samples or bits do not fit the transfer
        syntax (the message gives the value found and those expected).
    """
    methods, ratios, lossy = list(source_lossy[0]), list(source_lossy[1]), source_lossy[2]
    dataset = Dataset()
    if isinstance(image, JpegImage):
        transfer_syntax: UID = JPEGBaseline8Bit
        _check_photometric(image.photometric, _JPEG_PHOTOMETRIC, image.samples_per_pixel)
        methods.append("ISO_10918_1")
        ratios.append(image.ratio)
        lossy = True
    else:
        transfer_syntax = ExplicitVRLittleEndian
        _check_photometric(
            image.photometric,
            {k: {v} for k, v in _NATIVE_PHOTOMETRIC.items()},
            image.samples_per_pixel,
        )
        if image.bits_allocated not in (8, 16) or (
            image.bits_allocated == 16 and image.samples_per_pixel != 1
        ):
            raise ValueError(
                f"{image.bits_allocated}-bit {image.photometric} pixels cannot be stored; "
                "expected 8-bit MONOCHROME2/RGB or 16-bit MONOCHROME2"
            )
        if image.lossy is not None:
            lossy = True
            if image.lossy.method is not None:
                methods.append(image.lossy.method)
                if image.lossy.ratio is not None:
                    ratios.append(image.lossy.ratio)

    add_file_meta(dataset, context, transfer_syntax)
    add_patient_module(dataset, context.study)
    add_general_study_module(dataset, context)
    # General Series (PS3.3 C.7.3.1)
    dataset.Modality = context.modality
    dataset.SeriesInstanceUID = context.series_instance_uid
    add_request_attributes(dataset, context.study)
    dataset.SeriesNumber = context.series_number
    dataset.Laterality = ""  # 2C: the side is not known (empty is allowed when unknown)
    add_general_equipment_module(dataset, context)
    add_sc_equipment_module(dataset, context)
    # General Image (PS3.3 C.7.6.1)
    dataset.InstanceNumber = context.instance_number
    dataset.PatientOrientation = ""
    dataset.ContentDate = da(context.day)
    dataset.ContentTime = ""  # 2C: the time of the capture is not known
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    if context.burned_in_annotation is not None:
        dataset.BurnedInAnnotation = "YES" if context.burned_in_annotation else "NO"
    add_lossy_compression(
        dataset,
        methods=methods,
        ratios=ratios if len(ratios) == len(methods) else [],
        lossy=lossy,
    )
    _add_image_pixel_module(dataset, image)
    # SC Image (PS3.3 C.8.6.2)
    dataset.DateOfSecondaryCapture = da(context.day)
    add_sop_common_module(dataset, context)
    return dataset


def _check_photometric(found: str, allowed: dict[int, set[str]], samples: int) -> None:
    expected = allowed.get(samples)
    if expected is None:
        raise ValueError(f"{samples} samples per pixel; expected 1 or 3")
    if found not in expected:
        raise ValueError(
            f"photometric interpretation {found} with {samples} samples per pixel; "
            f"expected {' or '.join(sorted(expected))}"
        )


def _add_image_pixel_module(dataset: Dataset, image: JpegImage | RasterImage) -> None:
    """Image Pixel Module (PS3.3 C.7.6.3)."""
    dataset.SamplesPerPixel = image.samples_per_pixel
    dataset.PhotometricInterpretation = image.photometric
    if image.samples_per_pixel > 1:
        dataset.PlanarConfiguration = 0
    dataset.Rows = image.rows
    dataset.Columns = image.columns
    bits = 8 if isinstance(image, JpegImage) else image.bits_allocated
    dataset.BitsAllocated = bits
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    if isinstance(image, JpegImage):
        dataset.PixelData = encapsulate([image.data])
        dataset["PixelData"].VR = "OB"
    else:
        expected = image.rows * image.columns * image.samples_per_pixel * bits // 8
        if len(image.pixels) != expected:
            raise ValueError(f"{len(image.pixels)} bytes of pixels; expected {expected}")
        dataset.PixelData = image.pixels
        dataset["PixelData"].VR = "OW" if bits == 16 else "OB"
