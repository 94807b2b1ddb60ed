"""Walk a DICOM data set to its end, element by element, without reading its values.

What a file must satisfy before any byte of it is sent (PS3.5 section 7): every element's
header is whole, every defined value length ends within the file and within the item or
sequence that holds it, a sequence or item of defined length ends exactly where its length
says, one of undefined length is closed by its delimiter, and encapsulated Pixel Data is a
series of items closed by a Sequence Delimitation Item. Explicit and implicit VR, little and
big endian; a deflated data set is inflated in pieces while it is walked (nothing is kept).

Only element headers are read: values are skipped by a seek (or, when inflating, read and
dropped), so the cost is one small read per element, and Pixel Data is never decoded.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Final

import attrs
from pydicom.datadict import dictionary_VR

__all__ = ["DataSetShape", "InvalidDicomFileError", "walk_data_set", "walk_file_meta"]

_ITEM: Final = 0xFFFEE000
_ITEM_DELIMITER: Final = 0xFFFEE00D
_SEQUENCE_DELIMITER: Final = 0xFFFEE0DD
_UNDEFINED: Final = 0xFFFFFFFF
#: Pixel Data, Float Pixel Data, Double Float Pixel Data.
PIXEL_TAGS: Final = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 table 7.1-1).
_LONG_VRS: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS: Final = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
#: Deeper nesting than this is refused (a hostile file could exhaust the stack).
MAX_DEPTH: Final = 64


class InvalidDicomFileError(ValueError):
    """A file that starts like DICOM but cannot be sent (missing meta, truncated...)."""


def tag_text(tag: int) -> str:
    """``(gggg,eeee)``."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def is_known_vr(code: bytes) -> bool:
    """Whether ``code`` is one of the two-letter VRs of PS3.5 table 6.2-1."""
    return code in _LONG_VRS or code in _SHORT_VRS


@attrs.frozen(kw_only=True)
class DataSetShape:
    """What the walk found at the top level of the data set."""

    pixel_tag: int | None
    """Pixel Data, Float or Double Float Pixel Data, if the data set has one."""
    pixel_length: int | None
    """Its value length (``None`` when encapsulated, i.e. undefined)."""
    last_offset: int
    """Where the last top-level element starts (where a cut file would have been cut)."""
    end: int
    """Where the data set ends (for a deflated one, in inflated bytes)."""


class _Source:
    """A file read from ``start`` to ``size``; offsets are file offsets."""

    where = "the file"

    def __init__(self, stream: BinaryIO, start: int, size: int) -> None:
        self._stream = stream
        self.position = start
        self._size = size
        stream.seek(start)

    def read(self, count: int) -> bytes:
        data = self._stream.read(min(count, max(0, self._size - self.position)))
        self.position += len(data)
        return data

    def skip(self, count: int) -> int:
        """Skip ``count`` bytes; return how many there were."""
        done = min(count, max(0, self._size - self.position))
        self.position += done
        self._stream.seek(self.position)
        return done

    def at_end(self) -> bool:
        return self.position >= self._size


class _InflatingSource:
    """A deflated data set (PS3.5 A.5), inflated in pieces; offsets count inflated bytes."""

    where = "the inflated data set"

    def __init__(self, stream: BinaryIO, start: int, limit: int) -> None:
        stream.seek(start)
        self._stream = stream
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buffer = b""
        self._limit = limit
        self._inflated = 0
        self._done = False
        self.position = 0

    def _fill(self, count: int) -> None:
        while len(self._buffer) < count and not self._done:
            tail = self._inflater.unconsumed_tail
            chunk = tail or self._stream.read(1 << 16)
            if not chunk:
                self._buffer += self._inflater.flush()
                self._done = True
                break
            try:
                piece = self._inflater.decompress(chunk, 1 << 20)
            except zlib.error as exc:
                raise InvalidDicomFileError(f"the deflated data set is damaged: {exc}") from exc
            self._inflated += len(piece)
            if self._inflated > self._limit:
                raise InvalidDicomFileError(
                    f"refused: the deflated data set inflates to more than {self._limit} "
                    "bytes (a decompression bomb?)"
                )
            self._buffer += piece
            if self._inflater.eof:
                self._done = True

    def read(self, count: int) -> bytes:
        self._fill(count)
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        self.position += len(data)
        return data

    def skip(self, count: int) -> int:
        done = 0
        while done < count:
            piece = self.read(min(count - done, 1 << 20))
            if not piece:
                break
            done += len(piece)
        return done

    def at_end(self) -> bool:
        self._fill(1)
        return not self._buffer


