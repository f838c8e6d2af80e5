"""Reference fixtures for IdeficsImages (CI never runs this; run with the venv of scripts/requirements.txt).

    .venv/bin/python scripts/make_image_fixtures.py

Writes Tests/Fixtures/images/:
  inputs/    encoded test images: hand-built PNGs of every color type / bit depth / interlace / filter, PNM, BMP,
             and JPEGs re-encoded by Pillow from scikit-image's photos in several subsampling modes.
  expected/  Pillow's decode of each input after transformers' RGB conversion, as 8-bit RGB PNG.
  processed/ the Idefics2 Pillow image processor's output images as uint8 PNG (v * 0.5 + 0.5) * 255.
  manifest.json  what each file is and what the Swift tests compare (see the keys written below).
"""

import base64
import hashlib
import io
import json
import os
import shutil
import struct
import zlib

import numpy as np
import skimage.data
from PIL import Image, ImageOps
from transformers.image_transforms import convert_to_rgb
from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "images")
PHOTOS = os.path.dirname(skimage.data.__file__)
rng = np.random.default_rng(1234)
manifest = {"decode": [], "process": []}


def out(*parts):
    path = os.path.join(ROOT, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def photo(name, box=None, size=None):
    im = Image.open(os.path.join(PHOTOS, name))
    im.load()
    if box:
        im = im.crop(box)
    if size:
        im = im.resize(size, Image.BILINEAR)
    return im


# ---------------------------------------------------------------------------------------------------------------
# PNG writer that can produce what Pillow cannot: every bit depth, Adam7, chosen filters, split IDATs, fixed or
# stored DEFLATE blocks.

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(values, bit_depth):
    """values: 1-D array of samples (already interleaved) -> bytes at the bit depth."""
    if bit_depth == 16:
        return values.astype(">u2").tobytes()
    if bit_depth == 8:
        return values.astype(np.uint8).tobytes()
    per_byte = 8 // bit_depth
    padded = np.zeros(-(-len(values) // per_byte) * per_byte, dtype=np.int64)
    padded[: len(values)] = values
    padded = padded.reshape(-1, per_byte)
    shifts = np.array([8 - bit_depth * (i + 1) for i in range(per_byte)])
    return (padded << shifts).sum(axis=1).astype(np.uint8).tobytes()


def filter_row(raw, prev, bpp, kind):
    raw = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    prev = np.frombuffer(prev, dtype=np.uint8).astype(np.int64)
    a = np.array([raw[i - bpp] if i >= bpp else 0 for i in range(len(raw))], dtype=np.int64)
    c = np.array([prev[i - bpp] if i >= bpp else 0 for i in range(len(raw))], dtype=np.int64)
    b = prev
    if kind == 0:
        pred = np.zeros_like(raw)
    elif kind == 1:
        pred = a
    elif kind == 2:
        pred = b
    elif kind == 3:
        pred = (a + b) >> 1
    else:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return bytes([kind]) + ((raw - pred) & 0xFF).astype(np.uint8).tobytes()


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def encode_png(pixels, color_type, bit_depth, interlace=False, palette=None, trns=None, level=6,
               strategy=zlib.Z_DEFAULT_STRATEGY, idat_size=None, exif=None):
    """pixels: (h, w, channels) integer array of raw sample values."""
    h, w, channels = pixels.shape
    bpp = max(1, channels * bit_depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    row_index = 0
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = bytes(len(pack_row(sub[0].reshape(-1), bit_depth)))
        for row in sub:
            packed = pack_row(row.reshape(-1), bit_depth)
            raw += filter_row(packed, prev, bpp, row_index % 5)  # cycle through all five filters
            prev = packed
            row_index += 1
    compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    data = compressor.compress(raw) + compressor.flush()
    idat_size = idat_size or len(data)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                                              int(interlace)))
    if exif is not None:
        png += chunk(b"eXIf", exif)
    if palette is not None:
        png += chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    for i in range(0, len(data), idat_size):
        png += chunk(b"IDAT", data[i:i + idat_size])
    return png + chunk(b"IEND", b"")


def exif_orientation_block(orientation):
    """A little-endian TIFF block with only the Orientation tag."""
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1,
                                                                                   orientation) + b"\x00" * 4


def add_decode_case(name, data, note):
    path = out("inputs", name)
    with open(path, "wb") as f:
        f.write(data)
    im = Image.open(path)
    im.load()
    entry = {"input": f"inputs/{name}", "note": note, "mode": im.mode, "width": im.size[0], "height": im.size[1]}
    # The processor path: a PIL image given to Idefics2ImageProcessorPil goes through convert_to_rgb.
    expected = convert_to_rgb(im, return_numpy=True)
    entry["expected"] = save_rgb(f"expected/{name}.png", expected)
    # The load_image path (path / URL / base64 string): exif_transpose, then a plain convert("RGB").
    loaded = np.array(ImageOps.exif_transpose(im).convert("RGB"))
    if not np.array_equal(loaded, expected):
        entry["expected_load_image"] = save_rgb(f"expected/{name}.load_image.png", loaded)
    manifest["decode"].append(entry)


def save_rgb(relative, array):
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB").save(out(relative), optimize=True)
    return relative


def png_cases():
    astro = np.array(photo("astronaut.png", box=(180, 60, 221, 97)))  # 41x37 RGB photo crop
    camera = np.array(photo("camera.png", box=(200, 100, 233, 127)))  # 33x27 gray photo crop
    logo = np.array(photo("logo.png", box=(150, 150, 209, 193)))       # 59x43 RGBA with real edges
    h, w = 27, 33

    def gray(depth):
        maxv = (1 << depth) - 1
        if depth == 16:
            base = camera.astype(np.int64) * 257
            base[::3, ::2] = rng.integers(0, 300, size=base[::3, ::2].shape)  # values <256 and >255: Pillow clips
            return base[..., None]
        return (camera.astype(np.int64) * maxv // 255)[..., None]

    for depth in (1, 2, 4, 8, 16):
        for interlace in (False, True):
            tag = "i" if interlace else "n"
            add_decode_case(f"gray{depth}_{tag}.png", encode_png(gray(depth), 0, depth, interlace),
                            f"grayscale {depth}-bit" + (" Adam7" if interlace else ""))
    # Gray tRNS: Pillow compares the key's low byte against 8-bit samples (1-bit: any nonzero key is white).
    add_decode_case("gray8_trns.png", encode_png(gray(8), 0, 8, trns=struct.pack(">H", int(camera[5, 5]))),
                    "grayscale 8-bit with tRNS key")
    add_decode_case("gray1_trns.png", encode_png(gray(1), 0, 1, trns=struct.pack(">H", 1)), "1-bit with tRNS")
    add_decode_case("gray4_trns.png", encode_png(gray(4), 0, 4, trns=struct.pack(">H", 0)), "4-bit, tRNS 0")
    g16 = gray(16)
    g16[0, :4, 0] = [0, 44, 255, 300]
    add_decode_case("gray16_trns.png", encode_png(g16, 0, 16, trns=struct.pack(">H", 300)),
                    "16-bit gray with tRNS 300 (Pillow matches clipped samples against 300 & 0xFF)")

    for depth in (8, 16):
        rgb = astro.astype(np.int64) * (257 if depth == 16 else 1)
        if depth == 16:
            rgb += rng.integers(0, 256, size=rgb.shape)  # low bytes that Pillow must ignore
        for interlace in (False, True):
            tag = "i" if interlace else "n"
            add_decode_case(f"rgb{depth}_{tag}.png", encode_png(rgb, 2, depth, interlace), f"RGB {depth}-bit")
        key = rgb[3, 4]
        add_decode_case(f"rgb{depth}_trns.png", encode_png(rgb, 2, depth, trns=struct.pack(">3H", *key)),
                        f"RGB {depth}-bit with tRNS key")

    for depth in (8, 16):
        rgba = logo.astype(np.int64) * (257 if depth == 16 else 1)
        la = np.stack([rgba[..., 1], rgba[..., 3]], axis=-1)
        for interlace in (False, True):
            tag = "i" if interlace else "n"
            add_decode_case(f"rgba{depth}_{tag}.png", encode_png(rgba, 6, depth, interlace),
                            f"RGBA {depth}-bit with partial alpha")
            add_decode_case(f"la{depth}_{tag}.png", encode_png(la, 4, depth, interlace), f"gray+alpha {depth}-bit")

    # Every (value, alpha) pair once: checks the alpha compositing integer arithmetic exhaustively.
    values, alphas = np.meshgrid(np.arange(256), np.arange(256))
    sweep = np.stack([values, 255 - values, (values * 7) % 256, alphas], axis=-1)
    add_decode_case("rgba_sweep.png", encode_png(sweep, 6, 8, level=9), "all 256x256 value/alpha pairs")

    palette = rng.integers(0, 256, size=(16, 3))
    for depth in (1, 2, 4, 8):
        entries = min(16, 1 << depth)
        idx = (camera.astype(np.int64) * entries // 256)[..., None]
        for interlace in (False, True):
            tag = "i" if interlace else "n"
            add_decode_case(f"pal{depth}_{tag}.png", encode_png(idx, 3, depth, interlace, palette=palette[:entries]),
                            f"palette {depth}-bit")
        alpha = bytes(rng.integers(0, 256, size=entries - 1).astype(np.uint8))  # last entry has no alpha: opaque
        add_decode_case(f"pal{depth}_trns.png", encode_png(idx, 3, depth, palette=palette[:entries], trns=alpha),
                        f"palette {depth}-bit with tRNS alpha table")
    simple = bytes([255, 255, 0, 255])
    idx = (camera.astype(np.int64) * 16 // 256)[..., None]
    add_decode_case("pal8_trns_simple.png", encode_png(idx, 3, 8, palette=palette, trns=simple),
                    "palette with one fully transparent entry (Pillow stores an index)")
    add_decode_case("pal4_short.png", encode_png(idx, 3, 4, palette=palette[:5]),
                    "palette of 5 entries, indices up to 15")

    rgb = astro.astype(np.int64)
    add_decode_case("rgb_stored.png", encode_png(rgb, 2, 8, level=0), "DEFLATE stored blocks")
    add_decode_case("rgb_fixed.png", encode_png(rgb, 2, 8, strategy=zlib.Z_FIXED), "DEFLATE fixed Huffman")
    add_decode_case("rgb_multi_idat.png", encode_png(rgb, 2, 8, idat_size=97), "IDAT split in 97-byte chunks")
    add_decode_case("rgb_1x1.png", encode_png(rgb[:1, :1], 2, 8, interlace=True), "1x1 interlaced")
    add_decode_case("rgb_3x1.png", encode_png(rgb[:1, :3], 2, 8, interlace=True), "3x1 interlaced")
    add_decode_case("gray1_5x3.png", encode_png(gray(1)[:3, :5], 0, 1, interlace=True), "1-bit 5x3 interlaced")
    big = np.array(photo("coffee.png"))
    add_decode_case("coffee.png", encode_png(big.astype(np.int64), 2, 8), "full-size photo 600x400")
    for orientation in range(1, 9):
        add_decode_case(f"exif{orientation}.png",
                        encode_png(astro[:7, :11].astype(np.int64), 2, 8, exif=exif_orientation_block(orientation)),
                        f"eXIf orientation {orientation}")


def pnm_bmp_cases():
    astro = np.array(photo("astronaut.png", box=(10, 20, 23, 29)))  # 13x9
    gray = np.array(photo("camera.png", box=(10, 20, 23, 29)))
    add_decode_case("rgb.ppm", b"P6\n# comment\n13 9\n255\n" + astro.tobytes(), "binary PPM")
    add_decode_case("gray.pgm", b"P5 13 9 255\n" + gray.tobytes(), "binary PGM")
    add_decode_case("rgb100.ppm", b"P6 13 9 100\n" + (astro.astype(np.int64) * 100 // 255).astype(np.uint8)
                    .tobytes(), "PPM maxval 100")
    g16 = (gray.astype(np.int64) * 4000 // 255).astype(">u2")
    add_decode_case("gray4000.pgm", b"P5 13 9 4000\n" + g16.tobytes(), "16-bit PGM maxval 4000")

    def bmp(pixels, bits, masks=None, top_down=False):
        h, w, _ = pixels.shape
        bgr = pixels[..., [2, 1, 0] + ([3] if pixels.shape[2] == 4 else [])]
        if bits == 32 and pixels.shape[2] == 3:
            bgr = np.concatenate([bgr, np.full((h, w, 1), 77, np.uint8)], axis=-1)  # X byte Pillow ignores
        row_bytes = (w * bits // 8 + 3) & ~3
        rows = b"".join(bgr[y].tobytes().ljust(row_bytes, b"\0") for y in (range(h) if top_down else
                                                                            range(h - 1, -1, -1)))
        header_size = 56 if masks else 40
        info = struct.pack("<IiiHHIIiiII", header_size, w, -h if top_down else h, 1, bits, 3 if masks else 0,
                           len(rows), 2835, 2835, 0, 0)
        if masks:
            info += struct.pack("<4I", *masks)
        offset = 14 + len(info)
        return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + rows

    add_decode_case("rgb24.bmp", bmp(astro, 24), "BMP 24-bit bottom-up")
    add_decode_case("rgb24_topdown.bmp", bmp(astro, 24, top_down=True), "BMP 24-bit top-down")
    add_decode_case("rgb32.bmp", bmp(astro, 32), "BMP 32-bit BI_RGB")
    rgba = np.concatenate([astro, rng.integers(0, 256, size=astro.shape[:2] + (1,)).astype(np.uint8)], axis=-1)
    add_decode_case("rgba32.bmp", bmp(rgba, 32, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)), "BMP 32-bit BGRA")


def encode_jpeg(planes, factors, ids=(1, 2, 3, 4), jfif=True, adobe=None, quality_step=6):
    """Minimal baseline JPEG writer for sampling layouts Pillow cannot produce (4:4:0, 4:1:1, mixed, YCCK).
    planes: full-size uint8 arrays (already in the stored color space). Fixed-length Huffman codes keep it short:
    12 DC symbols of 4 bits, all 162 AC symbols of 8 bits."""
    h_max, v_max = max(f[0] for f in factors), max(f[1] for f in factors)
    height, width = planes[0].shape
    mcus_x, mcus_y = -(-width // (8 * h_max)), -(-height // (8 * v_max))
    ac_symbols = [0x00, 0xF0] + [r << 4 | s for r in range(16) for s in range(1, 11)]
    dc_code = {s: (s, 4) for s in range(12)}
    ac_code = {s: (i, 8) for i, s in enumerate(ac_symbols)}
    basis = np.array([[np.cos((2 * x + 1) * u * np.pi / 16) * (np.sqrt(0.5) if u == 0 else 1) / 2 for x in range(8)]
                      for u in range(8)])
    quant = np.full((8, 8), quality_step)
    zigzag = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
              7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
              39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
    stored = []
    for plane, (h, v) in zip(planes, factors):
        ch, cw = -(-height * v // v_max), -(-width * h // h_max)
        small = plane.astype(np.float64)[np.ix_(np.arange(ch) * height // ch, np.arange(cw) * width // cw)]
        full = np.pad(small, ((0, mcus_y * v * 8 - ch), (0, mcus_x * h * 8 - cw)), mode="edge")
        stored.append(full - 128)
    bits = []

    def put(value, length):
        bits.extend((value >> (length - 1 - i)) & 1 for i in range(length))

    def magnitude(value):
        size = int(abs(value)).bit_length()
        return size, (value if value >= 0 else value + (1 << size) - 1)

    predictions = [0] * len(planes)
    for my in range(mcus_y):
        for mx in range(mcus_x):
            for c, (h, v) in enumerate(factors):
                for by in range(v):
                    for bx in range(h):
                        y0, x0 = (my * v + by) * 8, (mx * h + bx) * 8
                        block = stored[c][y0:y0 + 8, x0:x0 + 8]
                        coefficients = np.round(basis @ block @ basis.T / quant).astype(int).reshape(-1)
                        zz = [int(coefficients[i]) for i in zigzag]
                        size, value = magnitude(zz[0] - predictions[c])
                        predictions[c] = zz[0]
                        put(*dc_code[size])
                        put(value, size)
                        run = 0
                        last = max([i for i in range(1, 64) if zz[i] != 0], default=0)
                        for k in range(1, last + 1):
                            if zz[k] == 0:
                                run += 1
                                continue
                            while run > 15:
                                put(*ac_code[0xF0])
                                run -= 16
                            size, value = magnitude(zz[k])
                            put(*ac_code[run << 4 | size])
                            put(value, size)
                            run = 0
                        if last < 63:
                            put(*ac_code[0x00])
    bits.extend([1] * (-len(bits) % 8))
    data = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i:i + 8])), 2)
        data += bytes([byte, 0]) if byte == 0xFF else bytes([byte])

    def segment(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    out_bytes = b"\xff\xd8"
    if jfif:
        out_bytes += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        out_bytes += segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe))
    out_bytes += segment(0xDB, b"\x00" + bytes(quant.reshape(-1)[zigzag].astype(np.uint8)))
    frame = struct.pack(">BHHB", 8, height, width, len(planes))
    for c, (h, v) in enumerate(factors):
        frame += bytes([ids[c], h << 4 | v, 0])
    out_bytes += segment(0xC0, frame)
    out_bytes += segment(0xC4, b"\x00" + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12)))
    out_bytes += segment(0xC4, b"\x10" + bytes([0] * 7 + [162] + [0] * 8) + bytes(ac_symbols))
    scan = bytes([len(planes)]) + b"".join(bytes([ids[c], 0x00]) for c in range(len(planes))) + b"\x00\x3f\x00"
    return out_bytes + segment(0xDA, scan) + bytes(data) + b"\xff\xd9"


def jpeg_layout_cases():
    """Sampling layouts and color spaces written by encode_jpeg, decoded by Pillow for reference."""
    ycc = np.array(photo("chelsea.png", box=(60, 40, 105, 77)).convert("YCbCr"))  # 45x37
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    layouts = {"440": [(1, 2), (1, 1), (1, 1)], "411": [(4, 1), (1, 1), (1, 1)], "mixed": [(2, 2), (2, 1), (1, 1)],
               "h1v2_chroma": [(2, 2), (2, 1), (2, 1)], "420_4x2": [(4, 2), (1, 1), (1, 1)]}
    for name, factors in layouts.items():
        add_decode_case(f"layout_{name}.jpg", encode_jpeg([y, cb, cr], factors), f"sampling {factors}")
    rgb = np.array(photo("chelsea.png", box=(60, 40, 105, 77)))
    planes = [rgb[..., 0], rgb[..., 1], rgb[..., 2]]
    add_decode_case("layout_adobe_rgb.jpg", encode_jpeg(planes, [(1, 1)] * 3, jfif=False, adobe=0),
                    "Adobe transform 0: stored RGB")
    add_decode_case("layout_ids_rgb.jpg", encode_jpeg(planes, [(1, 1)] * 3, ids=(82, 71, 66), jfif=False),
                    "component ids R, G, B: stored RGB")
    k = (255 - rgb.max(axis=-1)).astype(np.uint8)
    add_decode_case("layout_ycck.jpg", encode_jpeg([255 - y, cb, cr, 255 - k], [(2, 2), (1, 1), (1, 1), (2, 2)],
                                                   jfif=False, adobe=2), "Adobe YCCK")
    with open(out("inputs/layout_fractional.jpg"), "wb") as f:
        f.write(encode_jpeg([y, cb, cr], [(3, 1), (2, 1), (1, 1)]))  # libjpeg: fractional sampling unsupported


def jpeg_cases():
    """JPEGs written by Pillow (libjpeg-turbo) in each mode it can produce, plus two scikit-image originals."""
    def encode(im, **options):
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", **options)
        return buffer.getvalue()

    with open(os.path.join(PHOTOS, "rocket.jpg"), "rb") as f:
        add_decode_case("rocket.jpg", f.read(), "scikit-image original 640x427")
    astro = photo("astronaut.png", box=(150, 40, 353, 197))  # 203x157: odd in both directions
    chelsea = photo("chelsea.png", box=(100, 60, 197, 173))   # 97x113
    for subsampling in ("4:4:4", "4:2:2", "4:2:0"):
        tag = subsampling.replace(":", "")
        for progressive in (False, True):
            kind = "prog" if progressive else "base"
            add_decode_case(f"astro_{tag}_{kind}.jpg", encode(astro, quality=90, subsampling=subsampling,
                                                              progressive=progressive),
                            f"{subsampling} {'progressive' if progressive else 'baseline'} q90")
        add_decode_case(f"chelsea_{tag}_q30.jpg", encode(chelsea, quality=30, subsampling=subsampling),
                        f"{subsampling} q30 (strong quantization: out-of-range IDCT values)")
        add_decode_case(f"astro_{tag}_restart.jpg", encode(astro, quality=80, subsampling=subsampling,
                                                           restart_marker_blocks=3),
                        f"{subsampling} with a restart interval")
        add_decode_case(f"astro_{tag}_prog_restart.jpg",
                        encode(astro, quality=80, subsampling=subsampling, progressive=True, restart_marker_rows=1),
                        f"{subsampling} progressive with restart rows")
        for w, h in ((1, 1), (2, 2), (3, 5), (17, 9), (4, 33)):
            add_decode_case(f"tiny_{tag}_{w}x{h}.jpg", encode(astro.resize((w, h), Image.BILINEAR), quality=95,
                                                             subsampling=subsampling),
                            f"{w}x{h} {subsampling}: edge handling of the chroma upsampling")
    gray = photo("camera.png", box=(100, 100, 229, 187))
    add_decode_case("gray_base.jpg", encode(gray, quality=85), "grayscale baseline")
    add_decode_case("gray_prog.jpg", encode(gray, quality=85, progressive=True, optimize=True), "grayscale progressive")
    add_decode_case("cmyk.jpg", encode(astro.convert("CMYK"), quality=90), "Adobe CMYK")
    add_decode_case("astro_optimized.jpg", encode(astro, quality=75, optimize=True), "optimized Huffman tables")
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        add_decode_case(f"exif{orientation}.jpg", encode(chelsea, quality=85, exif=exif.tobytes()),
                        f"EXIF orientation {orientation}")


def resize_cases():
    """Image.resize(BILINEAR) and Image.resize(BICUBIC) (Idefics v1's filter) of RGB inputs to many sizes: up, down,
    one axis only, extreme ratios."""
    manifest["resize"] = []
    # Pillow 13 runs the vertical pass first when the height loses more than twice as many pixels as the width
    # (e.g. 41x37 -> 300x5, 40x10, 30x14); the order changes rounding, so both sides of that rule are covered.
    sources = {"inputs/rgb8_n.png": [(20, 18), (80, 74), (41, 10), (7, 37), (1, 1), (300, 5), (41, 37), (33, 91),
                                     (40, 10), (30, 14), (30, 15), (35, 24), (36, 24)],
               "inputs/coffee.png": [(378, 252), (123, 457), (37, 29), (611, 97)]}
    for source, sizes in sources.items():
        im = Image.open(out(source)).convert("RGB")
        for w, h in sizes:
            name = f"resized/{os.path.splitext(os.path.basename(source))[0]}_{w}x{h}.png"
            save_rgb(name, np.array(im.resize((w, h), Image.BILINEAR)))
            manifest["resize"].append({"input": source, "width": w, "height": h, "expected": name})
        for w, h in sizes:
            name = f"resized/{os.path.splitext(os.path.basename(source))[0]}_{w}x{h}_bicubic.png"
            save_rgb(name, np.array(im.resize((w, h), Image.BICUBIC)))
            manifest["resize"].append({"input": source, "width": w, "height": h, "expected": name,
                                       "filter": "bicubic"})


def processor_inputs():
    """Processor inputs as PNG (decoded by the Swift side too). Large ones are nearest-upscaled photo crops so they
    stay small on disk while still exercising the shrinking (antialiased) path."""
    def save(name, im):
        path = f"inputs/{name}.png"
        im.save(out(path), optimize=True)
        return path

    return {
        "small": "inputs/rgb8_n.png",                  # 41x37: both sides grow to 378
        "coffee": "inputs/coffee.png",                 # 600x400: already within bounds
        "logo_rgba": "inputs/rgba8_n.png",             # 59x43 RGBA: composited onto white first
        "gray": "inputs/gray8_n.png",                  # 33x27 gray: replicated to 3 channels
        "wide": save("proc_wide", photo("chelsea.png", box=(0, 50, 400, 150)).resize((1200, 300), Image.NEAREST)),
        "tall": save("proc_tall", photo("astronaut.png", box=(200, 0, 280, 300)).resize((300, 1100), Image.NEAREST)),
        "square": save("proc_square", photo("coffee.png", box=(100, 50, 350, 300)).resize((1000, 1000),
                                                                                            Image.NEAREST)),
        "odd": save("proc_odd", photo("chelsea.png", box=(20, 10, 311, 237)).resize((1001, 777), Image.NEAREST)),
    }


def float_sha(array):
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def processor_cases():
    inputs = processor_inputs()
    processor = Idefics2ImageProcessorPil()
    assert type(processor).__name__ == "Idefics2ImageProcessorPil"

    def run(name, samples, **kwargs):
        pil = [[Image.open(out(inputs[key])) for key in sample] for sample in samples]
        result = processor(images=pil, **kwargs)
        values, mask = np.asarray(result["pixel_values"]), np.asarray(result["pixel_attention_mask"])
        assert values.dtype == np.float32 and mask.dtype == np.int64
        images = []
        for b in range(values.shape[0]):
            for i in range(values.shape[1]):
                m = mask[b, i]
                h, w = int(m.any(axis=1).sum()), int(m.any(axis=0).sum())
                assert m[:h, :w].all() and m.sum() == h * w, "mask is not a top-left rectangle"
                if h == 0:
                    assert not values[b, i].any()
                    images.append({"sample": b, "index": i, "height": 0, "width": 0})
                    continue
                image = values[b, i, :, :h, :w]
                assert not values[b, i, :, h:, :].any() and not values[b, i, :, :, w:].any()
                levels = np.round((image * 0.5 + 0.5) * 255)
                assert levels.min() >= 0 and levels.max() <= 255
                sha = float_sha(image)
                png = f"processed/{sha[:16]}.png"  # content-addressed: cases share identical images
                if not os.path.exists(out(png)):
                    save_rgb(png, levels.astype(np.uint8).transpose(1, 2, 0))
                images.append({"sample": b, "index": i, "height": h, "width": w, "levels": png, "sha256": sha})
        manifest["process"].append({"name": name, "inputs": [[inputs[k] for k in s] for s in samples], "kwargs": kwargs,
                                    "shape": list(values.shape), "mask_shape": list(mask.shape),
                                    "sha256": float_sha(values), "images": images})

    run("small", [["small"]])
    run("coffee", [["coffee"]])
    run("rgba", [["logo_rgba"]])
    run("gray", [["gray"]])
    run("wide", [["wide"]])
    run("tall", [["tall"]])
    run("square", [["square"]])
    run("odd_split", [["odd"]], do_image_splitting=True)
    run("coffee_split", [["coffee"]], do_image_splitting=True)
    run("small_split", [["small"]], do_image_splitting=True)
    run("coffee_edges", [["coffee"]], size={"longest_edge": 490, "shortest_edge": 200})
    run("wide_edges", [["wide"]], size={"longest_edge": 700, "shortest_edge": 100})
    run("batch", [["coffee", "small"], ["wide"], ["gray", "tall", "logo_rgba"]])
    run("batch_split", [["small"], ["coffee", "logo_rgba"]], do_image_splitting=True)


if __name__ == "__main__":
    for folder in ("inputs", "expected", "processed", "resized"):
        shutil.rmtree(out(folder), ignore_errors=True)
    png_cases()
    pnm_bmp_cases()
    jpeg_cases()
    jpeg_layout_cases()
    resize_cases()
    processor_cases()
    with open(out("manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
