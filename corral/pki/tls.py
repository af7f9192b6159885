"""The HTTPS listener's TLS context: TLS >= 1.2, client certificates requested but not required.

LXD accepts any client certificate at the TLS layer (self-signed ones included) and decides trust
per request from its fingerprint. Python's ssl module verifies presented client certificates
against a CA store and has no verify callback, so one is installed on the context's SSL_CTX
through ctypes (the same libssl Python's _ssl module is linked with): it accepts every chain,
and the handler then looks the fingerprint up in the trust store.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import ssl

SSL_VERIFY_PEER = 0x01
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CB
def _accept_any(_preverify_ok: int, _store_ctx: int) -> int:
    return 1


_libssl = None


def _ssl_lib():
    global _libssl
    if _libssl is None:
        import _ssl
        # dlopen of the module itself resolves symbols from its already loaded libssl.
        lib = ctypes.CDLL(_ssl.__file__)
        try:
            lib.SSL_CTX_set_verify
        except AttributeError:
            lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
        lib.SSL_CTX_set_verify.restype = None
        _libssl = lib
    return _libssl


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    # CPython's PySSLContext: PyObject_HEAD, then `SSL_CTX *ctx`.
    return ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    _ssl_lib().SSL_CTX_set_verify(_ssl_ctx_pointer(ctx), SSL_VERIFY_PEER, _accept_any)
    return ctx


def client_context(cert_file: str | None = None, key_file: str | None = None,
                   server_cert_pem: str | None = None) -> ssl.SSLContext:
    """A client context: our certificate, and the server pinned to exactly `server_cert_pem`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    if server_cert_pem:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags = ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.load_verify_locations(cadata=server_cert_pem)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_der(transport) -> bytes | None:
    """The DER client certificate of a TLS connection (None for plain or certificate-less ones)."""
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is None:
        return None
    try:
        return obj.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return None