class _Walker:
    def __init__(self, source: _Source | _InflatingSource, *, little: bool, implicit: bool) -> None:
        self.source = source
        self.order = "<" if little else ">"
        self.implicit = implicit

    def fail(self, message: str) -> InvalidDicomFileError:
        return InvalidDicomFileError(message)

    def header(self, *, end: int | None, container: str) -> tuple[int, bytes, int, int] | None:
        """The next element's (tag, VR, length, offset); ``None`` at the end of the file."""
        source = self.source
        offset = source.position
        if end is not None and offset >= end:
            return None
        head = source.read(8)
        if not head:
            if end is not None:
                raise self.fail(
                    f"truncated: {source.where} ends at offset {offset}, inside {container} "
                    f"that should end at {end}"
                )
            return None
        if len(head) < 8:
            inside = "" if container == source.where else f" in {container}"
            raise self.fail(
                f"truncated: {source.where} ends inside the element header at offset "
                f"{offset}{inside}"
            )
        if head == bytes(8) and end is None and container == source.where:
            if self.zeros_to_end():  # trailing NUL padding (a disc sector): the end
                return None
            raise self.fail(
                f"damaged: NUL bytes at offset {offset} where an element should start, "
                "followed by data"
            )
        group, element = struct.unpack(self.order + "HH", head[:4])
        tag = group << 16 | element
        if group == 0xFFFE or self.implicit:
            (length,) = struct.unpack(self.order + "I", head[4:])
            vr = b"" if group == 0xFFFE else _implicit_vr(tag)
            return tag, vr, length, offset
        vr = head[4:6]
        if vr in _LONG_VRS:
            rest = source.read(4)
            if len(rest) < 4:
                raise self.fail(
                    f"truncated: {source.where} ends inside the header of {tag_text(tag)} "
                    f"at offset {offset}"
                )
            (length,) = struct.unpack(self.order + "I", rest)
        elif vr in _SHORT_VRS:
            (length,) = struct.unpack(self.order + "H", head[6:])
        else:
            raise self.fail(
                f"damaged: the element {tag_text(tag)} at offset {offset} has no valid VR "
                f"(found {vr!r}): the file is damaged or a length before it is wrong"
            )
        return tag, vr, length, offset

    def zeros_to_end(self) -> bool:
        """Whether only NUL bytes are left (then read to the end), at the top level."""
        while piece := self.source.read(1 << 16):
            if piece.count(0) != len(piece):
                return False
        return True

    def skip(  # noqa: PLR0917 - one class's helper
        self,
        tag: int,
        offset: int,
        length: int,
        end: int | None,
        container: str,
        what: str = "",
    ) -> None:
        what = what or f"{tag_text(tag)} at offset {offset}"
        source = self.source
        start = source.position
        if end is not None and start + length > end:
            raise self.fail(
                f"damaged: {what} needs {length} bytes, which runs "
                f"{start + length - end} bytes past the end of {container} (at {end})"
            )
        got = source.skip(length)
        if got < length:
            raise self.fail(
                f"truncated: {source.where} ends inside {what}: "
                f"its value needs {length} bytes, {got} are left"
            )

    def data_set(self, *, end: int | None, depth: int, container: str) -> DataSetShape | None:
        """Walk elements until ``end`` (``None``: the end of the file, or an Item Delimiter)."""
        pixel_tag: int | None = None
        pixel_length: int | None = None
        last = self.source.position
        while True:
            found = self.header(end=end, container=container)
            if found is None:
                if depth and end is None:
                    raise self.fail(
                        f"truncated: {self.source.where} ends at offset {self.source.position} "
                        f"inside {container}, before its Item Delimitation Item"
                    )
                break
            tag, _vr, length, offset = found
            if tag == _ITEM_DELIMITER:
                if depth == 0:
                    raise self.fail(
                        f"damaged: an Item Delimitation Item at offset {offset} outside any item"
                    )
                if end is not None:
                    raise self.fail(
                        f"damaged: an Item Delimitation Item at offset {offset} inside {container}"
                        " of defined length"
                    )
                return None
            if tag >> 16 == 0xFFFE:
                raise self.fail(f"damaged: {tag_text(tag)} at offset {offset} is out of place")
            last = offset
            if depth == 0 and tag in PIXEL_TAGS:
                pixel_tag = tag
                pixel_length = None if length == _UNDEFINED else length
            self.value(found, end=end, depth=depth, container=container)
        if depth == 0:
            return DataSetShape(
                pixel_tag=pixel_tag,
                pixel_length=pixel_length,
                last_offset=last,
                end=self.source.position,
            )
        return None

    def value(
        self, found: tuple[int, bytes, int, int], *, end: int | None, depth: int, container: str
    ) -> None:
        """Walk over one element's value: skip it, or walk its items or fragments."""
        tag, vr, length, offset = found
        if length == _UNDEFINED:
            if tag in PIXEL_TAGS and vr in (b"OB", b"OW", b"UN", b""):
                self.fragments(tag, offset, end, container)
            elif vr in (b"SQ", b"UN", b"") or self.implicit:
                self.sequence(tag, offset, None, depth, vr == b"UN")
            else:
                raise self.fail(
                    f"damaged: {tag_text(tag)} at offset {offset} has an undefined length, "
                    f"which its VR {vr.decode('ascii', 'replace')} does not allow"
                )
        elif vr == b"SQ":
            value_end = self.source.position + length
            if end is not None and value_end > end:
                self.skip(tag, offset, length, end, container)  # raises: past the container
            self.sequence(tag, offset, value_end, depth, False)
        else:
            self.skip(tag, offset, length, end, container)

    def sequence(self, tag: int, offset: int, end: int | None, depth: int, un: bool) -> None:
        """The items of a sequence, until ``end`` or its Sequence Delimitation Item."""
        if depth >= MAX_DEPTH:
            raise self.fail(f"refused: sequences nested deeper than {MAX_DEPTH} levels")
        name = f"the sequence {tag_text(tag)} at offset {offset}"
        saved = self.implicit, self.order
        if un:  # UN of undefined length: the content is Implicit VR Little Endian (PS3.5 6.2.2)
            self.implicit, self.order = True, "<"
        try:
            while True:
                found = self.header(end=end, container=name)
                if found is None:
                    if end is None:
                        raise self.fail(
                            f"truncated: {self.source.where} ends at offset "
                            f"{self.source.position} inside {name}, before its Sequence "
                            "Delimitation Item"
                        )
                    return
                item, _vr, length, item_offset = found
                if item == _SEQUENCE_DELIMITER:
                    if end is not None:
                        raise self.fail(
                            f"damaged: a Sequence Delimitation Item at offset {item_offset} inside "
                            f"{name}, which has a defined length"
                        )
                    return
                if item != _ITEM:
                    raise self.fail(
                        f"damaged: {tag_text(item)} at offset {item_offset} in {name} is not an "
                        "item: the sequence's length or content is wrong"
                    )
                item_name = f"the item at offset {item_offset} of {name}"
                if length == _UNDEFINED:
                    self.data_set(end=None, depth=depth + 1, container=item_name)
                    continue
                item_end = self.source.position + length
                if end is not None and item_end > end:
                    raise self.fail(
                        f"damaged: {item_name} needs {length} bytes, {item_end - end} more than "
                        "its sequence holds"
                    )
                self.data_set(end=item_end, depth=depth + 1, container=item_name)
                if self.source.position != item_end:  # pragma: no cover - data_set stops there
                    raise self.fail(f"damaged: {item_name} does not end where its length says")
        finally:
            self.implicit, self.order = saved

    def fragments(self, tag: int, offset: int, end: int | None, container: str) -> None:
        """Encapsulated Pixel Data: items (the offset table, the fragments), then a delimiter."""
        name = f"the encapsulated Pixel Data {tag_text(tag)} at offset {offset}"
        while True:
            found = self.header(end=end, container=name)
            if found is None:
                raise self.fail(
                    f"truncated: {name} has no Sequence Delimitation Item (the file ends at "
                    f"offset {self.source.position})"
                )
            item, _vr, length, item_offset = found
            if item == _SEQUENCE_DELIMITER:
                return
            if item != _ITEM or length == _UNDEFINED:
                raise self.fail(
                    f"damaged: {tag_text(item)} at offset {item_offset} in {name} is not a "
                    "fragment item"
                )
            what = f"the fragment (FFFE,E000) at offset {item_offset} of {name}"
            self.skip(item, item_offset, length, end, container, what)


