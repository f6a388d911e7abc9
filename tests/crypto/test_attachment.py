"""Attachment streams (PROTOCOL.md §6): layout, round trips, tampering, framing, padding."""

from __future__ import annotations

import array
import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import nacl.bindings as sodium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postbox.crypto import attachment_stream, domain
from postbox.crypto.attachment import (
    ABYTES,
    CHUNK_BYTES,
    CHUNK_CIPHER_BYTES,
    HEADER_BYTES,
    MAX_BLOB,
    MIN_BLOB,
    BlobHasher,
    blob_hash,
    blob_length,
    check_file_name,
    chunk_count,
    file_length_bounds,
    padded_length_for_blob,
)
from postbox.crypto.attachment_pipe import decrypt_aiter, decrypt_iter, encrypt_aiter, encrypt_iter
from postbox.crypto.attachment_stream import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_bytes,
    encrypt_bytes,
)
from postbox.crypto.errors import (
    BadPadding,
    BlobHashMismatch,
    BlobLengthMismatch,
    CryptoError,
    DecryptionFailed,
    InvalidKey,
    MalformedObject,
    StreamFramingError,
    TruncatedStream,
)
from postbox.crypto.padding import MAX_FILE, pad, padded_length
from postbox.crypto.primitives import H

TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_PUSH = sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH
TAG_REKEY = sodium.crypto_secretstream_xchacha20poly1305_TAG_REKEY
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


