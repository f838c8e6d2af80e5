"""Seeded procedural data for the embedded demo model (Models/idefics2-demo).

Every item is `make_item(seed)`: a PIL RGB image and a (question, answer, type) triple, a pure function of the
seed (Python's `random.Random(seed)` and Pillow's aliased ImageDraw primitives; no fonts from the system: text is
drawn with the 5x7 bitmap font below). Seeds used by the training script are below EVAL_SEED_BASE; the held-out
evaluation set uses seeds from EVAL_SEED_BASE up.

Scenes: 1-6 coloured shapes (1-2 for shape, colour and description questions, exactly 2 for position questions;
circle, square, triangle, star; red, green, blue, yellow, purple, orange) on a pale background (solid, two-colour
gradient or soft stripes), or a short word / number drawn in a dark colour.
Canvas: 112x112 mostly; also 224x224 and 140x140 (the processor resizes them to 112x112) and 112x84 / 84x112.

Question types and canonical answers (the answer is exactly what the model should print, without the leading
space it generates after "Assistant:"):
  shape        "What shape is this?" / "What shape is the red one?"                 -> "circle"
  color        "What color is the shape?" / "What color is the square?"             -> "red"
  count        "How many red circles are there?" / "How many stars are there?" /
               "How many blue shapes are there?" / "How many shapes are there?"     -> "0" .. "5"
  position     "Is the red circle on the left or the right?"                        -> "left" / "right"
               "Is the red circle at the top or the bottom?"                        -> "top" / "bottom"
               (where the object is in the image; it is clearly in one half, and a second object is in the scene)
  ocr          "What does the text say?" / "What is written in the image?"          -> "CAT" / "42"
  description  "Describe the image in one sentence."                                -> "A red circle and a blue
               square." (one or two objects, listed left to right)
Each item also carries a label map (which object or character covers each pixel) for the training script's
per-patch auxiliary loss.

Usage: python scripts/demo_data.py OUT_DIR [N] [FIRST_SEED]   writes N example PNGs + items.jsonl (to look at).
"""
import json
import math
import os
import random
import sys

from PIL import Image, ImageDraw

EVAL_SEED_BASE = 1_000_000_000
TYPES = ["shape", "color", "count", "position", "ocr", "description"]
TYPE_WEIGHTS = [1.0, 1.0, 2.0, 1.5, 1.5, 1.0]
POSITION_MARGIN = 12  # px at 112 px: how far from the middle line an object must be to be "on the left", etc.

SHAPES = ["circle", "square", "triangle", "star"]
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 200, 0),
    "purple": (140, 45, 175),
    "orange": (255, 130, 0),
}
COLOR_NAMES = list(COLORS)
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}

WORDS = ["CAT", "DOG", "SUN", "MOON", "STAR", "TREE", "BOOK", "FISH", "BIRD", "CAKE", "RAIN", "SHIP", "FROG",
         "LION", "BEAR", "KING", "GOLD", "MILK", "ROSE", "WIND", "SNOW", "FIRE", "LAMP", "DOOR", "KEY", "HAT",
         "BOX", "CUP", "BUS", "CAR", "PEN", "MAP", "EGG", "SKY", "ICE", "OWL", "BEE", "FOX", "ZOO", "JAM"]

# 5x7 bitmap font: each glyph is 7 rows of 5 bits (MSB = leftmost column).
FONT = {
    "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
    "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
    "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
    "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
    "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
    "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
    "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
    "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
    "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
    "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
    "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
    "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
    "Y": [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
    "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
}

OCR_QUESTIONS = ["What does the text say?", "What is written in the image?", "What does it say?"]

CANVASES = [((112, 112), 0.62), ((224, 224), 0.14), ((140, 140), 0.12), ((112, 84), 0.06), ((84, 112), 0.06)]


def _jitter(rng, rgb, amount):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _pale(rng):
    """A light, low-saturation background colour."""
    base = rng.randint(185, 250)
    return tuple(max(0, min(255, base + rng.randint(-18, 18))) for _ in range(3))


def _background(rng, size):
    w, h = size
    kind = rng.choices(["solid", "gradient", "stripes"], [0.45, 0.35, 0.2])[0]
    c1 = _pale(rng)
    img = Image.new("RGB", size, c1)
    if kind == "gradient":
        c2 = _pale(rng)
        vertical = rng.random() < 0.5
        d = ImageDraw.Draw(img)
        n = h if vertical else w
        for i in range(n):
            t = i / max(1, n - 1)
            c = tuple(round(a + (b - a) * t) for a, b in zip(c1, c2))
            if vertical:
                d.line([(0, i), (w - 1, i)], fill=c)
            else:
                d.line([(i, 0), (i, h - 1)], fill=c)
    elif kind == "stripes":
        c2 = tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in c1)
        period = rng.randint(6, 16) * w // 112
        d = ImageDraw.Draw(img)
        diag = rng.random() < 0.5
        for k in range(-h, w + h, 2 * period):
            if diag:
                d.polygon([(k, 0), (k + period, 0), (k + period + h, h), (k + h, h)], fill=c2)
            else:
                d.rectangle([k, 0, k + period - 1, h], fill=c2)
    return img


