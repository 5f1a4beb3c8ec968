#!/usr/bin/env python3
"""Build the demo page (index.html) from the output of `chip explain --json`, `chip eval-loc --json` and
`chip eval --json`.

Standard library only. Each photo gets its top-3 classes, the CHIP map of the deepest fitted layer,
the Refined CHIP map and the shallow layer's map (overlays written by `chip explain`, predicted box
in white), with ground-truth boxes drawn over them (dashed red) when known.
"""
import argparse
import html
import json
import os


def load_gt(path, prefix):
    """Ground-truth entries keyed by the photo's path relative to the images root."""
    out = {}
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for e in json.load(f):
            out.setdefault(prefix + e["file"], []).append(e)
    return out


def rel_key(path, images_root):
    p = os.path.normpath(os.path.abspath(path))
    r = os.path.normpath(os.path.abspath(images_root))
    return os.path.relpath(p, r) if p.startswith(r + os.sep) else os.path.basename(p)


def box_divs(boxes, width, height, css_class, title):
    divs = []
    for x1, y1, x2, y2 in boxes:
        style = "left:%.3f%%;top:%.3f%%;width:%.3f%%;height:%.3f%%" % (
            100.0 * x1 / width, 100.0 * y1 / height,
            100.0 * (x2 - x1 + 1) / width, 100.0 * (y2 - y1 + 1) / height)
        divs.append('<div class="%s" style="%s" title="%s"></div>' % (css_class, style, html.escape(title)))
    return "".join(divs)


def figure(img_rel, caption, gt_html):
    return ('<figure><div class="pic"><img src="%s" loading="lazy">%s</div><figcaption>%s</figcaption></figure>'
            % (html.escape(img_rel), gt_html, caption))


def fmt_box(b):
    # No box is [-1, -1, -1, -1] (older files: null).
    return "none" if b is None or b[0] < 0 else "(%d, %d, %d, %d)" % tuple(b)


def report_table(title, ev):
    if not ev:
        return ""
    rows = []
    for name, r in ev["reports"].items():
        rows.append("<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td></tr>" % (
            html.escape(name), r["images"], r["best_threshold"], r["gt_known_accuracy"], r["top1_accuracy"],
            r["mean_iou"], r["pointing_game"]))
    return ("<h2>%s</h2><table><tr><th>map</th><th>images</th><th>best threshold</th><th>GT-known loc. acc.</th>"
            "<th>top-1 loc. acc.</th><th>mean IoU</th><th>pointing game</th></tr>%s</table>" % (html.escape(title), "".join(rows)))


QUALITY_COLUMNS = [
    ("gt_known_loc", "GT-known loc. &uarr;"), ("pointing", "pointing &uarr;"), ("energy_in_box", "energy in box &uarr;"),
    ("grid_share", "mosaic tile share &uarr;"), ("deletion_auc", "deletion AUC &darr;"), ("insertion_auc", "insertion AUC &uarr;"),
]


