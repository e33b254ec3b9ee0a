"""Reports: self-contained HTML, a PDF that holds the score, and the plots' data."""
import re
import struct
import zlib
from html import escape

import numpy as np
import pytest

from simulator.core.events import EventKind
from simulator.core.procedure import Procedure, replay
from simulator.records.plots import attempt_plots, depth_below_skin, insertion_numbers, insertion_paths, nice_ticks, svg
from simulator.records.report import build_report, pdf_text, render_html, report_from_recording, write_report


def tiny_png(w: int = 3, h: int = 2) -> bytes:
    """A valid RGB PNG written by hand."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([200, 30, 30] * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def stored_novice(store, novice, scenario):
    aid = store.save_recording(novice[0].recording, novice[1], scenario=scenario, images={"fluoro_1": tiny_png()})
    return aid, novice[1]


def test_html_report_is_self_contained_with_score_reasons_metrics_and_plots(tmp_path, store, stored_novice):
    aid, card = stored_novice
    path = write_report(build_report(store, aid, images={"us_at_injection": tiny_png(4, 4)}), tmp_path / "r.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert f"Score {card.score:.1f} / 100" in html and "FAILED" in html
    for reason in card.reasons:
        assert escape(reason, quote=False) in html, reason
    assert "aorta punctured at 00:06 - automatic fail" in html
    for label in ("Perk Tutor core metrics", "Potential tissue damage", "Score items", "Targets", "Events"):
        assert label in html, label
    assert html.count("<svg") == 4
    for title in ("Tip path, axial", "Tip path, sagittal", "Tip-to-target distance", "Tip depth below the skin"):
        assert title in html, title
    assert html.count('src="data:image/png;base64,') == 2 and "fluoro_1" in html and "us_at_injection" in html
    assert not re.search(r'(src|href)="(https?:|file:|/)', html)  # nothing external


def test_pdf_report_holds_the_score(qapp, tmp_path, store, stored_novice):
    aid, card = stored_novice
    path = write_report(build_report(store, aid), tmp_path / "r.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    text = pdf_text(path)
    assert f"Score {card.score:.1f} / 100" in text and "FAILED" in text
    assert "aorta punctured at 00:06 - automatic fail" in text
    assert "Perk Tutor core metrics" in text and "ann" in text
    assert len(re.findall(rb"/Subtype\s*/Image", data)) >= 5  # four plots and the key image


def test_report_of_an_unstored_attempt(tmp_path, expert):
    proc, card = expert
    r = report_from_recording(proc.recording, card, scenario_title="Celiac block", images={"x": tiny_png()})
    html = render_html(r)
    assert f"Score {card.score:.1f} / 100" in html and "PASSED" in html and "Celiac block" in html
    assert r.score_text == f"{card.score:.1f} / 100 - PASSED"
    unscored = render_html(report_from_recording(proc.recording, None))
    assert "Not scored" in unscored and unscored.count("<svg") == 4
    with pytest.raises(ValueError, match="r.txt: a report is .html or .pdf"):
        write_report(r, tmp_path / "r.txt")


def test_depth_plot_data_equals_the_needle_depth(scenario, block):
    """Depth below the skin along the needle, from the events only, equals the procedure's own."""
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    proc.set_entry([-40.0, -70.0, 0.0], [0.0, 1.0, 0.0], time_s=1.0)
    depths = []
    for k in range(8):
        proc.advance(4.0, time_s=2.0 + k)
        depths.append(proc.state.depth_mm)
    proc.withdraw(time_s=20.0)  # out to the skin ...
    proc.withdraw(10.0, time_s=21.0)  # ... and out of it
    d = depth_below_skin(proc.recording)
    assert d[0] == 0.0
    assert np.allclose(d[1:9], depths, atol=1e-9)
    assert np.allclose(d[1:9], 4.0 * np.arange(1, 9) - 0.5, atol=1e-9)  # the tip starts 0.5 mm above the skin
    assert d[-1] == 0.0
    assert any(e.kind == EventKind.needle_out for e in proc.events)


def test_plots_of_an_attempt(expert):
    proc, card = expert
    plots = attempt_plots(proc.recording)
    assert [p.title for p in plots] == ["Tip path, axial (from the feet)", "Tip path, sagittal (from the left)",
                                        "Tip-to-target distance", "Tip depth below the skin"]
    axial = plots[0]
    assert axial.equal_aspect and axial.flip_x
    path = axial.series[0]
    tips = proc.recording.samples.needle_tip_to_world[:, :3, 3]
    inside = insertion_numbers(proc.recording) > 0
    ok = np.isfinite(path.x)
    # rests collapsed; the tip before the skin puncture (aiming on the skin) is not part of a path
    assert set(map(tuple, np.c_[path.x[ok], path.y[ok]])) == set(map(tuple, tips[inside][:, :2]))
    target = [s for s in axial.series if s.label.startswith("target")][0]
    assert (target.x[0], target.y[0]) == (-32.0, 30.0)
    dist = plots[2]
    assert dist.series[0].y[-1] == pytest.approx(card.targets[0]["final_distance_mm"], abs=1e-9)
    assert dist.hlines[0].y == 5.0
    assert sum(1 for v in dist.vlines if v.group == "injection") == 3
    doc = svg(dist)
    assert doc.startswith("<svg") and doc.count("<polyline") == 1 and "tolerance 5 mm" in doc