def _implicit_vr(tag: int) -> bytes:
    """The VR of an implicit VR element, as far as it matters here: ``SQ`` or not."""
    if tag >> 16 & 1 or tag & 0xFFFF == 0:  # private or group length: the value is opaque
        return b"OB"
    try:
        return b"SQ" if dictionary_VR(tag) == "SQ" else b"OB"
    except KeyError:
        return b"OB"


def walk_data_set(
    stream: BinaryIO,
    *,
    start: int,
    size: int,
    little: bool,
    implicit: bool,
    deflated: bool = False,
    inflate_limit: int = 0,
) -> DataSetShape:
    """Walk the data set from ``start`` to the end of the file.

    Raises
    ------
    InvalidDicomFileError
        An element's header or value is cut, a length runs past the file or the item or
        sequence holding it, a sequence or item does not end where its length says, a
        delimiter is missing or out of place, or a deflated data set is damaged or inflates
        beyond ``inflate_limit`` bytes. The message names the element and its offset.
    """
    source: _Source | _InflatingSource
    if deflated:
        source = _InflatingSource(stream, start, inflate_limit)
    else:
        source = _Source(stream, start, size)
        stream.seek(start)
        first = stream.read(6)
        stream.seek(start)
        if not implicit and len(first) == 6 and not is_known_vr(first[4:6]):
            # Explicit VR said, implicit VR written: read as pydicom and DCMTK read it
            implicit = True
    shape = _Walker(source, little=little, implicit=implicit).data_set(
        end=None, depth=0, container=source.where
    )
    if shape is None:  # pragma: no cover - the top level always has a shape
        raise InvalidDicomFileError("damaged: the data set ends with a delimiter")
    return shape


def walk_file_meta(stream: BinaryIO, size: int) -> int:
    """Walk the File Meta Information (Explicit VR Little Endian, group 0002, from offset
    132); return where it ends, i.e. where the data set starts.

    Raises
    ------
    InvalidDicomFileError
        An element of group 0002 is cut, or its length runs past the file.
    """
    walker = _Walker(_Source(stream, 132, size), little=True, implicit=False)
    name = "the File Meta Information"
    while True:
        offset = walker.source.position
        stream.seek(offset)
        if stream.read(2) != b"\x02\x00":  # the data set begins (or the file ends)
            stream.seek(offset)
            walker.source.position = offset
            return offset
        stream.seek(offset)
        found = walker.header(end=None, container=name)
        if found is None:  # pragma: no cover - two bytes were there
            return offset
        tag, _vr, length, element_offset = found
        if length == _UNDEFINED:
            raise InvalidDicomFileError(
                f"damaged: {tag_text(tag)} at offset {element_offset} of {name} has an "
                "undefined length"
            )
        walker.skip(tag, element_offset, length, None, name)
