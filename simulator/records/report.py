"""A report per attempt: self-contained HTML and PDF.

    report = build_report(store, attempt_id, images={"fluoro_1": png_bytes})   # or report_from_recording(...)
    write_report(report, "attempt.html")   # or .pdf

Contents: who, which scenario, when; the score with pass or fail and the reasons (automatic fails
first, as the score card orders them); the score items (value, full-marks and zero thresholds,
points); Perk Tutor's core metrics and ours; the targets; plots (tip path in two projections,
tip-to-target distance and depth over time, `plots.py`); the key images (PNG: fluoroscopy shots,
the ultrasound frame at injection) stored with the attempt or given; the notable events.

HTML: one file, nothing external (plots are inline SVG, images data: URIs). PDF: Qt's
QTextDocument printed by QPdfWriter (plots rasterised from the same SVG with QtSvg). Qt needs a
GUI application: the one running is used; otherwise one is made (`headless=True`, as the
command line does, puts it on the offscreen platform without touching the environment).

`pdf_text(path)` extracts the text of a PDF written by Qt (Flate streams, Identity-H fonts with
ToUnicode maps), so tests and tools can read the score back from the file.
"""
from __future__ import annotations

import base64
import math
import re
import sys
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from simulator.core.events import format_time
from simulator.records.course_report import CourseSection, course_section
from simulator.records.plots import attempt_plots, svg, to_qimage

PERK_LABELS = (
    ("elapsed_time_s", "Elapsed time", "s"),
    ("path_length_mm", "Needle path length", "mm"),
    ("path_in_tissue_mm", "Needle path in tissue", "mm"),
    ("time_in_tissue_s", "Time in tissue", "s"),
    ("tissue_damage_mm2", "Potential tissue damage", "mm2"),
    ("tissue_punctures", "Tissue punctures", ""),
    ("translational_actions", "Needle translational actions", ""),
    ("rotational_actions", "Needle rotational actions", ""),
    ("probe_translational_actions", "Probe translational actions", ""),
    ("probe_rotational_actions", "Probe rotational actions", ""),
)
PLOT_W, PLOT_H = 520, 380
PDF_IMAGE_W = 200  # the PDF's key images, three a row (narrower when the text width asks for it)
PDF_MARGIN_MM = 15.0
PDF_CELL_PAD = 4  # the grid's cell padding (doc px)
QT_DOC_DPI = 96.0  # QTextDocument lays a printed page out at the screen's default 96 dpi


@dataclass
class AttemptReport:
    recording: object  # Recording
    card: dict | None  # the score card's JSON
    trainee: str = ""
    scenario_id: str = ""
    scenario_title: str = ""
    started_at: str = ""
    status: str = ""
    attempt_id: int | None = None
    uuid: str = ""
    images: dict[str, bytes] = field(default_factory=dict)
    course: object | None = None  # course_report.CourseSection (computed when the report is written)

    @property
    def score_text(self) -> str:
        """"87.5 / 100 - PASSED" (or "not scored")."""
        if not self.card:
            return "not scored"
        return f"{float(self.card['score']):.1f} / 100 - {'PASSED' if self.card.get('passed') else 'FAILED'}"


def build_report(store, attempt_id: int, images: dict[str, bytes] | None = None) -> AttemptReport:
    """The report of a stored attempt; `images` adds to (or replaces) the stored key images."""
    info = store.attempt(attempt_id)
    imgs = dict(store.images(attempt_id))
    imgs.update(images or {})
    return AttemptReport(recording=store.load_attempt(attempt_id), card=store.score_card(attempt_id),
                         trainee=info.trainee, scenario_id=info.scenario_id, scenario_title=info.scenario_title,
                         started_at=info.started_at, status=info.status, attempt_id=info.id, uuid=info.uuid,
                         images=imgs)


