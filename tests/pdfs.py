"""PDFs made in the test, with pypdf alone: one text line per page, in a standard font."""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

_HELVETICA = DictionaryObject({
    NameObject("/Type"): NameObject("/Font"),
    NameObject("/Subtype"): NameObject("/Type1"),
    NameObject("/BaseFont"): NameObject("/Helvetica"),
})


def make_pdf(pages: list[str | None], *, title: str = "", author: str = "",
             created: str = "", user_password: str | None = None) -> bytes:
    """A PDF whose pages show these lines; ``None`` is a page with no text layer."""
    writer = PdfWriter()
    for line in pages:
        page = writer.add_blank_page(width=612, height=792)
        if line is None:
            continue
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page.replace_contents(content)
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): _HELVETICA})})
    info = {key: value for key, value in
            (("/Title", title), ("/Author", author), ("/CreationDate", created)) if value}
    if info:
        writer.add_metadata(info)
    if user_password is not None:  # "" encrypts with an owner password only: opens without one
        writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
