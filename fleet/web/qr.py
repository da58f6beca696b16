"""QR codes as SVG (the `qrcode` package): the enrolment code in the console and the
professional card's verification link. An SVG scales without blur on any screen or print."""
from __future__ import annotations

import base64


def qr_svg(text: str) -> str:
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return img.to_string(encoding="unicode")


def qr_data_url(text: str) -> str:
    """The QR code as a `data:` URL: an <img> the strict CSP allows (img-src 'self' data:),
    kept by the app for offline use."""
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(text).encode()).decode()
