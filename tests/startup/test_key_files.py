"""Key files as the ecosystem's clients read them: the key alone, no newline, mode 0600.

bluesky-widgets' ``queue-monitor --http-server-keyfile`` sends the whole file as the API key, and a
script that hands ``open(file).read()`` to REManagerAPI's ``zmq_public_key`` gets it verbatim: a
trailing newline broke every request ("Illegal header value b'ApiKey …\\n'"). Stacks made before keep
their keys; ``sibyls up`` rewrites their files without the newline.
"""

from __future__ import annotations

import stat

import pytest
from bluesky_queueserver.manager.comms import validate_zmq_key

from sibyls.startup.stack.private_files import normalize_key_file, write_key
from sibyls.startup.stack.security import key_files, rewrite_old_key_files, zmq_key_files


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_file_holds_the_key_alone_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "http_api_key"
    path.write_text("old and wide open\n")
    path.chmod(0o644)
    write_key(path, "abc123")
    assert path.read_bytes() == b"abc123"
    assert mode(path) == 0o600


@pytest.mark.parametrize("bad", ["", "two words", "key\n", " key"])
def test_a_key_with_whitespace_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="without whitespace"):
        write_key(tmp_path / "key", bad)
    assert not (tmp_path / "key").exists()


def test_the_0mq_public_key_file_read_verbatim_is_a_valid_key(tmp_path):
    public = zmq_key_files(tmp_path)
    text = open(public).read()  # as a client script reads it
    validate_zmq_key(text)  # raises for a key with a newline
    assert len(text) == 40 and mode(public) == 0o600


def test_old_key_files_are_rewritten_without_the_newline_and_keep_their_keys(tmp_path):
    zmq_key_files(tmp_path)
    public = tmp_path / "zmq_public_key"
    key = public.read_text()
    public.write_text(key + "\n")  # as sibyls up wrote it before
    (tmp_path / "http_api_key").write_text("s3cret\n")
    (tmp_path / "tiled").mkdir()
    (tmp_path / "tiled" / "tiled_api_key").write_text("t1ledkey")  # already right: left alone
    rewritten = rewrite_old_key_files(tmp_path)
    assert rewritten == [public, tmp_path / "http_api_key"]
    assert public.read_text() == key and (tmp_path / "http_api_key").read_text() == "s3cret"
    assert all(mode(path) == 0o600 for path in rewritten)
    assert zmq_key_files(tmp_path) == public and public.read_text() == key  # the pair is kept
    assert rewrite_old_key_files(tmp_path) == []


def test_missing_empty_or_odd_files_are_left_alone(tmp_path):
    odd = tmp_path / "http_api_key"
    odd.write_text("not one\nkey\n")
    assert normalize_key_file(odd) is False and odd.read_text() == "not one\nkey\n"
    assert normalize_key_file(tmp_path / "missing") is False
    assert [p.name for p in key_files(tmp_path)] == ["zmq_public_key", "http_api_key", "tiled_api_key"]
