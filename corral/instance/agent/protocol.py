"""The wire format between corrald and corral-agent (docs/vm-agent.md; corral/vmagent/agent.h is
the guest side's copy of these numbers).

A frame is a 16-byte header, then its payload:
    magic C0 A6 | type u8 | flags u8 | channel u32 LE | length u32 LE | crc32 of the first 12 bytes, u32 LE
Request and reply payloads are TLV fields: tag u8, length u32 LE, bytes (integers: 8 bytes LE)."""
from __future__ import annotations

import struct
import zlib

VERSION = 1
HDR_LEN = 16
MAGIC = b"\xc0\xa6"
MAX_TO_AGENT = 64 * 1024          # payload limit host -> agent (the agent enforces it)
MAX_FROM_AGENT = 1 << 20          # payload limit agent -> host
DATA_CHUNK = 64 * 1024
WINDOW = 1024 * 1024              # initial credit of every stream, each way
CREDIT_BATCH = WINDOW // 4
AGENT_CHAN_BIT = 0x80000000

# frame types
HELLO, HELLO_ACK, EXEC, FILE_GET, FILE_PUT, FILE_DELETE, STATE, REPLY, DATA, CREDIT, EOF, SIGNAL, RESIZE, \
    EXIT, CLOSE, STREAM_OPEN, PROTO_ERROR, PING, PONG, SHUT = range(1, 21)

# TLV tags
T_ARG, T_ENV, T_CWD, T_UID, T_GID, T_PTY, T_WIDTH, T_HEIGHT = range(1, 9)
T_PATH, T_KIND, T_MODE, T_APPEND, T_TARGET = range(10, 15)
T_ERRNO, T_MSG, T_PID, T_SIZE, T_MTIME, T_TYPE, T_JSON, T_CODE = range(20, 28)
T_NONCE, T_HOSTNAME, T_VERSION = 30, 31, 32

KINDS = {"file": 1, "directory": 2, "symlink": 3}
KIND_NAMES = {v: k for k, v in KINDS.items()}

_HDR = struct.Struct("<2sBBII")
_LE32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


def header(ftype: int, flags: int, chan: int, length: int) -> bytes:
    h = _HDR.pack(MAGIC, ftype, flags, chan, length)
    return h + _LE32.pack(zlib.crc32(h))


def frame(ftype: int, chan: int = 0, payload: bytes = b"", flags: int = 0) -> bytes:
    return header(ftype, flags, chan, len(payload)) + payload


def parse_header(buf, offset: int = 0) -> tuple[int, int, int, int] | None:
    """(type, flags, channel, length) of a valid header at `offset`, else None."""
    h = bytes(buf[offset:offset + 12])
    if len(h) < 12 or h[:2] != MAGIC:
        return None
    if _LE32.unpack_from(buf, offset + 12)[0] != zlib.crc32(h):
        return None
    _, ftype, flags, chan, length = _HDR.unpack(h)
    return ftype, flags, chan, length


def u32(v: int) -> bytes:
    return _LE32.pack(v)


def get_u32(payload: bytes, offset: int = 0) -> int:
    return _LE32.unpack_from(payload, offset)[0]


class TLV:
    """Builds a TLV payload."""

    def __init__(self):
        self.parts: list[bytes] = []

    def add(self, tag: int, value: bytes | str | int | bool) -> "TLV":
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            data = _I64.pack(value)
        elif isinstance(value, str):
            data = value.encode("utf-8", "surrogateescape")
        else:
            data = bytes(value)
        self.parts.append(bytes([tag]) + _LE32.pack(len(data)) + data)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def parse_tlv(payload: bytes) -> dict[int, list[bytes]]:
    """tag -> every value with that tag, in order. ValueError when malformed."""
    out: dict[int, list[bytes]] = {}
    i, n = 0, len(payload)
    while i < n:
        if n - i < 5:
            raise ValueError("truncated TLV field")
        tag = payload[i]
        length = _LE32.unpack_from(payload, i + 1)[0]
        if length > n - i - 5:
            raise ValueError("TLV field overruns the payload")
        out.setdefault(tag, []).append(payload[i + 5:i + 5 + length])
        i += 5 + length
    return out


def tlv_int(fields: dict[int, list[bytes]], tag: int, default: int | None = None) -> int | None:
    vals = fields.get(tag)
    if not vals or len(vals[0]) != 8:
        return default
    return _I64.unpack(vals[0])[0]


def tlv_str(fields: dict[int, list[bytes]], tag: int, default: str = "") -> str:
    vals = fields.get(tag)
    return vals[0].decode("utf-8", "surrogateescape") if vals else default


class Parser:
    """Splits the byte stream from the agent into frames. Until synchronised it only looks for the
    HELLO_ACK carrying our nonce, skipping anything else (bytes of an earlier connection)."""

    def __init__(self, nonce: bytes):
        self.nonce = nonce
        self.buf = bytearray()
        self.synced = False

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        self.buf += data
        frames = []
        buf = self.buf
        pos = 0
        while True:
            if not self.synced:
                pos = self._scan(pos)
                if not self.synced:
                    break
            if len(buf) - pos < HDR_LEN:
                break
            h = parse_header(buf, pos)
            if h is None or h[3] > MAX_FROM_AGENT:
                raise ValueError("bad frame header from the agent")
            ftype, flags, chan, length = h
            if len(buf) - pos < HDR_LEN + length:
                break
            frames.append((ftype, flags, chan, bytes(buf[pos + HDR_LEN:pos + HDR_LEN + length])))
            pos += HDR_LEN + length
        del buf[:pos]
        return frames

    def _scan(self, pos: int) -> int:
        buf = self.buf
        while True:
            i = buf.find(MAGIC, pos)
            if i < 0:
                return max(pos, len(buf) - 1)
            if len(buf) - i < HDR_LEN:
                return i
            h = parse_header(buf, i)
            if h is None or h[0] != HELLO_ACK or h[3] > MAX_FROM_AGENT:
                pos = i + 1
                continue
            if len(buf) - i < HDR_LEN + h[3]:
                return i
            try:
                fields = parse_tlv(bytes(buf[i + HDR_LEN:i + HDR_LEN + h[3]]))
            except ValueError:
                fields = {}
            if fields.get(T_NONCE, [b""])[0] == self.nonce:
                self.synced = True
                return i
            pos = i + HDR_LEN + h[3]
