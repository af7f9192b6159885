"""corral/api/websockets.py pieces that need no container: control messages and the fd pumps."""
import asyncio
import os

from aiohttp import WSMsgType

from corral.api.websockets import StreamSet, control_messages, pump_fd_to_ws, pump_ws_to_fd, window_size


class Msg:
    def __init__(self, type_, data):
        self.type, self.data = type_, data


class FakeWS:
    """The parts of aiohttp's WebSocketResponse the pumps use."""
    def __init__(self, incoming=()):
        self.incoming, self.sent = list(incoming), []

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.incoming:
            raise StopAsyncIteration
        return self.incoming.pop(0)

    async def send_bytes(self, data):
        self.sent.append(bytes(data))

    async def send_str(self, data):
        self.sent.append(data)


def test_window_size():
    assert window_size({"command": "window-resize", "args": {"width": "120", "height": "40"}}) == (120, 40)
    assert window_size({"command": "window-resize", "args": {}}) == (80, 24)
    assert window_size({"command": "window-resize", "args": {"width": "wide"}}) is None
    assert window_size({"command": "window-resize", "args": "x"}) is None
    assert window_size({"command": "signal", "signal": 15}) is None


async def test_control_messages_skip_what_is_not_a_json_object():
    ws = FakeWS([Msg(WSMsgType.TEXT, "not json"), Msg(WSMsgType.BINARY, b"{}"), Msg(WSMsgType.TEXT, "[1]"),
                 Msg(WSMsgType.TEXT, '{"command": "signal", "signal": 2}')])
    assert [m async for m in control_messages(ws)] == [{"command": "signal", "signal": 2}]


async def test_pumps_copy_both_ways_with_lxd_eof_marker():
    r, w = os.pipe()
    ws_in = FakeWS([Msg(WSMsgType.BINARY, b"abc"), Msg(WSMsgType.TEXT, "def"), Msg(WSMsgType.BINARY, b""),
                    Msg(WSMsgType.BINARY, b"after EOF: not written")])
    await pump_ws_to_fd(ws_in, w)
    os.close(w)
    ws_out = FakeWS()
    await pump_fd_to_ws(r, ws_out, eof_marker=True)
    os.close(r)
    assert b"".join(x for x in ws_out.sent if isinstance(x, bytes)) == b"abcdef"
    assert ws_out.sent[-1] == ""          # the empty text message: EOF


async def test_stream_set_secrets_and_connect_timeout():
    s = StreamSet(["0", "control"])
    assert set(s.fds()) == {"0", "control"} and len(set(s.fds().values())) == 2
    try:
        await s.wait_connected(0.05)
        raise AssertionError("waited for nothing")
    except Exception as e:
        assert getattr(e, "message", "") == "Timed out waiting for websockets to connect"
    await asyncio.sleep(0)
