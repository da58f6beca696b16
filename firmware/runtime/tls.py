"""TLS to the broker: a client context that verifies the broker against the provisioned CA.

The same code on the box (MicroPython >= 1.23, whose `ssl` module has SSLContext, and whose
asyncio.open_connection takes `ssl=<SSLContext>` and `server_hostname=<broker host>`, as
firmware/runtime/net.py passes them) and on CPython (the virtual reader, tools/sim/reader.py).
mbedTLS on the ESP32 and OpenSSL both then check the chain up to that CA and the broker's name
(a SAN of its certificate); a broker they cannot verify is never sent the box's password.
"""


def client_context(ca_pem):
    """An SSLContext trusting `ca_pem` (PEM text) only, requiring a verified broker. Raises
    ValueError (no ssl module, or a CA it cannot load)."""
    try:
        import ssl
    except ImportError:
        raise ValueError("this MicroPython has no ssl module: TLS is impossible")
    if not ca_pem:
        raise ValueError("no CA certificate: TLS needs the broker's CA")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if hasattr(ssl, "TLSVersion"):  # CPython; mbedTLS on the box offers TLS 1.2 and up
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=ca_pem)
    except Exception as e:  # ssl.SSLError on CPython, ValueError/OSError on MicroPython
        raise ValueError("cannot load the CA certificate: %s" % e)
    return ctx
