"""The printable side of a credential: its verification link, its QR code and
its PDF certificate. Plain functions, no Flask: the web layer, the CLI and the
tests call them alike.

The QR code encodes the absolute URL of the public verification page,
`<public base>/v/<id>`, so a phone camera opens the check directly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M

# Unicode TrueType fonts for names outside Latin-1 (Debian's fonts-dejavu-core);
# the PDF falls back to the built-in Helvetica/Times when they are missing.
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
_FONTS = {"serif": "DejaVuSerif.ttf", "serif-bold": "DejaVuSerif-Bold.ttf",
          "sans": "DejaVuSans.ttf", "sans-bold": "DejaVuSans-Bold.ttf"}
_FALLBACK = {"serif": "Times-Roman", "serif-bold": "Times-Bold",
             "sans": "Helvetica", "sans-bold": "Helvetica-Bold"}


def short_id(credential_id: str) -> str:
    """`urn:uuid:1234…` → `1234…` (what the `/v/<id>` link carries)."""
    return credential_id.removeprefix("urn:uuid:")


def verify_url(public_base: str, credential_id: str) -> str:
    """The absolute URL of the public verification page for one credential."""
    return f"{public_base.rstrip('/')}/v/{quote(short_id(credential_id), safe='')}"


def qr_image(data: str, box_size: int = 8, border: int = 4):
    """The QR code of `data` as a PIL image (black on white, level M)."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    qr.add_data(data)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image()


def qr_png(data: str, box_size: int = 8, border: int = 4) -> bytes:
    """The QR code of `data` as PNG bytes."""
    buf = io.BytesIO()
    qr_image(data, box_size, border).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Certificate:
    """What a certificate shows; built from a stored credential by the caller."""

    institution: str
    holder: str
    achievement: str
    achievement_type: str
    awarded_on: date | datetime | str
    credential_id: str
    verify_url: str
    description: str = ""
    grade: str | None = None
    valid_until: date | datetime | str | None = None
    revoked: bool = False
    revocation_reason: str | None = None


def human_date(value: date | datetime | str | None) -> str:
    """`2026-06-30` → `30 June 2026` (a string that is not ISO passes through)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    return f"{value.day} {value.strftime('%B %Y')}"


def split_type(achievement_type: str) -> str:
    """`BachelorDegree` → `Bachelor Degree`; `ext:Foo` → `Foo`."""
    name = achievement_type.removeprefix("ext:")
    out = []
    for i, ch in enumerate(name):
        if i and ch.isupper() and not name[i - 1].isupper():
            out.append(" ")
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1)
def _fonts() -> dict[str, str]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    chosen = dict(_FALLBACK)
    for folder in _FONT_DIRS:
        if all((folder / f).exists() for f in _FONTS.values()):
            for role, filename in _FONTS.items():
                name = f"Attest-{role}"
                pdfmetrics.registerFont(TTFont(name, str(folder / filename)))
                chosen[role] = name
            break
    return chosen


def _fit(canvas, text: str, font: str, size: float, max_width: float, min_size: float = 9) -> float:
    """The largest font size <= `size` at which `text` fits `max_width`."""
    while size > min_size and canvas.stringWidth(text, font, size) > max_width:
        size -= 0.5
    return size


def certificate_pdf(cert: Certificate) -> bytes:
    """An A4 landscape PDF certificate with the QR code of the verify link."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas as pdfcanvas

    fonts = _fonts()
    width, height = landscape(A4)
    buf = io.BytesIO()
    c = pdfcanvas.Canvas(buf, pagesize=(width, height))
    c.setTitle(f"{cert.achievement} - {cert.holder}")
    c.setAuthor(cert.institution)
    c.setSubject(f"Credential {cert.credential_id}")

    navy = colors.HexColor("#1f4e8c")
    ink = colors.HexColor("#1d2433")
    muted = colors.HexColor("#5b6475")
    c.setStrokeColor(navy)
    c.setLineWidth(3)
    c.rect(12 * mm, 12 * mm, width - 24 * mm, height - 24 * mm)
    c.setLineWidth(0.8)
    c.rect(15 * mm, 15 * mm, width - 30 * mm, height - 30 * mm)

    cx = width / 2
    usable = width - 60 * mm

    def centred(text: str, y: float, font: str, size: float, color, fit: bool = False) -> None:
        """One centred line; `fit` shrinks a long name to the usable width."""
        c.setFillColor(color)
        c.setFont(fonts[font], _fit(c, text, fonts[font], size, usable) if fit else size)
        c.drawCentredString(cx, y, text)

    centred(cert.institution, height - 42 * mm, "serif-bold", 26, navy, fit=True)
    centred("This is to certify that", height - 58 * mm, "sans", 13, muted)
    centred(cert.holder, height - 75 * mm, "serif-bold", 34, ink, fit=True)
    centred(f"has been awarded the {split_type(cert.achievement_type)}", height - 89 * mm, "sans", 13, muted)
    centred(cert.achievement, height - 103 * mm, "serif-bold", 24, navy, fit=True)
    line = f"Awarded {human_date(cert.awarded_on)}"
    if cert.grade:
        line += f"  ·  {cert.grade}"
    if cert.valid_until:
        line += f"  ·  valid until {human_date(cert.valid_until)}"
    centred(line, height - 116 * mm, "sans", 12, ink)

    # The QR code and the verification line, bottom left.
    qr_size = 42 * mm
    qr_x, qr_y = 24 * mm, 22 * mm
    c.drawImage(ImageReader(qr_image(cert.verify_url, box_size=10)), qr_x, qr_y, qr_size, qr_size)
    text_x = qr_x + qr_size + 6 * mm
    c.setFillColor(ink)
    c.setFont(fonts["sans-bold"], 10)
    c.drawString(text_x, qr_y + 30 * mm, "Verify this credential")
    c.setFont(fonts["sans"], 9)
    c.setFillColor(muted)
    c.drawString(text_x, qr_y + 25 * mm, "Scan the code, or open:")
    c.setFillColor(navy)
    c.drawString(text_x, qr_y + 20 * mm, cert.verify_url)
    c.setFillColor(muted)
    c.drawString(text_x, qr_y + 13 * mm, f"Credential id: {cert.credential_id}")
    c.drawString(text_x, qr_y + 8 * mm,
                 "Signed by the issuer and anchored on an EVM chain; anyone can check it.")

    if cert.revoked:
        c.saveState()
        c.setFillColor(colors.Color(0.71, 0.14, 0.09, alpha=0.45))
        c.setStrokeColor(colors.Color(0.71, 0.14, 0.09, alpha=0.45))
        c.translate(cx, height / 2)
        c.rotate(18)
        c.setFont(fonts["sans-bold"], 84)
        c.drawCentredString(0, -20, "REVOKED")
        c.restoreState()
        if cert.revocation_reason:
            c.setFillColor(colors.HexColor("#b42318"))
            c.setFont(fonts["sans-bold"], 11)
            reason = f"Revoked: {cert.revocation_reason}"
            c.setFont(fonts["sans-bold"], _fit(c, reason, fonts["sans-bold"], 11, usable))
            c.drawCentredString(cx, height - 126 * mm, reason)

    c.showPage()
    c.save()
    return buf.getvalue()