def _draw_shape(d, shape, cx, cy, r, color, rot):
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        s = r * 0.88
        d.rectangle([round(cx - s), round(cy - s), round(cx + s), round(cy + s)], fill=color)
    elif shape == "triangle":
        pts = [(cx + r * math.cos(rot + 2 * math.pi * k / 3 - math.pi / 2),
                cy + r * 1.1 * math.sin(rot + 2 * math.pi * k / 3 - math.pi / 2) + r * 0.15) for k in range(3)]
        d.polygon([(round(x), round(y)) for x, y in pts], fill=color)
    elif shape == "star":
        pts = []
        for k in range(10):
            rr = r * 1.1 if k % 2 == 0 else r * 0.45
            a = rot + math.pi * k / 5 - math.pi / 2
            pts.append((round(cx + rr * math.cos(a)), round(cy + rr * math.sin(a))))
        d.polygon(pts, fill=color)
    else:
        raise ValueError(shape)


def _place(rng, objs, size, scale, min_gap=3):
    """Gives each object (dict with 'r' in 112-px units) a centre that does not overlap the others.
    Returns False when it cannot."""
    w, h = size
    placed = []
    for o in objs:
        r = o["r"] * scale
        for _ in range(200):
            cx = rng.uniform(r + 2 * scale, w - r - 2 * scale)
            cy = rng.uniform(r + 2 * scale, h - r - 2 * scale)
            if all(math.hypot(cx - p["cx"], cy - p["cy"]) > r + p["rr"] + min_gap * scale for p in placed):
                o.update(cx=cx, cy=cy, rr=r)
                placed.append(o)
                break
        else:
            return False
    return True


def _render(rng, size, objs):
    """The image and its label map ("L": 0 background, k + 1 where object k is drawn)."""
    img = _background(rng, size)
    labels = Image.new("L", size, 0)
    d, dl = ImageDraw.Draw(img), ImageDraw.Draw(labels)
    for k, o in enumerate(objs):
        color = _jitter(rng, COLORS[o["color"]], 12)
        rot = rng.uniform(-0.25, 0.25)
        _draw_shape(d, o["shape"], o["cx"], o["cy"], o["rr"], color, rot)
        _draw_shape(dl, o["shape"], o["cx"], o["cy"], o["rr"], k + 1, rot)
    return img, labels


def _scene(rng, size, scale, objs):
    while True:
        for o in objs:
            o["r"] = rng.uniform(8.0, 13.0) if len(objs) <= 3 else rng.uniform(7.0, 11.0)
        if _place(rng, objs, size, scale):
            return objs


def _a(name):
    return "an" if name[0] in "aeiou" else "a"


def _scale(size):
    """Shape sizes and margins are in pixels at 112 px; larger canvases scale them."""
    return min(size) / 112 if min(size) >= 112 else 1.0


def description_answer(objs_left_to_right):
    """The description answer: "A red circle and a blue square." for [(colour, shape), ...] in left-to-right order."""
    body = " and ".join(f"{_a(c)} {c} {s}" for c, s in objs_left_to_right)
    return body[0].upper() + body[1:] + "."


