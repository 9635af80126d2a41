"""Archives written while they are sent (unit: no server): a stored zip's length is known before its
first byte, its content is the files' own, and a file that changed meanwhile ends it with an error."""

from __future__ import annotations

import io
import zipfile

import pytest

from sibyls.startup.http.zipstream import SizedEntry, sized_zip, zip_chunks


def test_a_sized_zip_is_exactly_as_long_as_announced_and_holds_each_file(tmp_path):
    big = tmp_path / "curve.dat"
    big.write_bytes(b"0.01 1.0 0.1\n" * 300_000)  # several read blocks
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    entries = [
        SizedEntry.of_bytes("P/records/a.yaml", b"uid: x\n"),
        SizedEntry.of_file("P/processed/curve.dat", big),
        SizedEntry.of_file("P/processed/empty.txt", empty),
    ]
    length, chunks = sized_zip(entries)
    parts = list(chunks)
    data = b"".join(parts)
    assert len(data) == length and len(parts) > 2
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert archive.namelist() == ["P/records/a.yaml", "P/processed/curve.dat", "P/processed/empty.txt"]
    assert archive.read("P/processed/curve.dat") == big.read_bytes()


def test_a_file_that_changed_after_the_listing_ends_the_archive_with_an_error(tmp_path):
    path = tmp_path / "grows.dat"
    path.write_bytes(b"x" * 100)
    length, chunks = sized_zip([SizedEntry.of_file("grows.dat", path)])
    path.write_bytes(b"x" * 200)
    with pytest.raises(OSError, match="changed while the archive was sent"):
        b"".join(chunks)


def test_the_run_zip_streams_its_files_compressed(tmp_path):
    path = tmp_path / "frame.h5"
    path.write_bytes(bytes(3_000_000))
    data = b"".join(zip_chunks([("run/frame.h5", path)]))
    assert len(data) < 100_000
    assert zipfile.ZipFile(io.BytesIO(data)).read("run/frame.h5") == path.read_bytes()
