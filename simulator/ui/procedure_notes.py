"""What the procedure panel says about what the syringe and the contrast show, in a physician's
words (the aspirate's colour and text, the contrast pattern)."""
from __future__ import annotations

ASPIRATION_STYLE = {
    "blood": ("Blood in the syringe", "#ff4040"),
    "csf": ("Clear fluid (CSF)", "#60c0ff"),
    "air": ("Air", "#c0c0c0"),
    "bowel contents": ("Bowel contents", "#c09040"),
    "nothing": ("Negative: nothing", "#60d060"),
}


def human(x) -> str:
    return str(getattr(x, "value", x)).replace("_", " ")


def contrast_note(spread) -> str:
    """What the contrast image shows, in a physician's words."""
    mode = spread.mode
    if mode == "intravascular":
        return "Contrast flashes and washes away at once: the tip is in a vessel. Do not inject: reposition."
    if mode == "intrathecal":
        return "Contrast outlines the dural sac (myelogram): the tip is intrathecal. Stop."
    if mode == "intra_organ":
        return f"Contrast pools inside the {human(spread.tip_tissue.name.lower())}: the tip is in an organ."
    if mode == "intraosseous":
        return "Contrast stays in the bone: the tip is in the vertebral body."
    if mode == "outside":
        return "Contrast runs out onto the skin: the tip is not in the body."
    near = []
    for _, k in sorted(((v, k) for k, v in (spread.contacts or {}).items()), reverse=True):
        name = str(k).split(":", 1)[-1].replace("_", " ")
        if name and name not in near:
            near.append(name)
        if len(near) == 3:
            break
    where = f" along {', '.join(near)}" if near else ""
    return f"Contrast spreads in the tissue{where} ({spread.volume_ml:g} ml)."


__all__ = ["ASPIRATION_STYLE", "contrast_note", "human"]