# --- helpers ---------------------------------------------------------------------------------
def data_of(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


def splits(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes (cycled), the last one shorter."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return
        yield data[pos : pos + size]
        pos += size


def raw_open(blob: bytes, key: bytes) -> list[tuple[bytes, int]]:
    """Open a blob with bare libsodium, cutting it by the rule of §6: (plaintext, tag) list."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, blob[:HEADER_BYTES], key)
    body = blob[HEADER_BYTES:]
    out = []
    for i in range(0, len(body), CHUNK_CIPHER_BYTES):
        plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
            state, body[i : i + CHUNK_CIPHER_BYTES], None
        )
        out.append((plain, tag))
    return out


def raw_blob(key: bytes, chunks: list[tuple[bytes, int]]) -> bytes:
    """A blob written by a key holder who ignores the framing rules."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    parts = [sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)]
    parts += [
        sodium.crypto_secretstream_xchacha20poly1305_push(state, plain, None, tag)
        for plain, tag in chunks
    ]
    return b"".join(parts)


def opened(blob: bytes, key: bytes, size: int, hash_: bytes, pieces: Iterable[int]) -> bytes:
    """Decrypt through the streaming API with the given input split."""
    decryptor = AttachmentDecryptor(key, size, hash_)
    out = []
    for piece in splits(blob, pieces):
        out += decryptor.update_pieces(piece)
    decryptor.finish()
    assert all(len(p) <= CHUNK_BYTES for p in out)
    return b"".join(out)


def error_of(fn: Callable[[], object]) -> str:
    with pytest.raises(CryptoError) as info:
        fn()
    return type(info.value).__name__


def stream_error(blob: bytes, key: bytes, size: int, hash_: bytes, pieces: Iterable[int]) -> str:
    return error_of(lambda: opened(blob, key, size, hash_, pieces))


def check_layout(blob: bytes, key: bytes, data: bytes) -> None:
    """The blob is exactly §6: chunks of 65,536 with MESSAGE, the rest with FINAL."""
    n = padded_length(len(data))
    k = chunk_count(n)
    assert len(blob) == HEADER_BYTES + n + ABYTES * k == blob_length(len(data))
    chunks = raw_open(blob, key)
    assert len(chunks) == k
    assert [tag for _, tag in chunks] == [TAG_MESSAGE] * (k - 1) + [TAG_FINAL]
    assert all(len(p) == CHUNK_BYTES for p, _ in chunks[:-1])
    assert 1 <= len(chunks[-1][0]) <= CHUNK_BYTES
    assert b"".join(p for p, _ in chunks) == pad(data, MAX_FILE)


def boundary_lengths() -> list[int]:
    """File lengths where the padded stream is exactly k chunks, or just over."""
    out = {0, 1, 2, 254, 255, 256, 257, 65_279, 65_280, 65_535, 65_536, 65_537}
    for k in range(1, 5):
        edge = CHUNK_BYTES * k
        out |= {file_length_bounds(HEADER_BYTES + edge + ABYTES * k)[0], edge - 1, edge}
        above = blob_length(edge)  # the first padded length above k full chunks
        out |= set(file_length_bounds(above))
    return sorted(out)


# --- lengths -------------------------------------------------------------------------------
def test_constants_match_libsodium() -> None:
    assert CHUNK_BYTES == 65_536
    assert HEADER_BYTES == sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES == 24
    assert ABYTES == sodium.crypto_secretstream_xchacha20poly1305_ABYTES == 17
    assert MIN_BLOB == 24 + 256 + 17
    assert blob_length(MAX_FILE) == MAX_BLOB


@pytest.mark.parametrize("length", [0, 1, 255, 256, 65_279, 65_535, 65_536, 200_000, MAX_FILE])
def test_blob_length_formula(length: int) -> None:
    n = padded_length(length)
    k = max(1, -(-n // 65_536))
    assert blob_length(length) == 24 + n + 17 * k
    assert padded_length_for_blob(blob_length(length)) == n
    low, high = file_length_bounds(blob_length(length))
    assert low <= length <= high


def test_blob_length_limits() -> None:
    with pytest.raises(BadPadding):
        blob_length(MAX_FILE + 1)
    with pytest.raises(ValueError, match="negative"):
        blob_length(-1)


def test_padded_length_for_blob_accepts_exactly_the_writable_lengths() -> None:
    top = 3 * CHUNK_CIPHER_BYTES + 30_000
    valid = {}
    length = 0
    while blob_length(length) <= top:
        valid[blob_length(length)] = padded_length(length)
        length += 1
    for size in itertools.chain(range(70_000), range(top - 32_000, top + 1)):
        if size in valid:
            assert padded_length_for_blob(size) == valid[size]
        else:
            with pytest.raises(BlobLengthMismatch):
                padded_length_for_blob(size)


@pytest.mark.parametrize("size", [-1, MAX_BLOB + 1, MAX_BLOB + 17, 2**64, True, 297.0, "297"])
def test_padded_length_for_blob_rejects_nonsense(size: object) -> None:
    with pytest.raises(BlobLengthMismatch):
        padded_length_for_blob(size)  # type: ignore[arg-type]


@given(st.integers(0, MAX_FILE))
def test_file_length_bounds_are_tight(length: int) -> None:
    n = padded_length(length)
    low, high = file_length_bounds(blob_length(length))
    assert low <= length <= high
    assert padded_length(low) == padded_length(high) == n
    assert low == 0 or padded_length(low - 1) < n
    assert high == MAX_FILE or padded_length(high + 1) > n


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("length", boundary_lengths())
def test_round_trip_at_chunk_boundaries(length: int) -> None:
    data = data_of(length, length)
    blob, key, digest = encrypt_bytes(data)
    check_layout(blob, key, data)
    assert digest == H(blob, key=domain.BLOB) == blob_hash(blob)
    assert decrypt_bytes(blob, key, len(blob), digest) == data
    assert opened(blob, key, len(blob), digest, [1000, 65_553, 3]) == data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    length=st.integers(0, 300_000),
    seed=st.integers(0, 2**32),
    write=st.lists(st.integers(1, 150_000), min_size=1, max_size=5),
    read=st.lists(st.integers(1, 150_000), min_size=1, max_size=5),
)
def test_round_trip_any_size_any_split(
    length: int, seed: int, write: list[int], read: list[int]
) -> None:
    data = data_of(length, seed)
    encryptor = AttachmentEncryptor()
    blob = b"".join(encryptor.update(p) for p in splits(data, write)) + encryptor.finish()
    check_layout(blob, encryptor.key, data)
    info = encryptor.result
    assert (info.size, info.plain_size, info.hash) == (len(blob), length, blob_hash(blob))
    assert opened(blob, info.key, info.size, info.hash, read) == data


# Files made of random bytes, zero runs and marker-like bytes: what the reader holds back.
segment = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.integers(1, 140_000).map(bytes),
    st.sampled_from([b"\x80", b"\x80\x00", b"\x00\x80", b"\x01"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segment, max_size=6).map(b"".join), st.lists(st.integers(1, 70_000), min_size=1))
def test_round_trip_of_files_that_look_like_padding(data: bytes, read: list[int]) -> None:
    blob, key, digest = encrypt_bytes(data)
    assert opened(blob, key, len(blob), digest, read) == data


def test_zero_runs_are_counted_not_stored() -> None:
    # 8 MiB + 256 KiB is the padded length of files from 8 MiB on: the marker may sit
    # anywhere after 8 MiB, so 100 KiB of zeros there are held as a count, then released
    # as references to one shared block when the final byte shows they were file data.
    data = data_of(8 << 20) + bytes(100 << 10) + b"\x01"
    blob, key, digest = encrypt_bytes(data)
    decryptor = AttachmentDecryptor(key, len(blob), digest)
    assert decryptor.file_length_bounds[0] == 8 << 20
    pieces = decryptor.update_pieces(blob)
    decryptor.finish()
    assert b"".join(pieces) == data
    assert sum(p is attachment_stream._ZEROS for p in pieces) == 1  # 64 KiB of the 100 KiB run
    assert max(map(len, pieces)) == CHUNK_BYTES
    assert decryptor.plain_size == len(data)


def test_padding_is_generated_lazily() -> None:
    # 2^23 + 1 bytes pad to 8 MiB + 256 KiB: the tail is five chunks, made one at a time.
    encryptor = AttachmentEncryptor()
    head = encryptor.update_pieces(memoryview(bytes((1 << 23) + 1)))
    tail = encryptor.finish_pieces()
    first = next(tail)
    assert len(first) == CHUNK_CIPHER_BYTES
    rest = list(tail)
    assert len(rest) == 3 and all(len(p) == CHUNK_CIPHER_BYTES for p in rest)
    blob = b"".join([*head, first, *rest])
    assert encryptor.size == len(blob) == blob_length((1 << 23) + 1)
    assert encryptor.hash == blob_hash(blob)


@pytest.mark.parametrize("offload", [True, False])
def test_hash_offload_gives_the_same_hash(offload: bool) -> None:
    data = data_of(5 << 20, 5)
    encryptor = AttachmentEncryptor(offload_hash=offload)
    blob = b"".join(encryptor.update_pieces(data)) + encryptor.finish()
    assert encryptor.hash == H(blob, key=domain.BLOB)
    decryptor = AttachmentDecryptor(encryptor.key, len(blob), encryptor.hash, offload_hash=offload)
    assert b"".join(decryptor.update_pieces(blob)) == data
    decryptor.finish()
    bad = AttachmentDecryptor(encryptor.key, len(blob), bytes(32), offload_hash=offload)
    bad.update_pieces(blob)
    with pytest.raises(BlobHashMismatch):
        bad.finish()


def test_inputs_may_be_any_bytes_like() -> None:
    data = data_of(70_000)
    words = array.array("I", data[:69_996])
    for source in (bytearray(data), memoryview(data), memoryview(words)):
        blob, key, digest = encrypt_bytes(source)
        assert decrypt_bytes(bytearray(blob), key, len(blob), digest) == bytes(source)
        assert decrypt_bytes(memoryview(blob), key, len(blob), digest) == bytes(source)


def test_given_key_is_used_and_checked() -> None:
    key = bytes(range(32))
    blob, got, _ = encrypt_bytes(b"x", key)
    assert got == key
    assert raw_open(blob, key)[0][1] == TAG_FINAL
    with pytest.raises(InvalidKey):
        AttachmentEncryptor(bytes(31))
    with pytest.raises(DecryptionFailed):
        AttachmentDecryptor(bytes(31), len(blob), blob_hash(blob))


def test_fresh_key_and_header_per_blob() -> None:
    one, two = encrypt_bytes(b"same"), encrypt_bytes(b"same")
    assert one.key != two.key
    assert one.blob[:HEADER_BYTES] != two.blob[:HEADER_BYTES]


def test_files_over_two_gib_are_refused() -> None:
    encryptor = AttachmentEncryptor()
    encryptor.update(b"x")
    encryptor._plain = MAX_FILE  # as if 2 GiB had been written
    with pytest.raises(BadPadding):
        encryptor.update(b"y")


# --- tampering -------------------------------------------------------------------------------
def test_every_single_byte_flip_of_a_one_chunk_blob_is_caught() -> None:
    blob, key, digest = encrypt_bytes(b"")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            decrypt_bytes(bytes(bad), key, len(blob), digest)


def test_byte_flips_in_every_region_of_a_four_chunk_blob() -> None:
    data = data_of(200_000, 2)
    blob, key, digest = encrypt_bytes(data)
    chunk_starts = range(HEADER_BYTES, len(blob), CHUNK_CIPHER_BYTES)
    targets = list(range(HEADER_BYTES))  # the whole header
    for start in chunk_starts:
        end = min(start + CHUNK_CIPHER_BYTES, len(blob))
        targets += [start, start + 1, start + 2, (start + end) // 2, end - 17]  # tag, text
        targets += range(end - 16, end)  # every MAC byte
    for i in targets:
        bad = bytearray(blob)
        bad[i] ^= 0x80
        with pytest.raises(DecryptionFailed):
            decrypt_bytes(bytes(bad), key, len(blob), digest)
        # Streaming releases exactly the chunks before the damaged one, then fails.
        decryptor = AttachmentDecryptor(key, len(blob), digest)
        released = b""
        error = None
        for piece in splits(bytes(bad), [HEADER_BYTES, *[CHUNK_CIPHER_BYTES] * 4]):
            try:
                released += decryptor.update(piece)
            except CryptoError as exc:
                error = exc
                break
        assert isinstance(error, DecryptionFailed)
        damaged = max(0, (i - HEADER_BYTES) // CHUNK_CIPHER_BYTES)
        assert released == data[: damaged * CHUNK_BYTES]


def test_wrong_key_fails_to_authenticate() -> None:
    blob, _, digest = encrypt_bytes(b"data")
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(blob, bytes(32), len(blob), digest)


def test_wrong_hash_is_caught_only_after_everything_opened() -> None:
    data = data_of(150_000)
    blob, key, digest = encrypt_bytes(data)
    wrong = bytes([digest[0] ^ 1]) + digest[1:]
    with pytest.raises(BlobHashMismatch):
        decrypt_bytes(blob, key, len(blob), wrong)
    decryptor = AttachmentDecryptor(key, len(blob), wrong)
    assert decryptor.update(blob) == data  # authentic, but provisional ...
    with pytest.raises(BlobHashMismatch):
        decryptor.finish()  # ... and not the blob the header names
    with pytest.raises(BlobHashMismatch):
        AttachmentDecryptor(key, len(blob), digest[:31])


# --- framing: truncation, reordering, dropping, duplicating, excess ------------------------------
FOUR = data_of(200_000, 4)  # 4 chunks: 3 × 65,536 + 4,096


@pytest.fixture(scope="module")
def four() -> tuple[bytes, bytes, bytes, list[bytes]]:
    blob, key, digest = encrypt_bytes(FOUR)
    body = blob[HEADER_BYTES:]
    chunks = [body[i : i + CHUNK_CIPHER_BYTES] for i in range(0, len(body), CHUNK_CIPHER_BYTES)]
    assert [len(c) for c in chunks] == [65_553] * 3 + [4_113]
    return blob, key, digest, chunks


SPLITS: list[list[int]] = [[10**9], [HEADER_BYTES, CHUNK_CIPHER_BYTES], [997], [65_552, 3]]


def test_truncation_at_and_around_every_chunk_boundary(
    four: tuple[bytes, bytes, bytes, list[bytes]],
) -> None:
    blob, key, digest, _ = four
    cuts = {0, 1, 23, 24, 25, len(blob) - 1}
    for boundary in range(HEADER_BYTES, len(blob), CHUNK_CIPHER_BYTES):
        cuts |= {boundary - 1, boundary, boundary + 1}
    for cut in sorted(cuts):
        with pytest.raises(TruncatedStream):
            decrypt_bytes(blob[:cut], key, len(blob), digest)
        for split in SPLITS:
            assert stream_error(blob[:cut], key, len(blob), digest, split) == "TruncatedStream"


def test_truncation_with_the_size_restated(four: tuple[bytes, bytes, bytes, list[bytes]]) -> None:
    blob, key, digest, _ = four
    for k in (1, 2, 3):
        cut = HEADER_BYTES + k * CHUNK_CIPHER_BYTES  # a valid length: k full chunks
        # The k-th chunk is where the final one must be, but it carries TAG_MESSAGE.
        with pytest.raises(StreamFramingError):
            decrypt_bytes(blob[:cut], key, cut, blob_hash(blob[:cut]))
        with pytest.raises(BlobLengthMismatch):
            decrypt_bytes(blob[: cut - 1], key, cut - 1, digest)


def test_reordered_chunks(four: tuple[bytes, bytes, bytes, list[bytes]]) -> None:
    blob, key, digest, chunks = four
    header = blob[:HEADER_BYTES]
    for order in itertools.permutations(range(4)):
        if order == (0, 1, 2, 3):
            continue
        bad = header + b"".join(chunks[i] for i in order)
        for split in SPLITS:
            assert stream_error(bad, key, len(blob), digest, split) == "DecryptionFailed"


@pytest.mark.parametrize(
    ("dropped", "error"),
    [
        (0, "DecryptionFailed"),
        (1, "DecryptionFailed"),
        (2, "TruncatedStream"),
        (3, "TruncatedStream"),
    ],
)
def test_dropped_chunk(
    four: tuple[bytes, bytes, bytes, list[bytes]], dropped: int, error: str
) -> None:
    # In stream order: the chunk after the gap fails to open where it now sits, unless the
    # input ends first (only the short final chunk is left to stand in for a full one).
    blob, key, digest, chunks = four
    bad = blob[:HEADER_BYTES] + b"".join(c for i, c in enumerate(chunks) if i != dropped)
    for split in SPLITS:
        assert stream_error(bad, key, len(blob), digest, split) == error


@pytest.mark.parametrize(
    ("duplicated", "error"),
    [(0, "DecryptionFailed"), (1, "DecryptionFailed"), (2, "DecryptionFailed"),
     (3, "StreamFramingError")],
)  # fmt: skip
def test_duplicated_chunk(
    four: tuple[bytes, bytes, bytes, list[bytes]], duplicated: int, error: str
) -> None:
    blob, key, digest, chunks = four
    copy = chunks[: duplicated + 1] + chunks[duplicated:]
    bad = blob[:HEADER_BYTES] + b"".join(copy)
    for split in SPLITS:
        assert stream_error(bad, key, len(blob), digest, split) == error


def test_data_after_the_final_chunk(four: tuple[bytes, bytes, bytes, list[bytes]]) -> None:
    blob, key, digest, chunks = four
    for extra in (b"\x00", b"junk", chunks[0]):
        for split in SPLITS:
            assert stream_error(blob + extra, key, len(blob), digest, split) == (
                "StreamFramingError"
            )
    decryptor = AttachmentDecryptor(key, len(blob), digest)
    decryptor.update(blob)
    with pytest.raises(StreamFramingError):
        decryptor.update(b"\x00")
    with pytest.raises(StreamFramingError):  # the failure sticks
        decryptor.finish()
    done = AttachmentDecryptor(key, len(blob), digest)
    done.update(blob)
    done.finish()
    with pytest.raises(RuntimeError):
        done.update(b"\x00")


def test_wrong_sizes(four: tuple[bytes, bytes, bytes, list[bytes]]) -> None:
    blob, key, digest, _ = four
    for size in (len(blob) + 1, len(blob) - 1, 0, 296):
        with pytest.raises(BlobLengthMismatch):
            AttachmentDecryptor(key, size, digest)  # before a single byte is read
        with pytest.raises(BlobLengthMismatch):
            decrypt_iter(iter([blob]), key, size, digest)
    longer = blob_length(file_length_bounds(len(blob))[1] + 1)
    assert stream_error(blob, key, longer, digest, [10**9]) == "TruncatedStream"
    shorter = blob_length(3 * CHUNK_BYTES - 1)  # exactly three full chunks
    assert stream_error(blob, key, shorter, digest, [10**9]) == "StreamFramingError"


# --- framing and padding written by a misbehaving key holder -------------------------------------
KEY = bytes(range(32))
FULL = data_of(CHUNK_BYTES, 9)
TAIL = pad(FULL + b"tail", MAX_FILE)[CHUNK_BYTES:]


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        ([(FULL, TAG_FINAL), (TAIL, TAG_FINAL)], StreamFramingError),  # FINAL too early
        ([(FULL, TAG_PUSH), (TAIL, TAG_FINAL)], StreamFramingError),
        ([(FULL, TAG_REKEY), (TAIL, TAG_FINAL)], StreamFramingError),
        ([(FULL, TAG_MESSAGE), (TAIL, TAG_MESSAGE)], StreamFramingError),  # no FINAL
        ([(FULL, TAG_MESSAGE), (TAIL, TAG_PUSH)], StreamFramingError),
        ([(TAIL, TAG_MESSAGE), (FULL, TAG_FINAL)], DecryptionFailed),  # short chunk first
        ([(pad(b"hi", MAX_FILE), TAG_MESSAGE)], StreamFramingError),
        ([(bytes(256), TAG_FINAL)], BadPadding),  # no marker
        ([(b"hi\x80\x01" + bytes(252), TAG_FINAL)], BadPadding),  # data after the marker
        ([(b"hi\x80" + bytes(509), TAG_FINAL)], BadPadding),  # longer than the rule
        ([(FULL[:-1] + b"\x80", TAG_MESSAGE), (bytes(2048), TAG_FINAL)], BadPadding),
    ],
)
def test_crafted_streams_are_refused(
    chunks: list[tuple[bytes, int]], error: type[CryptoError]
) -> None:
    blob = raw_blob(KEY, chunks)
    padded_length_for_blob(len(blob))  # every one of them has a valid length
    with pytest.raises(error):
        decrypt_bytes(blob, KEY, len(blob), blob_hash(blob))
    for split in SPLITS:
        assert stream_error(blob, KEY, len(blob), blob_hash(blob), split) == error.__name__


def test_a_file_ending_in_a_marker_and_zeros_is_not_padding() -> None:
    blob = raw_blob(KEY, [(b"hi\x80\x00\x80" + bytes(251), TAG_FINAL)])
    assert decrypt_bytes(blob, KEY, len(blob), blob_hash(blob)) == b"hi\x80\x00"


# --- iterables and async ---------------------------------------------------------------------
def test_encrypt_iter_exposes_key_at_once_and_result_at_the_end() -> None:
    data = data_of(300_000)
    stream = encrypt_iter(splits(data, [70_000]))
    key = stream.key
    with pytest.raises(RuntimeError):
        _ = stream.result
    pieces = list(stream)
    assert all(len(p) <= CHUNK_CIPHER_BYTES for p in pieces)
    blob = b"".join(pieces)
    assert stream.result.key == key
    assert stream.result.size == len(blob) and stream.result.hash == blob_hash(blob)
    assert stream.result.plain_size == len(data)
    assert repr(stream.result).startswith("BlobInfo(hash=")  # the key stays out of logs
    plain = b"".join(decrypt_iter(splits(blob, [4096]), key, len(blob), stream.result.hash))
    assert plain == data


def test_decrypt_iter_fails_at_the_end_on_a_wrong_hash() -> None:
    blob, key, _ = encrypt_bytes(b"hello")
    pieces = decrypt_iter(iter([blob]), key, len(blob), bytes(32))
    assert next(pieces) == b"hello"  # provisional
    with pytest.raises(BlobHashMismatch):
        next(pieces)


async def agen(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    for piece in splits(data, sizes):
        yield piece


async def test_async_round_trip() -> None:
    data = data_of(700_000, 7)
    stream = encrypt_aiter(agen(data, [300_000, 1000]))  # large pieces run on a thread
    blob = b"".join([piece async for piece in stream])
    info = stream.result
    assert info.size == len(blob) and info.hash == blob_hash(blob) and info.key == stream.key
    plain = [
        p async for p in decrypt_aiter(agen(blob, [400_000, 5]), info.key, info.size, info.hash)
    ]
    assert b"".join(plain) == data


async def test_async_decrypt_rejects() -> None:
    blob, key, digest = encrypt_bytes(data_of(100_000))
    with pytest.raises(BlobLengthMismatch):
        decrypt_aiter(agen(blob, [1000]), key, len(blob) + 1, digest)
    with pytest.raises(TruncatedStream):
        _ = [p async for p in decrypt_aiter(agen(blob[:-1], [1000]), key, len(blob), digest)]
    bad = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        _ = [p async for p in decrypt_aiter(agen(bad, [300_000]), key, len(blob), digest)]


# --- the blob hash -------------------------------------------------------------------------
def test_blob_hasher() -> None:
    blob = data_of(200_000)
    hasher = BlobHasher()
    for piece in splits(blob, [1, 65_553, 7]):
        hasher.update(piece)
    hasher.update(bytearray())
    assert hasher.size == len(blob)
    assert hasher.digest() == hasher.digest() == H(blob, key=domain.BLOB) == blob_hash(blob)
    hasher.verify(H(blob, key=domain.BLOB))
    with pytest.raises(BlobHashMismatch):
        hasher.verify(bytes(32))
    with pytest.raises(BlobHashMismatch):
        hasher.verify(b"")
    with pytest.raises(RuntimeError):
        hasher.update(b"more")


# --- file names ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["Antrag.pdf", "a" * 255, "ü" * 127, "..x", "x..", "\u202ename", "نموذج.pdf", " "]
)
def test_good_file_names(name: str) -> None:
    check_file_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "a\\b", "a\x00", "\x1f", "\x7f", "\x80", "\x9f", "a" * 256, "ü" * 128,
     "e\u0301", "\ud800", "x\udfff"],
)  # fmt: skip
def test_bad_file_names(name: str) -> None:
    with pytest.raises(MalformedObject):
        check_file_name(name)


def test_file_name_must_be_a_string() -> None:
    with pytest.raises(MalformedObject):
        check_file_name(b"name.pdf")  # type: ignore[arg-type]


def test_the_manifest_file_size_is_enforced() -> None:
    """The signed manifest's file size must fit the blob up front and match at the end."""
    for n in (0, 1, 300, 65_536, 200_000):
        data = bytes(range(256)) * (n // 256) + bytes(n % 256)
        blob, key, digest = encrypt_bytes(data)
        assert decrypt_bytes(blob, key, len(blob), digest, file_size=n) == data
        low, high = file_length_bounds(len(blob))
        for wrong in {low, high} - {n}:  # fits the blob length, but is not the file
            with pytest.raises(BlobLengthMismatch):
                decrypt_bytes(blob, key, len(blob), digest, file_size=wrong)
        with pytest.raises(BlobLengthMismatch):  # cannot fit: refused before any byte
            AttachmentDecryptor(key, len(blob), digest, file_size=high + 1)