def test_nice_ticks():
    assert nice_ticks(0.0, 100.0, 5) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert nice_ticks(-72.3, 31.0, 5) == [-50.0, -25.0, 0.0, 25.0]
    assert nice_ticks(0.0, 1.0, 4) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_report_of_an_attempt_without_samples():
    from simulator.core.recording import Recording

    html = render_html(report_from_recording(Recording(scenario_id="empty"), None))
    assert "Not scored" in html and html.count("the needle was never placed") == 2 and html.count("<svg") == 4


def grey_png(w: int, h: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([(x * 255) // w for x in range(w)]) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_key_images_are_captioned_with_the_exposure_and_laid_out_three_a_row(qapp, tmp_path, scenario, block):
    """Fluoroscopy images named as the trainer keeps them (fluoro_01 ...) are captioned with the
    time and C-arm angles of that exposure; the ultrasound frame says which injection; the PDF puts
    three images a row (nine 400-pixel images take one page more than none, not nine)."""
    from simulator.core.scoring import score_attempt
    from simulator.records.report import image_caption, pdf_text

    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="ann")
    for k in range(9):
        proc.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.1, lao_deg=-20.0 if k % 2 else 30.0, cranial_deg=5.0,
                                time_s=2.0 + k)
    card = score_attempt(proc.recording, scenario, block)
    images = {f"fluoro_{k + 1:02d}": grey_png(400, 400) for k in range(9)}
    images["ultrasound_test_dose_12s"] = grey_png(400, 300)
    r = report_from_recording(proc.recording, card, images=images)
    assert image_caption(r, "fluoro_01") == "fluoroscopy image 1 \u00b7 00:02 \u00b7 LAO 30\u00b0 CRAN 5\u00b0"
    assert image_caption(r, "fluoro_02") == "fluoroscopy image 2 \u00b7 00:03 \u00b7 RAO 20\u00b0 CRAN 5\u00b0"
    assert image_caption(r, "fluoro_10") == "fluoro_10"  # no tenth exposure: the name only
    assert image_caption(r, "ultrasound_test_dose_12s").startswith("ultrasound at the test dose")
    html = render_html(r)
    assert "fluoroscopy image 9 \u00b7 00:10 \u00b7 LAO 30\u00b0 CRAN 5\u00b0" in html
    with_images = write_report(r, tmp_path / "with.pdf")
    without = write_report(report_from_recording(proc.recording, card), tmp_path / "without.pdf")

    def pages(path):
        return len(re.findall(rb"/Type\s*/Page(?!s)", path.read_bytes()))

    assert pages(with_images) - pages(without) <= 2, (pages(with_images), pages(without))
    text = pdf_text(with_images)
    assert "fluoroscopy image 9" in text and "ultrasound at the test dose" in text


def test_the_tip_path_breaks_between_insertions(scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    proc.set_entry([-56.0, -75.0, 0.0], [0.0, 1.0, 0.0], time_s=1.0)
    proc.advance(30.0, time_s=2.0)
    proc.withdraw(time_s=3.0)  # out of the skin
    proc.set_entry([-30.0, -75.0, 10.0], [0.0, 1.0, 0.0], time_s=4.0)
    proc.advance(30.0, time_s=5.0)
    path = insertion_paths(proc.recording)
    gaps = np.nonzero(~np.isfinite(path[:, 0]))[0]
    assert len(gaps) == 1 and 0 < gaps[0] < len(path) - 1
    first, second = path[: gaps[0]], path[gaps[0] + 1:]
    assert np.allclose(first[:, 0], -56.0) and np.allclose(second[:, 0], -30.0)  # no point of one pass in the other
    axial = attempt_plots(proc.recording)[0]
    assert svg(axial).count("<polyline") == 2  # two runs, no line across the skin


def test_pdf_pages_fit_the_printable_area(qapp, tmp_path, expert, scenario, block):
    """Render every page (pdfium) and check that nothing is drawn in the 15 mm margins."""
    import pypdfium2 as pdfium

    from simulator.core.scenario_model import Scenario
    from simulator.records.course_report import course_section

    proc, card = expert
    sc = Scenario.model_validate({**scenario.model_dump(mode="json"),
                                  "outcome": {"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]}})
    rec = replay(proc.recording, sc, block).recording  # the injections with their celiac quadrants
    r = report_from_recording(rec, card, images={"fluoro_1": tiny_png(400, 300), "fluoro_2": tiny_png(400, 300),
                                                             "fluoro_3": tiny_png(400, 300), "fluoro_4": tiny_png(400, 300)})
    r.course = course_section(rec, sc)
    assert r.course.available and r.course.plot is not None
    path = write_report(r, tmp_path / "r.pdf")
    assert "The patient's course after the procedure" in pdf_text(path)
    pdf = pdfium.PdfDocument(str(path))
    try:
        assert len(pdf) >= 3
        for i in range(len(pdf)):
            page = np.asarray(pdf[i].render(scale=1.0).to_pil().convert("L"))
            h, w = page.shape
            m = int(15.0 / 25.4 * 72.0) - 3  # the margin in points, less a little anti-aliasing
            for name, strip in (("left", page[:, :m]), ("right", page[:, w - m:]), ("top", page[:m]),
                                ("bottom", page[h - m:])):
                assert strip.min() >= 250, f"page {i + 1}: something is drawn in the {name} margin"
            assert page[m:h - m, m:w - m].min() < 128  # and the page is not empty
    finally:
        pdf.close()