def report_from_recording(recording, card=None, *, images: dict[str, bytes] | None = None, scenario_title: str = "",
                          status: str = "") -> AttemptReport:
    """The report of an attempt in memory (not stored): its recording and score card."""
    cj = card.to_json() if hasattr(card, "to_json") else card
    return AttemptReport(recording=recording, card=cj, trainee=recording.trainee, scenario_id=recording.scenario_id,
                         scenario_title=scenario_title or recording.scenario_id, started_at=recording.started_at,
                         status=status, images=dict(images or {}))


# --------------------------------------------------------------------------------------------
# Content shared by HTML and PDF
# --------------------------------------------------------------------------------------------


def fmt_value(value, unit: str) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if unit == "mm2":
        return f"{v / 100.0:.1f} cm\u00b2"
    if unit == "":
        return f"{v:g}" if v.is_integer() else f"{v:.1f}"
    if unit == "Gy cm2":
        return f"{v:.2f} Gy\u00b7cm\u00b2"
    return f"{v:.1f} {unit}"


def _summary_rows(r: AttemptReport) -> list[tuple[str, str]]:
    rec = r.recording
    rows = [("Trainee", r.trainee or "-"), ("Scenario", f"{r.scenario_title} ({r.scenario_id})"),
            ("Scenario version", rec.scenario_version or "-"), ("Anatomy", rec.anatomy_ref or "-"),
            ("Started", r.started_at or rec.started_at or "-"), ("Duration", format_time(rec.duration_s)),
            ("Mode", rec.mode or "-")]
    if r.status:
        rows.append(("Status", r.status))
    if r.attempt_id is not None:
        rows.append(("Attempt", f"{r.attempt_id} ({r.uuid})"))
    rows.append(("Samples / events", f"{rec.n_samples} / {len(rec.events)}"))
    return rows


def _item_rows(card: dict) -> list[list[str]]:
    from simulator.core.scoring import LABELS

    rows = []
    for it in card.get("items", []):
        unit = LABELS.get(it["metric"], ("", ""))[1]
        if it.get("applicable"):
            rows.append([it["label"], fmt_value(it["value"], unit), fmt_value(it["good"], unit),
                         fmt_value(it["bad"], unit), f"{it['points']:.1f} / {it['share']:.1f}"])
        else:
            rows.append([it["label"], "n/a", fmt_value(it["good"], unit), fmt_value(it["bad"], unit),
                         "not applicable"])
    return rows


def _metric_rows(card: dict) -> list[list[str]]:
    from simulator.core.scoring import LABELS

    rows = []
    for key, value in card.get("metrics", {}).items():
        label, unit = LABELS.get(key, (key.replace("_", " "), ""))
        rows.append([label, fmt_value(value, unit)])
    return rows


def _perk_rows(card: dict) -> list[list[str]]:
    perk = card.get("perk", {})
    return [[label, fmt_value(perk.get(key), unit)] for key, label, unit in PERK_LABELS if key in perk]


def _target_rows(card: dict) -> list[list[str]]:
    rows = []
    for t in card.get("targets", []):
        rows.append([t.get("name", t.get("id", "")), fmt_value(t.get("final_distance_mm"), "mm"),
                     fmt_value(t.get("min_distance_mm"), "mm"), fmt_value(t.get("tolerance_mm"), "mm"),
                     "yes" if t.get("reached") else "no", f"{100.0 * float(t.get('coverage', 0.0)):.0f} %"])
    return rows


def _event_lines(r: AttemptReport) -> list[str]:
    from simulator.core.scoring import summarize_events

    return summarize_events(r.recording)


