"""The contact sheet of a batch: a labelled grid image (contents as rows, styles or swept values as
columns) and an HTML page of the results. Both are built from manifest records; the caller writes them.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

SHEET_NAME = "contact-sheet.png"
PAGE_NAME = "index.html"
LABEL_H = 18
PAD = 6


def _axes(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    rows: list[str] = []
    cols: list[str] = []
    for r in records:
        if r["row"] not in rows:
            rows.append(r["row"])
        if r["column"] not in cols:
            cols.append(r["column"])
    return rows, cols


def _thumb(path: Path, cell: int) -> Image.Image | None:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = cell / max(img.size)  # small results are enlarged too: the sheet is for looking
            return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    except (OSError, ValueError):
        return None


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def contact_sheet(records: Sequence[Mapping[str, Any]], folder: Path, *, cell: int = 160) -> Image.Image:
    """The grid of the batch's results so far, ``cell`` px per image; a cell not yet done is empty (with
    its ``note``, if any), a failed one grey with "failed". ``records`` are manifest records (``row``, ``column``, ``output``,
    ``status``); images are read from ``folder``."""
    rows, cols = _axes(records)
    by_cell = {(r["row"], r["column"]): r for r in records}
    font = ImageFont.load_default()
    head_w = cell // 2 + 2 * PAD
    width = head_w + len(cols) * (cell + PAD) + PAD
    height = LABEL_H * 2 + PAD + len(rows) * (cell + LABEL_H + PAD)
    sheet = Image.new("RGB", (max(width, 1), max(height, 1)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, col in enumerate(cols):
        x = head_w + j * (cell + PAD)
        draw.text((x, PAD), _fit(draw, col, cell, font), fill="black", font=font)
    for i, row in enumerate(rows):
        y = LABEL_H * 2 + i * (cell + LABEL_H + PAD)
        draw.text((PAD, y + cell // 2), _fit(draw, row, head_w - PAD, font), fill="black", font=font)
        for j, col in enumerate(cols):
            x = head_w + j * (cell + PAD)
            record = by_cell.get((row, col))
            if record is None:
                continue
            if record.get("status") == "done" and (img := _thumb(folder / record["output"], cell)) is not None:
                sheet.paste(img, (x + (cell - img.width) // 2, y + (cell - img.height) // 2))
                note = f"{record.get('seconds', 0):.1f} s"
            elif record.get("status") not in ("done", "failed"):  # still to come (the studio's grid)
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(200, 200, 200))
                note = _fit(draw, str(record.get("note", "")), cell, font)
            else:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(200, 200, 200))
                draw.text((x + PAD, y + cell // 2), "failed", fill=(150, 0, 0), font=font)
                note = _fit(draw, str(record.get("error", "")), cell, font)
            draw.text((x, y + cell + 2), note, fill=(90, 90, 90), font=font)
    return sheet


def contact_page(records: Sequence[Mapping[str, Any]], title: str = "painterly batch") -> str:
    """An HTML page of the results (images linked by relative name; it lives in the output folder)."""
    rows, cols = _axes(records)
    by_cell = {(r["row"], r["column"]): r for r in records}
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif}}td{{vertical-align:top;padding:4px}}"
        "img{max-width:256px;max-height:256px}.failed{color:#900}small{color:#666}</style></head><body>",
        f"<h1>{e(title)}</h1><p><a href='{SHEET_NAME}'>contact sheet</a> · <a href='manifest.jsonl'>manifest.jsonl</a></p>",
        "<table><tr><th></th>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>",
    ]
    for row in rows:
        out.append(f"<tr><th>{e(row)}</th>")
        for col in cols:
            r = by_cell.get((row, col))
            if r is None:
                out.append("<td>…</td>")
            elif r.get("status") == "done":
                losses = ", ".join(f"{k} {v:.3g}" for k, v in r.get("losses", {}).items())
                out.append(
                    f"<td><a href='{e(r['output'])}'><img src='{e(r['output'])}' alt='{e(r['output'])}'></a><br>"
                    f"<small>{e(r['output'])}<br>seed {r.get('seed')} · {r.get('seconds', 0):.1f} s<br>{e(losses)}</small></td>"
                )
            else:
                out.append(f"<td class='failed'>failed: {e(str(r.get('error', '')))}</td>")
        out.append("</tr>")
    out.append("</table></body></html>\n")
    return "\n".join(out)
