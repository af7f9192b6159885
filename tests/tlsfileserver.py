"""A static file server for the simplestreams tests and bench: Python's http.server over TLS (the lxc
client accepts only https:// simplestreams remotes), optionally sending at most --rate bytes a second
(so a test can kill it in the middle of a transfer).

    python3 tlsfileserver.py --port P --dir D --cert C --key K [--rate N]
"""
from __future__ import annotations

import argparse
import functools
import http.server
import ssl
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    rate = 0

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if not self.rate:
            return super().copyfile(source, outputfile)
        chunk = max(self.rate // 20, 1 << 14)
        while data := source.read(chunk):
            outputfile.write(data)
            time.sleep(len(data) / self.rate)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--rate", type=int, default=0)
    a = ap.parse_args()
    Handler.rate = a.rate
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), functools.partial(Handler, directory=a.dir))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