def _draw_text(img, rng, text, scale):
    """Draws text; returns its label map ("L": 0 background, i + 1 on the pixels of character i)."""
    w, h = img.size
    px = math.ceil(3 * scale)
    tw, th = len(text) * 6 * px - px, 7 * px
    if tw + 4 > w:
        px = max(1, (w - 4) // (len(text) * 6))
        tw, th = len(text) * 6 * px - px, 7 * px
    x0 = rng.randint(2, w - tw - 2)
    y0 = rng.randint(2, h - th - 2)
    dark = rng.choice([(20, 20, 20), (40, 40, 110), (110, 30, 30), (30, 80, 30)])
    color = _jitter(rng, dark, 15)
    labels = Image.new("L", img.size, 0)
    d, dl = ImageDraw.Draw(img), ImageDraw.Draw(labels)
    for i, ch in enumerate(text):
        rows = FONT[ch]
        for ry, bits in enumerate(rows):
            for rx in range(5):
                if bits & (1 << (4 - rx)):
                    x = x0 + (i * 6 + rx) * px
                    y = y0 + ry * px
                    d.rectangle([x, y, x + px - 1, y + px - 1], fill=color)
                    dl.rectangle([x, y, x + px - 1, y + px - 1], fill=i + 1)
    return labels


def _meta(objs, size):
    return [(o["color"], o["shape"], o["cx"] / size[0], o["cy"] / size[1]) for o in objs]


def make_item(seed, qtype=None):
    """Returns dict(image=PIL.Image, question, answer, type, seed, text, objects): `text` is the rendered string of
    an OCR image (else ""), `objects` the shapes as (colour, shape, centre x / width, centre y / height), `labels`
    an "L" image of the canvas size: 0 background, k + 1 on the pixels of object k (or of character k of `text`);
    the training script uses these for its auxiliary loss."""
    rng = random.Random(seed)
    if qtype is None:
        qtype = rng.choices(TYPES, TYPE_WEIGHTS)[0]
    size = rng.choices([c for c, _ in CANVASES], [p for _, p in CANVASES])[0]
    scale = _scale(size)

    if qtype == "ocr":
        img = _background(rng, size)
        text = rng.choice(WORDS) if rng.random() < 0.6 else str(rng.randint(0, 99))
        labels = _draw_text(img, rng, text, scale)
        q = rng.choice(OCR_QUESTIONS)
        return dict(image=img, question=q, answer=text, type=qtype, seed=seed, text=text, objects=[], labels=labels)

    if qtype in ("shape", "color", "description"):
        n = rng.choice([1, 2])
        if qtype == "shape":
            shapes = [rng.choice(SHAPES) for _ in range(n)]
            colors = rng.sample(COLOR_NAMES, n)
        elif qtype == "color":
            shapes = rng.sample(SHAPES, n)
            colors = [rng.choice(COLOR_NAMES) for _ in range(n)]
        else:
            combos = rng.sample([(c, s) for c in COLOR_NAMES for s in SHAPES], n)
            colors, shapes = [c for c, _ in combos], [s for _, s in combos]
        objs = _scene(rng, size, scale, [dict(shape=s, color=c) for s, c in zip(shapes, colors)])
        if qtype == "description":
            # Horizontal order must be unambiguous: re-place until centres are >= 10 px apart in x.
            while len(objs) > 1 and min(abs(a["cx"] - b["cx"]) for i, a in enumerate(objs)
                                        for b in objs[i + 1:]) < 10 * scale:
                objs = _scene(rng, size, scale, objs)
        img, labels = _render(rng, size, objs)
        t = objs[rng.randrange(n)]
        if qtype == "shape":
            q = "What shape is this?" if n == 1 else f"What shape is the {t['color']} one?"
            a = t["shape"]
        elif qtype == "color":
            q = "What color is the shape?" if n == 1 else f"What color is the {t['shape']}?"
            a = t["color"]
        else:
            q = "Describe the image in one sentence."
            a = description_answer([(o["color"], o["shape"]) for o in sorted(objs, key=lambda o: o["cx"])])
        return dict(image=img, question=q, answer=a, type=qtype, seed=seed, text="", objects=_meta(objs, size),
                    labels=labels)

    if qtype == "count":
        mode = rng.choices(["cs", "s", "c", "all"], [0.4, 0.2, 0.2, 0.2])[0]
        tc, ts = rng.choice(COLOR_NAMES), rng.choice(SHAPES)
        if mode == "all":
            k = rng.randint(1, 5)
            objs = [dict(shape=rng.choice(SHAPES), color=rng.choice(COLOR_NAMES)) for _ in range(k)]
            q = "How many shapes are there?"
        else:
            k = rng.choice([0, 1, 1, 2, 2, 3, 3, 4])
            n_other = rng.randint(0 if k > 0 else 1, 2)
            match = lambda c, s: (mode == "cs" and c == tc and s == ts) or (mode == "s" and s == ts) or \
                (mode == "c" and c == tc)
            objs = [dict(shape=ts, color=tc if mode != "s" else rng.choice(COLOR_NAMES)) for _ in range(k)]
            if mode == "c":
                for o in objs:
                    o["shape"] = rng.choice(SHAPES)
            for _ in range(n_other):
                while True:
                    if mode == "cs" and rng.random() < 0.6:  # near misses: same colour or same shape
                        c, s = (tc, rng.choice(SHAPES)) if rng.random() < 0.5 else (rng.choice(COLOR_NAMES), ts)
                    else:
                        c, s = rng.choice(COLOR_NAMES), rng.choice(SHAPES)
                    if not match(c, s):
                        break
                objs.append(dict(shape=s, color=c))
            rng.shuffle(objs)
            q = {"cs": f"How many {tc} {PLURAL[ts]} are there?", "s": f"How many {PLURAL[ts]} are there?",
                 "c": f"How many {tc} shapes are there?"}[mode]
        objs = _scene(rng, size, scale, objs)
        img, labels = _render(rng, size, objs)
        return dict(image=img, question=q, answer=str(k), type=qtype, seed=seed, text="", objects=_meta(objs, size),
                    labels=labels)

    if qtype == "position":
        # Where one object is in the image (one lookup); a second object is a distractor. The asked object's centre
        # is clearly in one half: >= POSITION_MARGIN px (at 112 px) from the middle line.
        (c1, s1), (c2, s2) = rng.sample([(c, s) for c in COLOR_NAMES for s in SHAPES], 2)
        horizontal = rng.random() < 0.5
        axis, extent = ("cx", size[0]) if horizontal else ("cy", size[1])
        while True:
            objs = _scene(rng, size, scale, [dict(shape=s1, color=c1), dict(shape=s2, color=c2)])
            if abs(objs[0][axis] - extent / 2) >= POSITION_MARGIN * scale:
                break
        img, labels = _render(rng, size, objs)
        q, ans = position_question(c1, s1, horizontal, objs[0][axis] < extent / 2)
        return dict(image=img, question=q, answer=ans, type=qtype, seed=seed, text="", objects=_meta(objs, size),
                    labels=labels)

    raise ValueError(qtype)


def position_question(color, shape, horizontal, first_half):
    if horizontal:
        return f"Is the {color} {shape} on the left or the right?", "left" if first_half else "right"
    return f"Is the {color} {shape} at the top or the bottom?", "top" if first_half else "bottom"


def scene_questions(item):
    """Every question the generator asks about scenes like this item's, answerable from its scene, with its answer:
    [(question, answer, type)]. The training script asks several of them per image (one vision pass, several
    answers to learn from)."""
    if item["type"] == "ocr":
        return [(q, item["answer"], "ocr") for q in OCR_QUESTIONS]
    w, h = item["image"].size
    scale = _scale((w, h))
    objs = [dict(color=c, shape=s, x=x * w, y=y * h) for c, s, x, y in item["objects"]]
    n = len(objs)
    count = lambda f: str(sum(1 for o in objs if f(o)))
    out = [("How many shapes are there?", str(n), "count")] if n <= 5 else []
    for c in COLOR_NAMES:
        out.append((f"How many {c} shapes are there?", count(lambda o: o["color"] == c), "count"))
        for s in SHAPES:
            out.append((f"How many {c} {PLURAL[s]} are there?",
                        count(lambda o: o["color"] == c and o["shape"] == s), "count"))
    for s in SHAPES:
        out.append((f"How many {PLURAL[s]} are there?", count(lambda o: o["shape"] == s), "count"))
    unique = lambda key, v: sum(1 for o in objs if o[key] == v) == 1
    for o in objs:
        if n == 1:
            out += [("What shape is this?", o["shape"], "shape"), ("What color is the shape?", o["color"], "color")]
            continue
        if unique("color", o["color"]):
            out.append((f"What shape is the {o['color']} one?", o["shape"], "shape"))
        if unique("shape", o["shape"]):
            out.append((f"What color is the {o['shape']}?", o["color"], "color"))
    kinds = [o for o in objs if sum(1 for p in objs if (p["color"], p["shape"]) == (o["color"], o["shape"])) == 1]
    for o in kinds:
        for horizontal, v, extent in ((True, o["x"], w), (False, o["y"], h)):
            if abs(v - extent / 2) >= POSITION_MARGIN * scale:
                out.append(position_question(o["color"], o["shape"], horizontal, v < extent / 2) + ("position",))
    if n == 1 or (n == 2 and len(kinds) == 2 and abs(objs[0]["x"] - objs[1]["x"]) >= 10 * scale):
        left_to_right = [(o["color"], o["shape"]) for o in sorted(objs, key=lambda o: o["x"])]
        out.append(("Describe the image in one sentence.", description_answer(left_to_right), "description"))
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo_data"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "items.jsonl"), "w") as f:
        for s in range(first, first + n):
            it = make_item(s)
            name = f"{s}.png"
            it["image"].save(os.path.join(out, name))
            f.write(json.dumps(dict(image=name, question=it["question"], answer=it["answer"], type=it["type"])) + "\n")


if __name__ == "__main__":
    main()
