"""sha256 of local files, read at explicit offsets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from collect_fixtures import sha

from vcloud_ansible.collect import checksum


def test_fd_sha256_retries_a_read_that_returns_nothing_early(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's kernel sometimes answers the first read of a just-written file with 0 bytes."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    real = os.preadv
    answers = iter([0, 0])
    monkeypatch.setattr(checksum.os, "preadv", lambda fd, bufs, at: next(answers, None) or real(fd, bufs, at))
    assert checksum.file_sha256(path) == sha(b"x" * 5000)
    monkeypatch.setattr(checksum.os, "preadv", lambda fd, bufs, at: 0)  # a file that really stops short
    with pytest.raises(OSError, match="after 0 of 5000 bytes"):
        checksum.file_sha256(path)