def _table(head: list[str] | None, rows: list[list[str]], cls: str = "") -> str:
    out = [f'<table class="{cls}" border="1" cellspacing="0" cellpadding="4">' if cls else
           '<table border="1" cellspacing="0" cellpadding="4">']
    if head:
        out.append("<tr>" + "".join(f"<th>{escape(h, quote=False)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(str(c), quote=False)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def image_caption(r: AttemptReport, name: str) -> str:
    """A key image's caption: its name, and for the k-th fluoroscopy image ("fluoro_k") the time
    and C-arm angles of the k-th exposure."""
    m = re.fullmatch(r"fluoro_(\d+)", name)
    if m:
        from simulator.core.events import EventKind

        shots = [e for e in r.recording.events if e.kind == EventKind.fluoro_shot]
        k = int(m.group(1))
        if 1 <= k <= len(shots):
            ev = shots[k - 1]
            bits = [f"fluoroscopy image {k}", format_time(ev.time_s)]
            lao, cran = ev.data.get("lao_deg"), ev.data.get("cranial_deg")
            if lao is not None and cran is not None:
                lao, cran = float(lao), float(cran)
                bits.append(f"{'LAO' if lao >= 0 else 'RAO'} {abs(lao):.0f}\u00b0 "
                            f"{'CRAN' if cran >= 0 else 'CAUD'} {abs(cran):.0f}\u00b0")
            return " \u00b7 ".join(bits)
    m = re.fullmatch(r"ultrasound_(.+?)(?:_\d+s)?", name)
    if m:
        return f"ultrasound at the {m.group(1).replace('_', ' ')} ({name})"
    return name


def _png_size(png: bytes) -> tuple[int, int] | None:
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return None


def _sections(r: AttemptReport, plot_html, image_html, grid) -> list[str]:
    """The body, as HTML fragments; `plot_html(index, plot)`, `image_html(name, png, caption)` and
    `grid(fragments, kind)` (the plots or the images side by side) differ by target."""
    card = r.card
    parts = [f"<h1>Attempt report: {escape(r.scenario_title or r.scenario_id, quote=False)}</h1>"]
    parts.append(_table(None, [[k, v] for k, v in _summary_rows(r)], "summary"))
    if card:
        ok = bool(card.get("passed"))
        colour = "#1b7a2e" if ok else "#b3261e"
        parts.append(f'<h2 style="color:{colour}">Score {float(card["score"]):.1f} / 100 &mdash; '
                     f'{"PASSED" if ok else "FAILED"}</h2>')
        parts.append(f"<p>Pass mark {float(card.get('pass_mark', 0)):g}. "
                     f"{len(card.get('automatic_fails', []))} automatic fail(s).</p>")
        parts.append("<h3>Reasons</h3><ul class=\"reasons\">" + "".join(
            f"<li>{escape(x, quote=False)}</li>" for x in card.get("reasons", [])) + "</ul>")
        parts.append("<h3>Score items</h3>" + _table(["item", "value", "full marks at", "none at", "points"],
                                                      _item_rows(card)))
        if card.get("targets"):
            parts.append("<h3>Targets</h3>" + _table(["target", "distance at injection", "closest", "tolerance",
                                                       "reached", "agent coverage"], _target_rows(card)))
        parts.append("<h3>Perk Tutor core metrics</h3>" + _table(["metric", "value"], _perk_rows(card)))
        parts.append("<h3>All metrics</h3>" + _table(["metric", "value"], _metric_rows(card)))
    else:
        parts.append("<h2>Not scored</h2><p>This attempt has no score card (it was recovered or abandoned "
                     "before it was scored; `records rescore` scores it).</p>")
    parts.append("<h3>Plots</h3>")
    parts.append(grid([plot_html(k, p) for k, p in enumerate(attempt_plots(r.recording))], "plots"))
    parts += _course_parts(r, plot_html)
    if r.images:
        parts.append('<h3 style="page-break-before: always">Key images</h3>')
        parts.append(grid([image_html(name, png, image_caption(r, name)) for name, png in r.images.items()],
                          "images"))
    lines = _event_lines(r)
    if lines:
        parts.append("<h3>Events</h3><ul class=\"events\">" + "".join(
            f"<li>{escape(x, quote=False)}</li>" for x in lines) + "</ul>")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts.append(f'<p class="foot">Neurolysis Trainer report, generated {stamp}.</p>')
    return parts


def _course_parts(r: AttemptReport, plot_html) -> list[str]:
    """The patient's course after the attempt (educational model) and the decisions."""
    if r.course is None:
        r.course = course_section(r.recording)
    sec: CourseSection = r.course
    out = ["<h3>The patient's course after the procedure</h3>",
           f'<p style="color:#b05a00"><b>{escape(sec.label, quote=False)}</b></p>',
           "<ul>" + "".join(f"<li>{escape(x, quote=False)}</li>" for x in sec.lines) + "</ul>"]
    if sec.plot is not None:
        out.append(plot_html("course", sec.plot))
    if sec.effects:
        out.append("<h3>Side effects and complications</h3>" + _table(
            ["effect", "kind", "likelihood after this attempt", "this patient", "figure"], sec.effects))
    if sec.decisions:
        out.append("<h3>Decisions</h3>" + _table(["decision", "chosen", "verdict", "why"], sec.decisions))
    if sec.assumptions:
        out.append(f"<p><small>{len(sec.assumptions)} assumptions (not published figures; for an instructor to "
                   "review): " + escape("; ".join(sec.assumptions), quote=False) + "</small></p>")
    return out


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 13px; color: #222; max-width: 1100px;
       margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 20px; } h3 { font-size: 15px; margin-top: 22px; }
table { border-collapse: collapse; margin: 6px 0; } th { background: #eef1f5; text-align: left; }
td, th { border: 1px solid #c8ccd2; padding: 3px 8px; }
table.summary td:first-child { font-weight: bold; background: #f6f7f9; }
.plots, .images { display: flex; flex-wrap: wrap; gap: 12px; }
figure { display: inline-block; margin: 6px 12px 6px 0; } figcaption { font-size: 12px; color: #555; }
figure img { width: 320px; max-width: 100%; border: 1px solid #ccc; }
.foot { color: #777; font-size: 11px; margin-top: 30px; }
"""


def render_html(r: AttemptReport) -> str:
    """The report as one self-contained HTML document."""
    def plot_html(k, p):
        w, h = (900, 460) if k == "course" else (PLOT_W, PLOT_H)
        return f'<div class="plot">{svg(p, w, h)}</div>'

    def image_html(name, png, caption):
        mime = "image/png" if _png_size(png) else "image/jpeg" if png[:2] == b"\xff\xd8" else "application/octet-stream"
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="data:{mime};base64,{data}" alt="{escape(name)}">'
                f"<figcaption>{escape(caption, quote=False)}</figcaption></figure>")

    def grid(fragments, kind):
        return f'<div class="{kind}">' + "\n".join(fragments) + "</div>"

    title = f"Attempt report - {r.trainee} - {r.scenario_title or r.scenario_id}"
    body = _sections(r, plot_html, image_html, grid)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title, quote=False)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(r: AttemptReport, path) -> Path:
    path = Path(path)
    path.write_text(render_html(r), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------

_APP = None


def _has_display() -> bool:
    from simulator.core.display import has_display

    return has_display()


def ensure_qt_app(headless: bool = False):
    """The running Qt application, or a new QApplication (offscreen when `headless` or when there is
    no display; the platform is passed as an argument, the environment is not changed)."""
    global _APP
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication

    app = QCoreApplication.instance()
    if app is not None:
        if not isinstance(app, QGuiApplication):
            raise RuntimeError("the PDF report needs a Qt GUI application, but a QCoreApplication is running")
        return app
    from PySide6.QtWidgets import QApplication

    args = ["neurolysis-report"]
    if headless or not _has_display():
        args += ["-platform", "offscreen"]
    _APP = QApplication(args)
    return _APP


def write_pdf(r: AttemptReport, path, headless: bool = False) -> Path:
    """The report as a PDF (A4). See the module notes about the Qt application."""
    ensure_qt_app(headless)
    from PySide6.QtCore import QMarginsF, QSizeF, QUrl
    from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    doc = QTextDocument()
    resources = []
    layout = QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                         QMarginsF(PDF_MARGIN_MM, PDF_MARGIN_MM, PDF_MARGIN_MM, PDF_MARGIN_MM), QPageLayout.Unit.Millimeter)
    paint = layout.paintRect(QPageLayout.Unit.Millimeter)
    text_w = paint.width() / 25.4 * QT_DOC_DPI  # the printable width in the document's pixels
    doc.setPageSize(QSizeF(text_w, paint.height() / 25.4 * QT_DOC_DPI))
    inner = text_w - 2 * doc.documentMargin() - 8  # a little room for borders and rounding
    plot_w = int((inner - 4 * PDF_CELL_PAD) / 2)  # two a row
    image_w = int(min(PDF_IMAGE_W, (inner - 6 * PDF_CELL_PAD) / 3))  # three a row

    def plot_html(k, p):
        name = f"plot{k}.png"
        w = int(inner) if k == "course" else plot_w  # the course plot takes the whole width
        h = int(PLOT_H * w / PLOT_W) if k != "course" else int(0.72 * w)
        img = to_qimage(svg(p, PLOT_W, int(PLOT_W * h / w)), PLOT_W, int(PLOT_W * h / w), scale=2.0)
        resources.append((name, img))
        return f'<img src="{name}" width="{w}" height="{h}">'

    def image_html(name, png, caption):
        img = QImage.fromData(png)
        if img.isNull():
            return f"{escape(caption, quote=False)}: (image could not be read)"
        key = f"image_{len(resources)}.png"
        resources.append((key, img))
        w = min(image_w, img.width())
        h = int(round(img.height() * w / max(1, img.width())))
        return f'<img src="{key}" width="{w}" height="{h}"><br><small>{escape(caption, quote=False)}</small>'

    def grid(fragments, kind):  # a table: QTextDocument has no flex layout
        cols = 2 if kind == "plots" else 3
        rows = ["<tr>" + "".join(f'<td valign="top">{f}</td>' for f in fragments[i:i + cols]) + "</tr>"
                for i in range(0, len(fragments), cols)]
        return f'<table border="0" cellspacing="0" cellpadding="{PDF_CELL_PAD}">' + "".join(rows) + "</table>"

    body = _sections(r, plot_html, image_html, grid)
    for name, img in resources:
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), img)
    style = ("body { font-family: 'DejaVu Sans'; font-size: 9pt; } h1 { font-size: 15pt; } h2 { font-size: 13pt; } "
             "h3 { font-size: 11pt; } th { background-color: #eef1f5; } .foot { color: #777777; }")
    doc.setDefaultStyleSheet(style)
    doc.setHtml("<html><body>" + "\n".join(body) + "</body></html>")
    path = Path(path)
    writer = QPdfWriter(str(path))
    writer.setPageLayout(layout)
    writer.setResolution(150)
    writer.setTitle(f"Attempt report: {r.scenario_title or r.scenario_id} - {r.trainee} - score {r.score_text}")
    writer.setCreator("Neurolysis Trainer")
    doc.print_(writer)
    del writer  # the file is complete once the writer is gone
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"{path}: the PDF could not be written")
    return path


def write_report(r: AttemptReport, path, headless: bool = False) -> Path:
    """HTML or PDF by the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in (".html", ".htm"):
        return write_html(r, path)
    if suffix == ".pdf":
        return write_pdf(r, path, headless=headless)
    raise ValueError(f"{path}: a report is .html or .pdf")


# --------------------------------------------------------------------------------------------
# Reading text back from a PDF (Qt's output)
# --------------------------------------------------------------------------------------------

_OBJ = re.compile(rb"(\d+)\s+0\s+obj\b")


def _objects(data: bytes) -> dict[int, bytes]:
    out = {}
    for m in _OBJ.finditer(data):
        end = data.find(b"endobj", m.end())
        if end < 0:
            continue
        out[int(m.group(1))] = data[m.end():end]
    return out


def _stream(body: bytes, objs: dict[int, bytes]) -> bytes | None:
    i = body.find(b"stream")
    if i < 0:
        return None
    head = body[:i]
    j = i + len(b"stream")
    if body[j:j + 2] == b"\r\n":
        j += 2
    elif body[j:j + 1] in (b"\n", b"\r"):
        j += 1
    m = re.search(rb"/Length\s+(\d+)(\s+0\s+R)?", head)
    if m and m.group(2):
        ref = objs.get(int(m.group(1)), b"").strip()
        length = int(ref.split()[0]) if ref[:1].isdigit() else None
    elif m:
        length = int(m.group(1))
    else:
        length = None
    raw = body[j:j + length] if length is not None else body[j:body.rfind(b"endstream")]
    if b"/FlateDecode" in head:
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return None
    return raw


def _cmap(text: bytes) -> dict[int, str]:
    out: dict[int, str] = {}

    def u(h: bytes) -> str:
        b = bytes.fromhex(h.decode())
        return b.decode("utf-16-be", errors="replace")

    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for a, b in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(a, 16)] = u(b)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for a, b, rest in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)", block):
            lo, hi = int(a, 16), int(b, 16)
            if rest.startswith(b"["):
                for k, h in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", rest)):
                    out[lo + k] = u(h)
            else:
                start = int(rest[1:-1], 16)
                for k in range(hi - lo + 1):
                    out[lo + k] = chr(start + k)
    return out


def pdf_text(path) -> str:
    """The text shown on the pages of a PDF written by Qt, one line per text object."""
    data = Path(path).read_bytes()
    if not data.startswith(b"%PDF"):
        raise ValueError(f"{path}: not a PDF file")
    objs = _objects(data)
    fonts: dict[int, dict[int, str]] = {}
    for num, body in objs.items():
        m = re.search(rb"/ToUnicode\s+(\d+)\s+0\s+R", body)
        if m and b"/Font" in body:
            s = _stream(objs.get(int(m.group(1)), b""), objs)
            fonts[num] = _cmap(s or b"")
    lines = []
    for num, body in objs.items():
        m = re.search(rb"/Resources\s+(\d+)\s+0\s+R", body)
        if not (b"/Type /Page" in body and b"/Pages" not in body.split(b"/Type /Page")[1][:6]):
            continue
        res = objs.get(int(m.group(1)), b"") if m else body
        names = {k.decode(): int(v) for k, v in re.findall(rb"/(F\d+)\s+(\d+)\s+0\s+R", res)}
        fontdict = re.search(rb"/Font\s+(\d+)\s+0\s+R", res)
        if fontdict:
            names.update({k.decode(): int(v) for k, v in
                          re.findall(rb"/(F\d+)\s+(\d+)\s+0\s+R", objs.get(int(fontdict.group(1)), b""))})
        for cm in re.findall(rb"/Contents\s+(\d+)\s+0\s+R", body):
            content = _stream(objs.get(int(cm), b""), objs) or b""
            cmap: dict[int, str] = {}
            for bt in re.findall(rb"BT(.*?)ET", content, re.S):
                text = []
                for tok in re.finditer(rb"/(F\d+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]+)>\s*Tj|\[(.*?)\]\s*TJ", bt, re.S):
                    if tok.group(1):
                        cmap = fonts.get(names.get(tok.group(1).decode(), -1), {})
                    else:
                        hexes = [tok.group(2)] if tok.group(2) else re.findall(rb"<([0-9A-Fa-f]+)>", tok.group(3))
                        for h in hexes:
                            for k in range(0, len(h), 4):
                                text.append(cmap.get(int(h[k:k + 4], 16), "?"))
                line = unicodedata.normalize("NFKC", "".join(text)).replace("\t", " ")
                if line.strip():
                    lines.append(line)
    return "\n".join(lines)