def quality_table(title, ev):
    """The three-axis table of `chip eval --json`: mean [95% interval], and the paired difference to the reference."""
    cols = [(k, n) for k, n in QUALITY_COLUMNS if any(m["metrics"].get(k) for m in ev["methods"])]
    head = "".join("<th>%s</th>" % n for _, n in cols)
    rows = []
    for m in ev["methods"]:
        cells = []
        for k, _ in cols:
            f = m["metrics"].get(k)
            if not f:
                cells.append("<td>-</td>")
                continue
            v, d = f["value"], f.get("vs_reference")
            txt = "%.3f <small>[%.3f, %.3f]</small>" % (v["mean"], v["low"], v["high"])
            if d:
                txt += "<br><small>&Delta; %+.3f [%+.3f, %+.3f]</small>" % (d["mean"], d["low"], d["high"])
            cells.append("<td>%s</td>" % txt)
        rows.append("<tr><td>%s</td>%s</tr>" % (html.escape(m["method"]), "".join(cells)))
    u = ev["units"]
    note = ("%d ground-truth entries, %d mosaic tiles, %d photos for deletion/insertion; 95%% bootstrap intervals; "
            "&Delta;: paired difference to %s" % (u["gt_entries"], u["mosaic_tiles"], u["faithfulness_photos"], html.escape(str(ev["reference"]))))
    return "<h2>%s</h2><table><tr><th>method</th>%s</tr>%s</table><p>%s</p>" % (html.escape(title), head, "".join(rows), note)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--explain", required=True, help="JSON lines from chip explain --json")
    ap.add_argument("--out", required=True, help="folder of index.html")
    ap.add_argument("--images-root", required=True, help="folder the ground-truth paths are relative to")
    ap.add_argument("--gt", action="append", default=[], help="PREFIX=GT.json (prefix added to the file names)")
    ap.add_argument("--eval", action="append", default=[], help="PREFIX=TITLE=EVAL.json from chip eval-loc --json")
    ap.add_argument("--quality", action="append", default=[], help="TITLE=EVAL.json from chip eval --json")
    ap.add_argument("--title", default="CHIP explanations")
    ap.add_argument("--note", default="")
    a = ap.parse_args()

    gt = {}
    for spec in a.gt:
        prefix, _, path = spec.partition("=")
        for k, v in load_gt(path, prefix).items():
            gt.setdefault(k, []).extend(v)
    evals = []
    iou_by_file = {}
    for spec in a.eval:
        prefix, title, path = spec.split("=", 2)
        with open(path) as f:
            ev = json.load(f)
        evals.append((title, ev))
        for item in ev["images"]:
            iou_by_file.setdefault((prefix + item["file"], item["class"]), {}).update(item["iou"])

    quality = []
    for spec in a.quality:
        title, path = spec.split("=", 1)
        with open(path) as f:
            quality.append(quality_table(title, json.load(f)))

    cards = []
    with open(a.explain) as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        key = rel_key(rec["file"], a.images_root)
        w, h = rec["width"], rec["height"]
        top = "".join("<li>%s <span class=p>%.1f%%</span></li>" % (html.escape(t["label"]), 100 * t["probability"])
                      for t in rec["top"][:3])
        entries = gt.get(key, [])
        figs = []
        for c in rec["classes"]:
            same = [e for e in entries if e.get("class") == c["class"]]
            shown = same or entries
            gt_html = "".join(box_divs(e["boxes"], w, h, "gt", "ground truth: %s" % e.get("class_name", e.get("class")))
                              for e in shown)
            layers = c["layers"]
            deep, shallow = layers[-1], layers[0]
            figs.append(figure(os.path.relpath(deep["overlay"], a.out),
                               "CHIP (%s) for <b>%s</b>, box %s" % (html.escape(deep["layer"]), html.escape(c["label"]), fmt_box(deep["box"])),
                               gt_html))
            if c.get("refined"):
                r = c["refined"]
                figs.append(figure(os.path.relpath(r["overlay"], a.out),
                                   "Refined CHIP (first &times; last layer), box %s" % fmt_box(r["box"]), gt_html))
            if len(layers) > 1:
                figs.append(figure(os.path.relpath(shallow["overlay"], a.out),
                                   "CHIP (%s), box %s" % (html.escape(shallow["layer"]), fmt_box(shallow["box"])), gt_html))
        gt_note = ""
        if entries:
            parts = []
            for e in entries:
                ious = iou_by_file.get((key, e.get("class")), {})
                iou_txt = ", ".join("%s IoU %.2f" % (html.escape(k), v) for k, v in ious.items())
                parts.append("%s%s" % (html.escape(str(e.get("class_name", e.get("class")))), (" (" + iou_txt + ")") if iou_txt else ""))
            gt_note = "<p class=gtnote>ground truth (dashed red), with the IoU of each map of that class: %s</p>" % "; ".join(parts)
        cards.append('<section class="card"><h3>%s <small>%d&times;%d</small></h3><ol class="top">%s</ol>%s<div class="figs">%s</div></section>'
                     % (html.escape(key), w, h, top, gt_note, "".join(figs)))

    page = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }
table { border-collapse: collapse; margin-bottom: 16px; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px; margin: 16px 0; }
.card h3 { margin: 0 0 6px 0; } .card small { color: #777; font-weight: normal; }
.top { margin: 0 0 6px 0; padding-left: 20px; } .p { color: #777; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 360px; } figcaption { font-size: 12px; color: #444; word-break: break-all; }
.pic { position: relative; } .pic img { width: 100%%; display: block; }
.gt { position: absolute; border: 2px dashed #ff3030; box-sizing: border-box; pointer-events: none; }
.gtnote { margin: 0 0 8px 0; color: #a00; }
</style></head><body>
<h1>%(title)s</h1>
<p>%(note)s</p>
<p>Maps use the viridis colour map (bright = important); the white box is the largest connected region above the
localization threshold; dashed red boxes are ground truth.</p>
%(tables)s
%(cards)s
</body></html>
""" % {"title": html.escape(a.title), "note": a.note, "tables": "".join(quality) + "".join(report_table(t, e) for t, e in evals),
       "cards": "\n".join(cards)}
    path = os.path.join(a.out, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(page)
    os.replace(tmp, path)
    print(path)


if __name__ == "__main__":
    main()
