"""The shared downloader: a cut transfer is kept and continued, digests of any algorithm, the error kind."""

from __future__ import annotations

import hashlib

import pytest

from nn2hw.download import fetch, file_digest
from nn2hw.errors import DatasetError
from tests.http_server import MemoryServer

PAYLOAD = bytes(range(256)) * 3000


def test_a_cut_transfer_keeps_its_part_and_the_next_call_continues_it(tmp_path):
    server = MemoryServer({"f.bin": PAYLOAD}, ranges=True, cut_after=100_000)
    target = tmp_path / "f.bin"
    try:
        with pytest.raises(DatasetError) as err:
            fetch(server.url("f.bin"), target, hashlib.md5(PAYLOAD).hexdigest(), algorithm="md5", error=DatasetError,
                  by_hand="Fetch it by hand.", progress=False)
        assert "Run the command again to continue the partial file. Fetch it by hand." == err.value.fix
        assert not target.exists() and target.with_name("f.bin.part").stat().st_size == 100_000
        fetch(server.url("f.bin"), target, hashlib.md5(PAYLOAD).hexdigest(), algorithm="md5", progress=False)
    finally:
        server.close()
    assert target.read_bytes() == PAYLOAD and not target.with_name("f.bin.part").exists()
    assert server.requests[-1] == ("/f.bin", "bytes=100000-")


def test_a_wrong_md5_names_both_digests_and_deletes_the_part(tmp_path):
    server = MemoryServer({"f.bin": PAYLOAD})
    try:
        with pytest.raises(DatasetError, match=f"MD5 {hashlib.md5(PAYLOAD).hexdigest()}, not the published 0{{32}}"):
            fetch(server.url("f.bin"), tmp_path / "f.bin", "0" * 32, algorithm="md5", error=DatasetError,
                  progress=False)
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []


def test_file_digest_matches_hashlib(tmp_path):
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    assert file_digest(tmp_path / "f.bin") == hashlib.sha256(PAYLOAD).hexdigest()
    assert file_digest(tmp_path / "f.bin", "md5") == hashlib.md5(PAYLOAD).hexdigest()
