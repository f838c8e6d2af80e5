#!/usr/bin/env python3
"""Runs the `idefics` binary on a few hundred hostile inputs and classifies what each one does.

Usage: python3 scripts/hostile_inputs.py --binary PATH [--timeout 60] [--only SUBSTRING] [--json OUT]
                                         [--jobs 2] [--memory-limit-mb 4096] [--list]

Standard library only. Every damaged input is built in a temporary folder from copies of the demo model
(Models/idefics2-demo: JSON files and tokenizer copied, weights symlinked until a case damages them, then copied)
and of the example images (Examples/, plus one JPEG from Tests/Fixtures/images/inputs); the originals are never
written (their hashes are compared before and after the run). A tiny HTTP server on 127.0.0.1 serves the URL cases.

Each case runs once with stdin, stdout and stderr captured, in its own process group, under an address-space limit
(--memory-limit-mb, default 4096: an unbounded allocation then fails fast, as a crash, instead of swapping the
machine; 0 disables it), and is classified as:

  ok         exit 0
  error      non-zero exit with a message on stderr (death by SIGPIPE when stdout is a closed pipe also counts here)
  crash      killed by a signal, exit 132-136/139, or a crash marker on stderr ("Fatal error", "Swift runtime
             failure", "Illegal instruction", "Segmentation fault", "Trace/breakpoint", "Stack dump", ...)
  hang       still running at the timeout (cases that can only hang by blocking on a FIFO use min(timeout, 10 s))
  silent     exit 0 although the case expects an error (success would be a silently wrong answer), or a chat
             session that answered a bad /command without a word about it
  leak       stderr carries raw Foundation/Swift internals ("NSCocoaErrorDomain", "Error Domain=", "Code=",
             "The operation could not be completed", "DecodingError.", ...), whatever the exit status
  clobbered  an output path that was a symlink (or FIFO) is no longer one after the run
  late       `eval --outputs` into an unusable path failed only after evaluating (its error does not name the path)
  mute       non-zero exit with nothing on stderr
  refused    an error where the case expects success (a baseline, or input transformers accepts)
  harness    the case could not be started (a bug in this script)

One line per case (name, class, exit status, first stderr line, 160 characters; for a crash the "Fatal error" /
runtime-failure line), then the failures again with notes (a crash names its innermost frame in Sources/), then
`cases N: ok .., error .., crash .., hang .., silent .., leak .., ...`. The exit status is 1 when any case is in a
class from crash onwards (anything but ok and error), or when the demo model, Examples/ or /dev/full changed; else 0.
Cases writing to /dev/full run as user `nobody` when this script runs as root: Foundation's atomic write renames a
temporary file over the destination, and as root that would replace the /dev/full device node itself.
"""

import argparse
import base64
import http.server
import json
import hashlib
import os
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "Models" / "idefics2-demo"
EXAMPLES = REPO / "Examples"
FIXTURE_IMAGES = REPO / "Tests" / "Fixtures" / "images" / "inputs"

QUESTION = "How many red circles are there?"
HUGE = "1000000000"
INT_MAX = str(2**63 - 1)
FAILURES = ("crash", "hang", "silent", "leak", "clobbered", "late", "mute", "refused", "harness")
CLASSES = ("ok", "error") + FAILURES

CRASH_MARKERS = ("Fatal error", "fatal error:", "Illegal instruction", "Segmentation fault", "Trace/breakpoint",
                 "Stack dump", "Program crashed", "Bus error", "Aborted (core dumped)", "*** Signal",
                 "Thread 0 crashed", "Crash at ", "Swift runtime failure")
CRASH_CODES = (132, 133, 134, 135, 136, 139)
LEAK_RE = re.compile(r"NSCocoaErrorDomain|NSURLErrorDomain|NSPOSIXErrorDomain|Error Domain=|\bCode=|UserInfo=|"
                     r"The operation could not be completed|The operation couldn.t be completed|CocoaError\(|"
                     r"DecodingError\.|keyNotFound\(|typeMismatch\(|valueNotFound\(|dataCorrupted\(|"
                     r"_GenericObjCError|Foundation\._")


# ----------------------------------------------------------------------------------------------------------------
# Cases and results


class Case:
    def __init__(self, name, argv, stdin=None, expect=None, timeout=None, stdout=None, env=None, as_nobody=False,
                 check=None, expect_message=None, fifo_cap=False):
        self.name = name
        self.argv = argv                  # list of str / bytes (bytes go to the binary unchanged)
        self.stdin = stdin                # bytes or None (then /dev/null)
        self.expect = expect              # "error": exit 0 is `silent`; "ok": an error is `refused`
        self.timeout = timeout
        self.stdout = stdout              # None (captured), "devfull", "closed-pipe", "closed-pipe-sigpipe-ignored"
        self.env = env or {}
        self.as_nobody = as_nobody
        self.check = check                # callable(result) -> None or (class, note), run after classification
        self.expect_message = expect_message  # regex that stdout+stderr must match when the exit status is 0
        self.fifo_cap = fifo_cap          # may only hang by blocking on a FIFO: short timeout


def text_of(data):
    return data.decode("utf-8", "replace") if data else ""


FRAME_RE = re.compile(r"0x[0-9a-f]+ (.+?) in \S+ at \S*?(Sources/\S+)")


def crash_site(text):
    """The innermost backtrace frame in the project's sources, as `function @ Sources/File.swift:line:col`."""
    for line in text.splitlines():
        match = FRAME_RE.search(line)
        if match:
            return "%s @ %s" % (re.sub(r" \+ \d+$", "", match.group(1)), match.group(2))
    return ""


def first_line(text, cls):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    if cls == "crash":
        for preferred in ("Fatal error", "fatal error:", "Swift runtime failure", "Program crashed"):
            for line in lines:
                if preferred in line:
                    return line
        for line in lines:
            if any(marker in line for marker in CRASH_MARKERS):
                return line
    if cls == "leak":
        for line in lines:
            if LEAK_RE.search(line):
                return line
    return lines[0]


def classify(case, rc, timed_out, stdout, stderr):
    """(class, note) from the exit status and output alone."""
    out, err = text_of(stdout), text_of(stderr)
    if timed_out:
        return "hang", "timed out"
    if rc < 0:
        sig = -rc
        if sig == signal.SIGPIPE and case.stdout and case.stdout.startswith("closed-pipe"):
            return "error", "killed by SIGPIPE (stdout is a closed pipe)"
        return "crash", "killed by " + signal.Signals(sig).name
    if rc in CRASH_CODES or any(marker in err for marker in CRASH_MARKERS):
        return "crash", "exit %d" % rc
    if LEAK_RE.search(err):
        return "leak", "Foundation internals in the message"
    if rc == 0:
        if case.expect == "error":
            return "silent", "exit 0 where an error was expected"
        if case.expect_message and not re.search(case.expect_message, out + err):
            return "silent", "no message matching /%s/" % case.expect_message
        return "ok", ""
    if not err.strip():
        return "mute", "exit %d with nothing on stderr" % rc
    if case.expect == "ok":
        return "refused", "an error where success was expected"
    return "error", ""


# ----------------------------------------------------------------------------------------------------------------
# The temporary world: lazily built fixtures


class World:
    def __init__(self, root):
        self.root = Path(root)
        self.builders = {}          # path -> builder()
        self.built = set()
        self.lock = threading.RLock()
        self.port = 0
        for sub in ("models", "images", "data", "out", "misc"):
            (self.root / sub).mkdir()

    def lazy(self, path, builder):
        path = str(path)
        self.builders[path] = builder
        return path

    def ensure(self, path):
        with self.lock:
            if path in self.built or path not in self.builders:
                return
            self.built.add(path)
            self.builders[path]()

    def ensure_for(self, case):
        haystack = [a if isinstance(a, str) else a.decode("utf-8", "replace") for a in case.argv]
        haystack += [text_of(case.stdin)] + list(case.env.values())
        joined = "\0".join(haystack)
        for path in list(self.builders):
            if path in joined:
                self.ensure(path)

    # -- models --------------------------------------------------------------------------------------------------

    def model(self, slug, mutate=None):
        dest = self.root / "models" / slug

        def build():
            dest.mkdir()
            for entry in sorted(DEMO.iterdir()):
                if entry.suffix == ".safetensors":
                    os.symlink(entry, dest / entry.name)
                else:
                    shutil.copyfile(entry, dest / entry.name)
            if mutate:
                mutate(dest)
        return self.lazy(dest, build)

    # -- images ----------------------------------------------------------------------------------------------------

    def image(self, slug, builder):
        dest = self.root / "images" / slug
        return self.lazy(dest, lambda: builder(dest))

    def data(self, slug, builder):
        dest = self.root / "data" / slug
        return self.lazy(dest, lambda: builder(dest))

    def out(self, slug):
        return str(self.root / "out" / slug)


def replace_file(path, data):
    """Writes `data` at `path`, first removing whatever is there (never writes through a symlink)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    with open(path, "xb") as f:
        f.write(data)


def replace_with(path, kind, target=None):
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink(target, path)
    elif kind == "missing":
        pass


def edit_json(name, fn):
    """A mutator: loads `name` from the model copy, lets fn change the object in place, writes it back."""
    def mutate(d):
        obj = json.loads((DEMO / name).read_text())
        result = fn(obj)
        replace_file(d / name, json.dumps(obj if result is None else result, indent=1).encode())
    return mutate


def raw_file(name, data):
    return lambda d: replace_file(d / name, data)


def special(name, kind, target=None):
    return lambda d: replace_with(d / name, kind, target)


def demo_bytes(name):
    return (DEMO / name).read_bytes()


def set_path(obj, dotted, value):
    keys = dotted.split(".")
    for key in keys[:-1]:
        obj = obj[key]
    if value is DELETE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value


DELETE = object()


def cfg(**changes):
    """config.json edits; keys use __ for nesting (text_config__head_dim)."""
    def fn(obj):
        for key, value in changes.items():
            set_path(obj, key.replace("__", "."), value)
    return edit_json("config.json", fn)


def json_text(name, fn_text):
    """Edits a JSON file as text (for literals json.dumps cannot write, such as 1e400)."""
    def mutate(d):
        original = demo_bytes(name).decode()
        edited = fn_text(original)
        assert edited != original, "the text edit of %s changed nothing" % name
        replace_file(d / name, edited.encode())
    return mutate


# -- safetensors ---------------------------------------------------------------------------------------------------

SHARD = "model-00002-of-00002.safetensors"          # lm_head.weight only
SHARD1 = "model-00001-of-00002.safetensors"         # everything else


def st_split(data):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def st_join(header, body, raw=None):
    h = raw if raw is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + body


def st_edit(fn, shard=SHARD):
    """A mutator: fn(header dict, body bytes) -> bytes of the new shard (or None to rebuild from the edited header)."""
    def mutate(d):
        header, body = st_split(demo_bytes(shard))
        result = fn(header, body)
        replace_file(d / shard, result if result is not None else st_join(header, body))
    return mutate


def tensors(header):
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def st_set(field, value, which=0):
    def fn(header, body):
        header[tensors(header)[which]][field] = value
    return st_edit(fn)


def st_overlap(header, body):
    a, b = tensors(header)[:2]
    begin, end = header[b]["data_offsets"]
    start = header[a]["data_offsets"][1] - 2      # two bytes into the end of tensor a
    header[b]["data_offsets"] = [start, start + (end - begin)]


def st_raw(fn_bytes):
    return lambda d: replace_file(d / SHARD, fn_bytes(demo_bytes(SHARD)))


# -- images --------------------------------------------------------------------------------------------------------


def png_chunk(kind, payload, crc=None):
    value = zlib.crc32(kind + payload) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", value)


def png(width, height, bit_depth=8, color_type=2, interlace=0, idat=None, ihdr_crc=None, iend=True):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    if idat is None:
        idat = zlib.compress(b"")
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr, ihdr_crc) + png_chunk(b"IDAT", idat)
    return data + (png_chunk(b"IEND", b"") if iend else b"")


def jpeg_with_size(data, height, width):
    data = bytearray(data)
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise RuntimeError("no SOF marker in the fixture JPEG")


def bmp(width, height, bpp=24, pixels=b""):
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, len(pixels), 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def write_bytes(data):
    return lambda dest: replace_file(dest, data if not callable(data) else data())


# ----------------------------------------------------------------------------------------------------------------
# A local HTTP server for the URL cases


def start_server(png_bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, headers, body=b""):
            """Status, headers (Content-Length defaults to the body's), then the body (which may be shorter)."""
            self.send_response(status)
            headers = {"Content-Length": str(len(body)), **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            png = {"Content-Type": "image/png"}
            if path == "/ok.png":
                self.reply(200, png, png_bytes)
            elif path == "/text":
                self.reply(200, {"Content-Type": "text/html"}, b"<html>not an image</html>")
            elif path == "/loop":
                self.reply(302, {"Location": "/loop"})
            elif path == "/big":
                self.reply(200, {**png, "Content-Length": str(200 << 20)}, png_bytes[:64])
            elif path == "/trunc":
                self.reply(200, {**png, "Content-Length": str(len(png_bytes))}, png_bytes[:100])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/reset":
                self.close_connection = True
            else:
                self.reply(404, {})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ----------------------------------------------------------------------------------------------------------------
# Post-run checks


def still_symlink(path):
    def check(result):
        if not os.path.islink(path):
            kind = "a regular file" if os.path.isfile(path) else "gone" if not os.path.lexists(path) else "replaced"
            return "clobbered", "the symlink %s is now %s" % (path, kind)
        return None
    return check


def still_fifo(path):
    def check(result):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return "clobbered", "the FIFO %s is gone" % path
        if not stat.S_ISFIFO(mode):
            return "clobbered", "the FIFO %s was replaced by a %s" % (
                path, "regular file" if stat.S_ISREG(mode) else "different file")
        return None
    return check


def names_path(fragment):
    def check(result):
        if result["class"] in ("error", "leak") and fragment not in result["stderr"]:
            return "late", "the error does not name %s: it came after (or instead of) evaluating" % fragment
        return None
    return check


def both(*checks):
    def check(result):
        for c in checks:
            verdict = c(result)
            if verdict:
                return verdict
        return None
    return check


class FifoDrain:
    """Holds a FIFO open read-write (so a writer's open() does not block) and drains what is written to it."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.received = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import select
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.received += len(os.read(self.fd, 1 << 16))
                except BlockingIOError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.fd)


# ----------------------------------------------------------------------------------------------------------------
# Running


def run_case(case, binary, world, default_timeout, memory_limit):
    world.ensure_for(case)
    timeout = case.timeout or default_timeout
    if case.fifo_cap:
        timeout = min(timeout, 10)
    env = dict(os.environ)
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "HF_HUB_CACHE": str(world.root / "misc" / "empty-hub"), "HF_HOME": str(world.root / "misc" / "hf")})
    env.update(case.env)
    argv = [binary] + case.argv
    kwargs = dict(cwd=str(world.root), env=env, start_new_session=True, stderr=subprocess.PIPE,
                  stdin=subprocess.PIPE if case.stdin is not None else subprocess.DEVNULL)
    close_after = []
    if case.stdout == "devfull":
        f = open("/dev/full", "wb")
        close_after.append(f)
        kwargs["stdout"] = f
    elif case.stdout and case.stdout.startswith("closed-pipe"):
        r, w = os.pipe()
        os.close(r)
        kwargs["stdout"] = w
        close_after.append(w)
        # Python ignores SIGPIPE; children get the default action back unless restore_signals is off.
        kwargs["restore_signals"] = case.stdout != "closed-pipe-sigpipe-ignored"
    else:
        kwargs["stdout"] = subprocess.PIPE
    if case.as_nobody and os.geteuid() == 0:
        kwargs.update(user=65534, group=65534, extra_groups=[])
    drain = None
    fifo_out = getattr(case, "fifo_out", None)
    if fifo_out:
        world.ensure(fifo_out)
        drain = FifoDrain(fifo_out)
    start = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.Popen(argv, **kwargs)
    except OSError as error:             # e.g. an argument over the kernel's 128 KiB limit: the case is wrong
        for item in close_after:
            item.close() if hasattr(item, "close") else os.close(item)
        if drain:
            drain.close()
        return {"name": case.name, "argv": [], "stdin": None, "expect": case.expect, "class": "harness",
                "note": "could not start: %s" % error, "exit_status": None, "signal": None, "timed_out": False,
                "seconds": 0, "stdout": "", "stderr": "", "first_line": "could not start: %s" % error}
    for item in close_after:
        item.close() if hasattr(item, "close") else os.close(item)
    if memory_limit:
        try:
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (OSError, ValueError):
            pass
    try:
        stdout, stderr = proc.communicate(case.stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
    elapsed = time.monotonic() - start
    if drain:
        drain.close()
    rc = proc.returncode
    cls, note = classify(case, rc, timed_out, stdout, stderr)
    result = {
        "name": case.name,
        "argv": [a if isinstance(a, str) else a.decode("utf-8", "backslashreplace") for a in argv],
        "stdin": text_of(case.stdin)[:2000] if case.stdin is not None else None,
        "expect": case.expect,
        "class": cls,
        "note": note,
        "exit_status": None if timed_out else rc,
        "signal": signal.Signals(-rc).name if (rc is not None and rc < 0 and not timed_out) else None,
        "timed_out": timed_out,
        "seconds": round(elapsed, 3),
        "stdout": clip(text_of(stdout), 4000),
        "stderr": clip(text_of(stderr), 8000),
    }
    if drain:
        result["fifo_bytes_received"] = drain.received
    if case.check and cls not in ("crash", "hang"):
        verdict = case.check(result)
        if verdict:
            result["class"], result["note"] = verdict
    result["first_line"] = first_line(text_of(stderr), result["class"])[:160]
    if result["class"] == "crash":
        site = crash_site(text_of(stderr))
        if site:
            result["note"] += "; at " + site
    return result


def clip(text, limit):
    """The head and tail of a long text (a crash's message is at the head, a backtrace can run for pages)."""
    if len(text) <= limit:
        return text
    return text[:limit * 3 // 4] + "\n[... %d characters left out ...]\n" % (len(text) - limit) + text[-limit // 4:]


def status_text(result):
    if result["timed_out"]:
        return "timeout"
    if result["signal"]:
        return result["signal"]
    return str(result["exit_status"])


# ----------------------------------------------------------------------------------------------------------------
# The cases


def build_cases(world):
    cases = []

    def add(name, argv, **kw):
        cases.append(Case(name, argv, **kw))
        return cases[-1]

    # -- shared fixtures -----------------------------------------------------------------------------------------
    shapes1 = world.image("shapes-1.png", write_bytes((EXAMPLES / "shapes-1.png").read_bytes()))
    shapes2 = world.image("shapes-2.png", write_bytes((EXAMPLES / "shapes-2.png").read_bytes()))
    png_bytes = (EXAMPLES / "shapes-1.png").read_bytes()
    jpegs = sorted(FIXTURE_IMAGES.glob("*.jpg"), key=lambda p: p.stat().st_size) if FIXTURE_IMAGES.is_dir() else []
    jpeg_bytes = next((p.read_bytes() for p in jpegs if p.stat().st_size > 2000), jpegs[-1].read_bytes() if jpegs else None)
    clean = world.model("clean")
    ctx = world.model("ctx256", cfg(text_config__max_position_embeddings=256))
    world.default_model = clean

    def gen(model=clean, *extra, image=shapes1, prompt=QUESTION):
        return ["generate", "--model", model, "--chat", "--image", image, "--prompt", prompt] + list(extra)

    def prep(model, image, slug, *extra):
        return ["preprocess", "--model", model, "--image", image, "--output", world.out(slug + ".safetensors")] + list(extra)

    def item(image, question=QUESTION, answer="3", kind="count"):
        return json.dumps({"image": image, "question": question, "answer": answer, "type": kind})

    data2 = world.data("two.jsonl", lambda d: (world.ensure(shapes1), world.ensure(shapes2), replace_file(d, (
        item(shapes1) + "\n" + item(shapes2, "Is the purple square on the left or the right?", "left", "position")
        + "\n").encode())))
    chat_ok = ("/image %s\n%s\n/quit\n" % (shapes1, QUESTION)).encode()

    # -- 0. baselines: these must pass, or the harness itself is wrong -------------------------------------------
    add("baseline/generate", gen(clean, "--max-new-tokens", "8"), expect="ok")
    add("baseline/generate-json", gen(clean, "--max-new-tokens", "8", "--json"), expect="ok")
    add("baseline/tokenize", ["tokenize", "--model", clean, "--text", "hello world"], expect="ok")
    add("baseline/tokenize-default-model", ["tokenize", "--text", "hello"], expect="ok",
        env={"IDEFICS_DEMO_MODEL": clean})
    add("baseline/preprocess", prep(clean, shapes1, "baseline"), expect="ok")
    add("baseline/chat", ["chat", "--model", clean], stdin=chat_ok, expect="ok")
    add("baseline/eval", ["eval", "--model", clean, "--data", data2], expect="ok")
    add("baseline/bench", ["bench", "--model", clean, "--no-machine-limits", "--prompt-tokens", "8",
                           "--new-tokens", "4"], expect="ok")
    add("baseline/bench-image", ["bench-image", "--image", shapes1, "--runs", "1"], expect="ok")

    # -- 1. numeric options ----------------------------------------------------------------------------------------
    int_values = ["-1", "0", HUGE, "abc", "1.5"]
    float_values = ["-1", "0", HUGE, "abc", "nan", "inf"]
    uint_values = ["-1", "0", HUGE, "abc", "1.5", "18446744073709551616"]

    def domain_ok(kind, value, lo, hi=None, lo_open=False):
        """Whether `value` parses and lies in the option's documented domain."""
        try:
            number = int(value) if kind in ("int", "uint") else float(value)
        except ValueError:
            return False
        if kind == "int" and not -2**63 <= number < 2**63:
            return False
        if kind == "uint" and not 0 <= number < 2**64:
            return False
        if number != number or number in (float("inf"), float("-inf")):
            return False
        if (number <= lo) if lo_open else (number < lo):
            return False
        return hi is None or number <= hi

    def numeric(cmd, opt, kind, base, lo, hi=None, lo_open=False, values=None, huge_base=None):
        for value in values or {"int": int_values, "float": float_values, "uint": uint_values}[kind]:
            argv = (huge_base if (value in (HUGE, INT_MAX) and huge_base) else base)() + ["--%s=%s" % (opt, value)]
            add("num/%s --%s=%s" % (cmd, opt, value), argv,
                expect=None if domain_ok(kind, value, lo, hi, lo_open) else "error")

    def gen_base(skip=None, model=clean):
        def base():
            extra = [] if skip == "max-new-tokens" else ["--max-new-tokens", "8"]
            return gen(model, *extra)
        return base

    numeric("generate", "threads", "int", gen_base(), 1)
    numeric("generate", "max-image-pixels", "int", gen_base(), 1)
    numeric("generate", "longest-edge", "int", gen_base(), 1)
    numeric("generate", "shortest-edge", "int", gen_base(), 1)
    numeric("generate", "max-new-tokens", "int", gen_base("max-new-tokens"), 1,
            values=int_values + [INT_MAX, "9223372036854775808"], huge_base=gen_base("max-new-tokens", ctx))
    numeric("generate", "top-k", "int", gen_base(), 0)
    numeric("generate", "temperature", "float", gen_base(), 0, lo_open=True)
    numeric("generate", "top-p", "float", gen_base(), 0, 1, lo_open=True)
    numeric("generate", "typical-p", "float", gen_base(), 0, 1, lo_open=True)
    numeric("generate", "repetition-penalty", "float", gen_base(), 0, lo_open=True)
    numeric("generate", "seed", "uint", gen_base(), 0)

    chat_base = lambda: ["chat", "--model", clean]
    for opt in ("threads", "max-new-tokens"):
        for value in int_values:
            add("num/chat --%s=%s" % (opt, value), chat_base() + ["--%s=%s" % (opt, value)], stdin=chat_ok,
                expect=None if domain_ok("int", value, 1) else "error")

    def eval_base(skip):
        def base():
            argv = ["eval", "--model", clean, "--data", data2]
            return argv + ([] if skip == "max-new-tokens" else ["--max-new-tokens", "8"])
        return base
    numeric("eval", "threads", "int", eval_base(None), 1)
    numeric("eval", "limit", "int", eval_base(None), 0)
    numeric("eval", "batch-size", "int", eval_base(None), 1)
    numeric("eval", "max-new-tokens", "int", eval_base("max-new-tokens"), 1, values=int_values + [INT_MAX])

    def bench_base(skip, model=clean):
        def base():
            argv = ["bench", "--model", model, "--no-machine-limits"]
            if skip != "prompt-tokens":
                argv += ["--prompt-tokens", "8"]
            if skip != "new-tokens":
                argv += ["--new-tokens", "4"]
            return argv
        return base
    numeric("bench", "threads", "int", bench_base(None), 1)
    # A huge --prompt-tokens builds its text before anything checks the context; a huge --new-tokens ignores
    # end-of-sequence, so it runs on a copy whose context is 256 tokens.
    numeric("bench", "prompt-tokens", "int", bench_base("prompt-tokens"), 0, huge_base=bench_base("prompt-tokens", ctx))
    numeric("bench", "new-tokens", "int", bench_base("new-tokens"), 1, values=int_values + [INT_MAX],
            huge_base=bench_base("new-tokens", ctx))
    # --runs has no huge value: a billion repetitions is a legitimately long run, not a hang.
    numeric("bench", "runs", "int", bench_base(None), 1, values=["-1", "0", "abc", "1.5"])
    numeric("bench-image", "runs", "int", lambda: ["bench-image", "--image", shapes1], 1, values=["-1", "0", "abc", "1.5"])

    for opt in ("max-image-pixels", "longest-edge", "shortest-edge"):
        for value in int_values:
            add("num/preprocess --%s=%s" % (opt, value),
                prep(clean, shapes1, "num-%s-%s" % (opt, value)) + ["--%s=%s" % (opt, value)],
                expect=None if domain_ok("int", value, 1) else "error")

    # -- 2. damaged checkpoints ------------------------------------------------------------------------------------
    def ckpt(slug, mutate, expect=None, commands=("generate",), fifo=False, gen_extra=("--max-new-tokens", "8")):
        model = world.model(slug, mutate)
        for command in commands:
            if command == "generate":
                argv = gen(model, *gen_extra)
            elif command == "tokenize":
                argv = ["tokenize", "--model", model, "--text", "<image>hello"]
            elif command == "preprocess":
                argv = prep(model, shapes1, "ckpt-" + slug)
            add("ckpt/%s [%s]" % (slug, command), argv, expect=expect if command == "generate" else None,
                fifo_cap=fifo)

    E = "error"
    # config.json: the text model
    ckpt("config-text-num_key_value_heads-0", cfg(text_config__num_key_value_heads=0), E)
    ckpt("config-text-num_key_value_heads-3", cfg(text_config__num_key_value_heads=3), E)
    ckpt("config-text-num_attention_heads-0", cfg(text_config__num_attention_heads=0), E)
    ckpt("config-text-num_attention_heads-3-hidden-not-divisible", cfg(text_config__num_attention_heads=3), E)
    ckpt("config-text-hidden_size-130-not-divisible", cfg(text_config__hidden_size=130), E)
    ckpt("config-text-hidden_size-130-no-head_dim", cfg(text_config__hidden_size=130, text_config__head_dim=DELETE), E)
    ckpt("config-text-vocab_size-negative", cfg(text_config__vocab_size=-1), E)
    ckpt("config-text-vocab_size-0", cfg(text_config__vocab_size=0), E)
    ckpt("config-text-vocab_size-2^62", cfg(text_config__vocab_size=2**62), E)
    ckpt("config-text-hidden_size-2^62", cfg(text_config__hidden_size=2**62), E)
    ckpt("config-text-intermediate_size-2^62", cfg(text_config__intermediate_size=2**62), E)
    ckpt("config-text-num_hidden_layers-2^40", cfg(text_config__num_hidden_layers=2**40), E)
    ckpt("config-text-num_hidden_layers-0", cfg(text_config__num_hidden_layers=0), E)
    ckpt("config-text-rms_norm_eps-0", cfg(text_config__rms_norm_eps=0))
    ckpt("config-text-rms_norm_eps-negative", cfg(text_config__rms_norm_eps=-1), E)
    ckpt("config-text-rms_norm_eps-string", cfg(text_config__rms_norm_eps="x"), E)
    ckpt("config-text-rms_norm_eps-1e400", json_text("config.json", lambda t: t.replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": 1e400')), E)
    ckpt("config-text-rms_norm_eps-NaN-literal", json_text("config.json", lambda t: t.replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": NaN')), E)
    ckpt("config-text-rope_theta-0", cfg(text_config__rope_parameters__rope_theta=0), E)
    ckpt("config-text-rope_theta-negative", cfg(text_config__rope_parameters__rope_theta=-10000), E)
    ckpt("config-text-rope_theta-legacy-0", cfg(text_config__rope_parameters=DELETE, text_config__rope_theta=0), E)
    ckpt("config-text-rope_type-yarn", cfg(text_config__rope_parameters__rope_type="yarn"), E)
    ckpt("config-text-head_dim-0", cfg(text_config__head_dim=0), E)
    ckpt("config-text-head_dim-33-odd", cfg(text_config__head_dim=33), E)
    ckpt("config-text-head_dim-negative", cfg(text_config__head_dim=-32), E)
    ckpt("config-text-max_position_embeddings-0", cfg(text_config__max_position_embeddings=0), E)
    ckpt("config-text-max_position_embeddings-4", cfg(text_config__max_position_embeddings=4), E)
    ckpt("config-text-sliding_window-0", cfg(text_config__sliding_window=0), E)
    ckpt("config-text-hidden_act-relu", cfg(text_config__hidden_act="relu"), E)
    ckpt("config-text-hidden_size-128.5", cfg(text_config__hidden_size=128.5), E)
    ckpt("config-text-hidden_size-string", cfg(text_config__hidden_size="128"), E)
    ckpt("config-text-hidden_size-null", cfg(text_config__hidden_size=None), E)
    ckpt("config-text-missing-hidden_size", cfg(text_config__hidden_size=DELETE), E)
    ckpt("config-text-missing-vocab_size", cfg(text_config__vocab_size=DELETE), E)
    ckpt("config-text-missing-num_key_value_heads", cfg(text_config__num_key_value_heads=DELETE), E)
    ckpt("config-text_config-missing", cfg(text_config=DELETE), E)
    ckpt("config-text_config-list", cfg(text_config=[1, 2]), E)
    # config.json: the image token
    ckpt("config-image_token_id-out-of-vocabulary", cfg(image_token_id=40000), E)
    ckpt("config-image_token_id-32000-not-the-tokenizers-image", cfg(image_token_id=32000), E)
    ckpt("config-image_token_id-1-bos", cfg(image_token_id=1), E)
    ckpt("config-image_token_id-negative", cfg(image_token_id=-1), E)
    # config.json: vision tower and perceiver
    ckpt("config-vision-patch_size-0", cfg(vision_config__patch_size=0), E)
    ckpt("config-vision-patch_size-larger-than-image", cfg(vision_config__patch_size=200), E)
    ckpt("config-vision-num_attention_heads-5", cfg(vision_config__num_attention_heads=5), E)
    ckpt("config-vision-image_size-2^31", cfg(vision_config__image_size=2**31), E)
    ckpt("config-vision-layer_norm_eps-negative", cfg(vision_config__layer_norm_eps=-1), E)
    ckpt("config-perceiver-resampler_n_latents-0", cfg(perceiver_config__resampler_n_latents=0), E)
    ckpt("config-perceiver-num_key_value_heads-3", cfg(perceiver_config__num_key_value_heads=3), E)
    ckpt("config-perceiver-resampler_head_dim-2^62", cfg(perceiver_config__resampler_head_dim=2**62), E)
    # config.json: the file itself
    ckpt("config-model_type-missing", cfg(model_type=DELETE), E)
    ckpt("config-model_type-idefics", cfg(model_type="idefics"), E)
    ckpt("config-model_type-mistral", cfg(model_type="mistral"), E)
    ckpt("config-truncated", lambda d: replace_file(d / "config.json", demo_bytes("config.json")[:700]), E)
    ckpt("config-empty", raw_file("config.json", b""), E)
    ckpt("config-not-json", raw_file("config.json", b"this is not json\n"), E)
    ckpt("config-top-level-array", raw_file("config.json", b"[]"), E)
    ckpt("config-invalid-utf8", raw_file("config.json", b'{"model_type": "idefics2\xff\xfe"}'), E)
    ckpt("config-nested-100000-brackets", raw_file("config.json", b"[" * 100000), E)
    ckpt("config-nested-100000-objects", raw_file("config.json", b'{"a":' * 100000), E)
    ckpt("config-directory", special("config.json", "dir"), E)
    ckpt("config-missing", special("config.json", "missing"), E)
    ckpt("config-symlink-to-dev-zero", special("config.json", "symlink", "/dev/zero"), E)
    ckpt("config-fifo", special("config.json", "fifo"), E, fifo=True)

    # generation_config.json (without --max-new-tokens, so the file's own value counts)
    def gencfg(slug, obj_changes, expect=None, raw=None, kind=None):
        if raw is not None:
            mutate = raw_file("generation_config.json", raw)
        elif kind:
            mutate = special("generation_config.json", kind)
        else:
            mutate = edit_json("generation_config.json", lambda o: o.update(obj_changes))
        ckpt("generation_config-" + slug, mutate, expect, gen_extra=())

    gencfg("temperature-0-do_sample-false", {"temperature": 0, "do_sample": False}, "ok")
    gencfg("max_new_tokens-negative-5", {"max_new_tokens": -5}, E)
    gencfg("max_new_tokens-0", {"max_new_tokens": 0}, E)
    gencfg("do_sample-temperature-negative", {"do_sample": True, "temperature": -1, "max_new_tokens": 8}, E)
    gencfg("do_sample-top_k-negative", {"do_sample": True, "top_k": -1, "max_new_tokens": 8}, E)
    gencfg("top_p-2", {"do_sample": True, "top_p": 2, "max_new_tokens": 8}, E)
    gencfg("repetition_penalty-0", {"repetition_penalty": 0, "max_new_tokens": 8}, E)
    gencfg("eos_token_id-string", {"eos_token_id": "x", "max_new_tokens": 8}, E)
    gencfg("eos_token_id-out-of-vocabulary", {"eos_token_id": [99999999], "max_new_tokens": 8})
    gencfg("bad_words_ids-empty-sequence", {"bad_words_ids": [[]], "max_new_tokens": 8}, E)
    gencfg("bad_words_ids-out-of-vocabulary", {"bad_words_ids": [[99999999]], "max_new_tokens": 8})
    gencfg("bad_words_ids-negative", {"bad_words_ids": [[-1]], "max_new_tokens": 8})
    gencfg("min_new_tokens-negative", {"min_new_tokens": -1, "max_new_tokens": 8}, E)
    gencfg("pad_token_id-1.5", {"pad_token_id": 1.5, "max_new_tokens": 8}, E)
    gencfg("truncated", None, E, raw=demo_bytes("generation_config.json")[:60])
    gencfg("not-json", None, E, raw=b"nope")
    gencfg("directory", None, E, kind="dir")
    gencfg("fifo", None, E, kind="fifo")
    cases[-1].fifo_cap = True

    # preprocessor_config.json: preprocess (reads only this file) and generate
    def pre(slug, changes=None, expect=None, raw=None, kind=None, size=None, generate=False):
        if raw is not None:
            mutate = raw_file("preprocessor_config.json", raw)
        elif kind:
            mutate = special("preprocessor_config.json", kind)
        else:
            def fn(o):
                o.update(changes or {})
                if size is not None:
                    o["size"] = size
            mutate = edit_json("preprocessor_config.json", fn)
        model = world.model("preprocessor-" + slug, mutate)
        fifo = kind == "fifo"
        add("ckpt/preprocessor_config-%s [preprocess]" % slug, prep(model, shapes1, "pre-" + slug), expect=expect,
            fifo_cap=fifo)
        if generate:                     # the same loader; generate only where the model could hide the damage
            add("ckpt/preprocessor_config-%s [generate]" % slug, gen(model, "--max-new-tokens", "8"), expect=expect,
                fifo_cap=fifo)

    pre("image_std-zero", {"image_std": [0, 0, 0]}, E, generate=True)
    pre("image_std-nan", None, E, raw=demo_bytes("preprocessor_config.json").replace(b'"image_std": [\n    0.5', b'"image_std": [\n    NaN'))
    pre("image_mean-string", {"image_mean": "x"}, E)
    pre("rescale_factor-0", {"rescale_factor": 0}, generate=True)
    pre("size-longest_edge-0", size={"longest_edge": 0, "shortest_edge": 56}, expect=E, generate=True)
    pre("size-shortest_edge-negative-3", size={"longest_edge": 112, "shortest_edge": -3}, expect=E)
    pre("size-both-1e6", size={"longest_edge": 1000000, "shortest_edge": 1000000}, expect=E, generate=True)
    pre("size-shortest_edge-1e6", size={"longest_edge": 112, "shortest_edge": 1000000}, expect=E)
    pre("size-2^62", size={"longest_edge": 2**62, "shortest_edge": 2**62}, expect=E)
    pre("size-height-width-0", size={"height": 0, "width": 0}, expect=E, generate=True)
    pre("size-empty", size={}, expect=E)
    pre("do_image_splitting-string", {"do_image_splitting": "yes"}, E)
    pre("truncated", None, E, raw=demo_bytes("preprocessor_config.json")[:100])
    pre("directory", None, E, kind="dir")
    pre("fifo", None, E, kind="fifo")

    # tokenizer files: tokenize and generate
    def tok_json(fn):
        return edit_json("tokenizer.json", fn)

    def drop_image_token(t):
        t["added_tokens"] = [a for a in t["added_tokens"] if a["content"] != "<image>"]
        t["model"]["vocab"].pop("<image>", None)

    def image_token_id(value):
        def fn(t):
            for a in t["added_tokens"]:
                if a["content"] == "<image>":
                    a["id"] = value
        return fn

    tok_cases = [
        ("truncated", lambda d: replace_file(d / "tokenizer.json", demo_bytes("tokenizer.json")[:50000]), E),
        ("empty", raw_file("tokenizer.json", b""), E),
        ("missing", special("tokenizer.json", "missing"), E),
        ("not-json", raw_file("tokenizer.json", b"\x00\x01garbage"), E),
        ("directory", special("tokenizer.json", "dir"), E),
        ("nested-100000-brackets", raw_file("tokenizer.json", b"[" * 100000), E),
        ("without-image-token", tok_json(drop_image_token), E),
        # tokenizer_config.json's added_tokens_decoder still gives <image> the id 32001, which transformers
        # follows too (AutoTokenizer maps "<image>" to 32001): a consistent result, not a silent failure.
        ("image-token-id-99999", tok_json(image_token_id(99999)), None),
        ("image-token-id-negative", tok_json(image_token_id(-1)), None),
        ("model-type-unknown", tok_json(lambda t: t["model"].update(type="Quantum")), E),
        ("vocab-empty", tok_json(lambda t: t["model"].update(vocab={}, merges=[])), E),
        ("fifo", special("tokenizer.json", "fifo"), E),
    ]
    for slug, mutate, expect in tok_cases:
        commands = ("tokenize", "generate") if slug in ("truncated", "without-image-token", "image-token-id-99999",
                                                        "image-token-id-negative", "fifo") else ("tokenize",)
        ckpt("tokenizer-" + slug, mutate, expect, commands=commands, fifo=slug == "fifo")
    ckpt("tokenizer_config-truncated", lambda d: replace_file(d / "tokenizer_config.json",
                                                               demo_bytes("tokenizer_config.json")[:300]), E,
         commands=("tokenize", "generate"))
    template = lambda source: edit_json("chat_template.json", lambda o: o.update(chat_template=source))
    ckpt("chat_template-syntax-error", template("{% for m in messages %}{{ m"), E)
    ckpt("chat_template-raise_exception", template("{{ raise_exception('boom') }}"), E)
    ckpt("chat_template-recursive-macro", template("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"), E)
    ckpt("chat_template-range-1e9", template("{% for i in range(1000000000) %}x{% endfor %}"), E)
    ckpt("chat_template-string-times-1e12", template("{{ 'x' * 1000000000000 }}"), E)
    ckpt("chat_template-not-a-string", template(12), E)

    # safetensors
    ckpt("safetensors-truncated-half", st_raw(lambda b: b[:len(b) // 2]), E)
    ckpt("safetensors-zero-length", raw_file(SHARD, b""), E)
    ckpt("safetensors-7-bytes", raw_file(SHARD, b"\x10" * 7), E)
    ckpt("safetensors-header-length-2^64-1", st_raw(lambda b: b"\xff" * 8 + b[8:]), E)
    ckpt("safetensors-header-length-past-end", st_raw(lambda b: struct.pack("<Q", len(b)) + b[8:]), E)
    ckpt("safetensors-header-not-json", st_edit(lambda h, b: st_join(h, b, raw=b"\x01not json" + b" " * 100)), E)
    ckpt("safetensors-header-array", st_edit(lambda h, b: st_join(h, b, raw=b"[1, 2, 3]")), E)
    ckpt("safetensors-header-nested-100000", st_edit(lambda h, b: st_join(h, b, raw=b"[" * 100000)), E)
    ckpt("safetensors-dtype-unknown", st_set("dtype", "Q7"), E)
    ckpt("safetensors-dtype-I64", st_set("dtype", "I64"), E)
    ckpt("safetensors-shape-negative", st_set("shape", [-1, 128]), E)
    ckpt("safetensors-shape-overflow", st_set("shape", [2**40, 2**40, 2**40]), E)
    ckpt("safetensors-offsets-reversed", st_edit(lambda h, b: h[tensors(h)[0]].update(
        data_offsets=list(reversed(h[tensors(h)[0]]["data_offsets"])))), E)
    ckpt("safetensors-offsets-past-end", st_edit(lambda h, b: h[tensors(h)[-1]].update(
        data_offsets=[h[tensors(h)[-1]]["data_offsets"][0], len(b) + 4096])), E)
    ckpt("safetensors-offsets-huge", st_edit(lambda h, b: h[tensors(h)[-1]].update(
        data_offsets=[2**62, 2**62 + 2])), E)
    ckpt("safetensors-tensors-overlap", st_edit(st_overlap, SHARD1), E)
    ckpt("safetensors-missing", special(SHARD, "missing"), E)
    ckpt("safetensors-directory", special(SHARD, "dir"), E)
    ckpt("safetensors-symlink-to-dev-zero", special(SHARD, "symlink", "/dev/zero"), E)
    ckpt("safetensors-fifo", special(SHARD, "fifo"), E, fifo=True)
    index = "model.safetensors.index.json"
    ckpt("index-weight_map-missing", edit_json(index, lambda o: o.pop("weight_map")), E)
    ckpt("index-shard-path-traversal", edit_json(index, lambda o: o["weight_map"].update(
        {"lm_head.weight": "../../../../../../etc/passwd"})), E)
    ckpt("index-shard-nonexistent", edit_json(index, lambda o: o["weight_map"].update(
        {"lm_head.weight": "model-00003-of-00002.safetensors"})), E)
    ckpt("index-tensor-not-in-any-shard", edit_json(index, lambda o: o["weight_map"].update(
        {"model.no.such.tensor": SHARD})), E)
    ckpt("index-truncated", lambda d: replace_file(d / index, demo_bytes(index)[:500]), E)

    # -- 3. images -------------------------------------------------------------------------------------------------
    imgs = {}

    def img(slug, data=None, kind=None, target=None):
        if kind:
            imgs[slug] = world.image(slug, lambda dest: replace_with(dest, kind, target))
        else:
            imgs[slug] = world.image(slug, write_bytes(data))
        return imgs[slug]

    img("png-truncated-half", png_bytes[:len(png_bytes) // 2])
    img("png-truncated-33-bytes", png_bytes[:33])
    img("png-signature-only", png_bytes[:8])
    img("png-huge-100000x100000", png(100000, 100000))
    img("png-huge-65535x65535-gray", png(65535, 65535, color_type=0))
    img("png-width-0", png(0, 10))
    img("png-bad-ihdr-crc", png(4, 4, idat=zlib.compress(b"\x00" * 52), ihdr_crc=0))
    img("png-bit-depth-3", png(4, 4, bit_depth=3))
    img("png-color-type-7", png(4, 4, color_type=7))
    img("png-interlace-9", png(4, 4, interlace=9))
    img("png-idat-bomb-1x1-50MB", lambda: png(1, 1, idat=zlib.compress(b"\x00" * 50_000_000, 9)))
    img("png-no-idat-no-iend", png(4, 4, idat=b"", iend=False)[:-12])
    if jpeg_bytes:
        img("jpeg-truncated-half", jpeg_bytes[:len(jpeg_bytes) // 2])
        img("jpeg-soi-only", b"\xff\xd8\xff")
        img("jpeg-huge-65500x65500", jpeg_with_size(jpeg_bytes, 65500, 65500))
        img("jpeg-width-0", jpeg_with_size(jpeg_bytes, 16, 0))
    img("bmp-huge-100000x100000", bmp(100000, 100000))
    img("bmp-negative-width", bmp(-5, 5))
    img("bmp-bpp-0", bmp(2, 2, bpp=0))
    img("ppm-header-only-huge", b"P6\n100000 100000\n255\n")
    img("ppm-maxval-0", b"P6\n2 2\n0\n" + b"\x00" * 12)
    img("ppm-negative-width", b"P6\n-1 2\n255\n" + b"\x00" * 12)
    img("text-named-png", b"hello, I am not an image\n")
    img("zero-bytes", b"")
    img("directory", kind="dir")
    img("fifo", kind="fifo")
    img("symlink-to-dev-zero", kind="symlink", target="/dev/zero")
    imgs["nonexistent"] = str(world.root / "images" / "does-not-exist.png")

    port = world.port
    urls = {
        "url-file-scheme": "file://" + shapes1,
        "url-ftp-scheme": "ftp://127.0.0.1:%d/ok.png" % port,
        "url-HTTP-uppercase": "HTTP://127.0.0.1:%d/ok.png" % port,
        "url-refused-port-9": "http://127.0.0.1:9/x.png",
        "url-https-to-plain-http": "https://127.0.0.1:%d/ok.png" % port,
        "url-404": "http://127.0.0.1:%d/missing.png" % port,
        "url-html-body": "http://127.0.0.1:%d/text" % port,
        "url-redirect-loop": "http://127.0.0.1:%d/loop" % port,
        "url-content-length-200MB": "http://127.0.0.1:%d/big" % port,
        "url-truncated-body": "http://127.0.0.1:%d/trunc" % port,
        "url-connection-closed": "http://127.0.0.1:%d/reset" % port,
        "url-not-a-url": "http://[::1",
        "data-uri-not-base64": "data:image/png,iVBORw0KGgo",
        "data-uri-invalid-base64": "data:image/png;base64,!!!!****",
        "data-uri-empty": "data:",
        "data-uri-no-comma": "data:image/png;base64",
        "data-uri-text-payload": "data:image/png;base64," + base64.b64encode(b"not an image").decode(),
    }
    expect_ok_refs = {"url-ok": "http://127.0.0.1:%d/ok.png" % port,
                      "data-uri-valid": "data:image/png;base64," + base64.b64encode(png_bytes).decode()}
    fifo_image = imgs["fifo"]
    for slug, ref in list(imgs.items()) + list(urls.items()):
        expect = None if slug.startswith("url-file") else E
        add("image/%s [preprocess]" % slug, prep(clean, ref, "img-" + slug), expect=expect, fifo_cap=ref == fifo_image)
    for slug, ref in expect_ok_refs.items():
        add("image/%s [preprocess]" % slug, prep(clean, ref, "img-" + slug), expect="ok")
    for slug in ("png-truncated-half", "png-huge-100000x100000", "zero-bytes", "directory", "nonexistent",
                 "bmp-huge-100000x100000", "png-idat-bomb-1x1-50MB", "fifo"):
        add("image/%s [generate]" % slug, gen(clean, "--max-new-tokens", "8", image=imgs[slug]), expect=E,
            fifo_cap=slug == "fifo")
    for slug in ("url-refused-port-9", "url-connection-closed", "data-uri-not-base64"):
        add("image/%s [generate]" % slug, gen(clean, "--max-new-tokens", "8", image=urls[slug]), expect=E)
    add("image/png-huge-100000x100000 --max-image-pixels=1e10 [preprocess]",
        prep(clean, imgs["png-huge-100000x100000"], "img-huge-1e10", "--max-image-pixels=10000000000"), expect=E)
    add("image/jpeg-huge --max-image-pixels=1e10 [preprocess]",
        prep(clean, imgs.get("jpeg-huge-65500x65500", imgs["png-huge-65535x65535-gray"]), "img-jhuge-1e10",
             "--max-image-pixels=10000000000"), expect=E)
    for slug in ("png-huge-100000x100000", "png-truncated-half", "directory", "fifo", "url-refused-port-9"):
        ref = imgs.get(slug) or urls[slug]
        add("image/%s [bench-image]" % slug, ["bench-image", "--image", ref, "--runs", "1"], expect=E,
            fifo_cap=slug == "fifo")
    add("image/png-huge-100000x100000 [bench]", ["bench", "--model", clean, "--no-machine-limits", "--prompt-tokens",
                                                  "8", "--new-tokens", "2", "--image", imgs["png-huge-100000x100000"]],
        expect=E)

    # -- 4. output paths -------------------------------------------------------------------------------------------
    target = world.lazy(world.root / "misc" / "symlink-target.bin",
                        lambda: replace_file(world.root / "misc" / "symlink-target.bin", b"keep me"))
    link = world.lazy(world.root / "out" / "link.safetensors",
                      lambda: (world.ensure(target), os.symlink(target, world.root / "out" / "link.safetensors")))
    fifo_out = world.lazy(world.root / "out" / "fifo.safetensors", lambda: os.mkfifo(world.root / "out" / "fifo.safetensors"))
    devfull_link = world.lazy(world.root / "out" / "devfull-link.safetensors",
                              lambda: os.symlink("/dev/full", world.root / "out" / "devfull-link.safetensors"))
    missing_dir = str(world.root / "out" / "no-such-folder" / "x.safetensors")
    base_pre = ["preprocess", "--model", clean, "--image", shapes1, "--output"]
    add("output/preprocess into a missing folder", base_pre + [missing_dir], expect=E)
    add("output/preprocess onto a symlink", base_pre + [link], check=still_symlink(link))
    c = add("output/preprocess onto a FIFO (with a reader)", base_pre + [fifo_out], check=still_fifo(fifo_out))
    c.fifo_out = fifo_out
    add("output/preprocess onto /dev/full", base_pre + ["/dev/full"], expect=E, as_nobody=True)
    add("output/preprocess onto a symlink to /dev/full", base_pre + [devfull_link], expect=E, as_nobody=True,
        check=still_symlink(devfull_link))
    add("output/preprocess onto a directory", base_pre + [str(world.root / "out")], expect=E)
    add("output/preprocess onto an empty path", base_pre + [""], expect=E)

    late_data = world.data("late.jsonl", lambda d: (world.ensure(shapes1), replace_file(d, (
        item(shapes1) + "\n" + item(str(world.root / "images" / "gone.png")) + "\n").encode())))
    eval_out = lambda outputs: ["eval", "--model", clean, "--data", late_data, "--batch-size", "1",
                                "--max-new-tokens", "4", "--outputs", outputs]
    add("output/eval --outputs into a missing folder", eval_out(str(world.root / "out" / "no-such-dir" / "o.jsonl")),
        expect=E, check=names_path("no-such-dir"))
    add("output/eval --outputs onto a directory", eval_out(str(world.root / "out")), expect=E,
        check=names_path(str(world.root / "out")))
    eval_link_target = world.lazy(world.root / "misc" / "eval-target.jsonl",
                                  lambda: replace_file(world.root / "misc" / "eval-target.jsonl", b"keep\n"))
    eval_link = world.lazy(world.root / "out" / "eval-link.jsonl", lambda: (
        world.ensure(eval_link_target), os.symlink(eval_link_target, world.root / "out" / "eval-link.jsonl")))
    add("output/eval --outputs onto a symlink", ["eval", "--model", clean, "--data", data2, "--max-new-tokens", "4",
                                                 "--outputs", eval_link], check=still_symlink(eval_link))
    add("output/eval --outputs onto /dev/full", ["eval", "--model", clean, "--data", data2, "--max-new-tokens", "4",
                                                 "--outputs", "/dev/full"], expect=E, as_nobody=True)
    add("output/tokenize > /dev/full", ["tokenize", "--model", clean, "--text", "hello"], stdout="devfull", expect=E)
    add("output/generate > /dev/full", gen(clean, "--max-new-tokens", "8"), stdout="devfull", expect=E)
    add("output/generate --json > /dev/full", gen(clean, "--max-new-tokens", "8", "--json"), stdout="devfull", expect=E)
    add("output/eval > /dev/full", ["eval", "--model", clean, "--data", data2, "--max-new-tokens", "4"],
        stdout="devfull", expect=E)
    add("output/bench-image > /dev/full", ["bench-image", "--image", shapes1, "--runs", "1"], stdout="devfull", expect=E)
    add("output/tokenize | closed pipe", ["tokenize", "--model", clean, "--text", "hello"], stdout="closed-pipe",
        expect=E)
    add("output/generate | closed pipe", gen(clean, "--max-new-tokens", "8"), stdout="closed-pipe", expect=E)
    add("output/tokenize | closed pipe, SIGPIPE ignored", ["tokenize", "--model", clean, "--text", "hello"],
        stdout="closed-pipe-sigpipe-ignored", expect=E)
    add("output/generate | closed pipe, SIGPIPE ignored", gen(clean, "--max-new-tokens", "8"),
        stdout="closed-pipe-sigpipe-ignored", expect=E)

    # -- 5. prompts, chat input and eval data ---------------------------------------------------------------------
    raw = lambda prompt, *extra: ["generate", "--model", clean, "--prompt", prompt, "--max-new-tokens", "8"] + list(extra)
    add("prompt/invalid UTF-8 (chat)", gen(clean, "--max-new-tokens", "8", prompt=b"How many \xff\xfe red \xc3\x28 circles?"))
    add("prompt/invalid UTF-8 (raw, --json)", raw(b"\xed\xa0\x80\xff<image>", "--image", shapes1, "--json"))
    add("prompt/tokenize invalid UTF-8", ["tokenize", "--model", clean, "--text", b"\xff\xfe\xc3\x28\xf0\x9f"])
    add("prompt/starting with '-' as a separate word", raw("-x"))  # read as the value (documented)
    add("prompt/starting with '-' as --prompt=-x", ["generate", "--model", clean, "--prompt=-x", "--max-new-tokens", "8"])
    add("prompt/empty (raw)", raw(""))
    add("prompt/empty (chat)", gen(clean, "--max-new-tokens", "8", prompt=""))
    add("prompt/10000 <image> and no image", raw("<image>" * 10000), expect=E)
    add("prompt/10000 <image> and one image", raw("<image>" * 10000, "--image", shapes1), expect=E)
    add("prompt/10000 <image> in a chat turn", gen(clean, "--max-new-tokens", "8", prompt="<image>" * 10000), expect=E)
    add("prompt/<image> in a chat turn with one image", gen(clean, "--max-new-tokens", "8", prompt="<image>" + QUESTION), expect=E)
    add("prompt/<image> without --image", raw("<image>What is this?"), expect=E)
    add("prompt/two images, one <image>", raw("<image>What?", "--image", shapes1, "--image", shapes2), expect=E)
    add("prompt/60000 words (past the context)", raw("x " * 60000), expect=E)
    add("prompt/special tokens as text", raw("<s></s><end_of_utterance><fake_token_around_image><unk>"))
    add("prompt/combining marks x5000", raw("e\u0301" * 5000))
    add("prompt/--stop ''", gen(clean, "--max-new-tokens", "8", "--stop", ""), expect=E)
    add("prompt/--stop of 10000 characters", gen(clean, "--max-new-tokens", "8", "--stop", "z" * 10000))
    add("prompt/--system without --chat", raw("hi", "--system", "be brief"), expect=E)
    add("prompt/--image-splitting with --no-image-splitting",
        gen(clean, "--max-new-tokens", "8", "--image-splitting", "--no-image-splitting"), expect=E)
    add("prompt/tokenize 10000 <image>", ["tokenize", "--model", clean, "--text", "<image>" * 10000])
    add("prompt/tokenize 120 KB", ["tokenize", "--model", clean, "--text", "hello world " * 10000])
    add("prompt/tokenize empty text", ["tokenize", "--model", clean, "--text", ""])

    chat = lambda lines, **kw: add(kw.pop("name"), ["chat", "--model", clean], stdin=lines, **kw)
    chat(("/image\n%s\n/quit\n" % QUESTION).encode(), name="chat/bare /image", expect_message=r"(?i)image")
    chat(("/image /nonexistent.png\n%s\n/quit\n" % QUESTION).encode(), name="chat//image /nonexistent",
         expect_message=r"nonexistent")
    chat(b"/unknown\n/quit\n", name="chat//unknown", expect_message=r"(?i)unknown|command")
    chat(b"/help\n/quit\n", name="chat//help", expect_message=r"/image[\s\S]*/quit|/quit[\s\S]*/image")
    chat(("/image %s\n/quit\n" % fifo_image).encode(), name="chat//image FIFO", fifo_cap=True)
    chat(b"/image http://127.0.0.1:9/x.png\n/quit\n", name="chat//image refused URL", expect_message=r"127\.0\.0\.1")
    chat(("/image %s\n/quit\n" % imgs["png-huge-100000x100000"]).encode(), name="chat//image huge PNG header",
         expect_message=r"(?i)limit|pixels|size")
    chat(("/image %s\n/reset\n%s\n/quit\n" % (shapes1, QUESTION)).encode(), name="chat//reset with a pending image")
    chat(("/image %s\n/image %s\n/image %s\n%s\n/quit\n" % (shapes1, shapes1, shapes2, QUESTION)).encode(),
         name="chat/three pending images")
    chat(b"\xff\xfe\xc3\x28 hello\n/quit\n", name="chat/invalid UTF-8 line")
    chat(("<image>" * 10000 + "\n/quit\n").encode(), name="chat/10000 <image> in a message",
         expect_message=r"(?i)image")
    chat(("x " * 200000 + "\n/quit\n").encode(), name="chat/400 KB line (past the context)",
         expect_message=r"(?i)context|tokens")
    chat(b"", name="chat/empty stdin")
    chat(QUESTION.encode(), name="chat/EOF without newline or /quit")

    def data_file(slug, content, expect=None, **kw):
        path = world.data(slug, lambda d: (world.ensure(shapes1), world.ensure(shapes2),
                                           replace_file(d, content() if callable(content) else content)))
        add("eval/" + slug, ["eval", "--model", clean, "--data", path, "--max-new-tokens", "4"], expect=expect, **kw)

    good = lambda: (item(shapes1) + "\n").encode()
    data_file("empty.jsonl", b"", E)
    data_file("blank-lines.jsonl", b"\n\n\n", E)
    data_file("invalid-json-lines.jsonl", b"{not json}\n{\"image\": \n", E)
    data_file("crlf.jsonl", lambda: (item(shapes1) + "\r\n" + item(shapes2, "Is the purple square on the left or "
                                                                  "the right?", "left", "position") + "\r\n").encode(), "ok")
    data_file("missing-fields.jsonl", b'{"image": "x.png"}\n', E)
    data_file("image-nonexistent.jsonl", (item("/nonexistent/0000.png") + "\n").encode(), E)
    data_file("image-path-traversal.jsonl", (item("../../../../../../etc/passwd") + "\n").encode(), E)
    data_file("latin1-not-utf8.jsonl", lambda: good()[:-1] + b'\n{"image": "caf\xe9"}\n', E)
    data_file("utf8-bom.jsonl", lambda: b"\xef\xbb\xbf" + good())
    data_file("array-line.jsonl", b"[1, 2, 3]\n", E)
    data_file("answer-is-a-number.jsonl", lambda: (json.dumps({"image": shapes1, "question": QUESTION, "answer": 3,
                                                               "type": "count"}) + "\n").encode(), E)
    data_file("nested-100000.jsonl", b"[" * 100000 + b"\n", E)
    eval_dir = str(world.root / "data")
    add("eval/data is a directory", ["eval", "--model", clean, "--data", eval_dir], expect=E)
    add("eval/data nonexistent", ["eval", "--model", clean, "--data", str(world.root / "data" / "nope.jsonl")], expect=E)
    eval_fifo = world.data("fifo.jsonl", lambda d: os.mkfifo(d))
    add("eval/data is a FIFO", ["eval", "--model", clean, "--data", eval_fifo], expect=E, fifo_cap=True)

    # -- 6. model selection ----------------------------------------------------------------------------------------
    hub = world.root / "misc" / "hub"

    def build_hub():
        repo = hub / "models--evil--model"
        (repo / "refs").mkdir(parents=True)
        (repo / "snapshots").mkdir()
        (repo / "refs" / "main").write_text("../../../../../../tmp")
        (repo / "refs" / "hash").write_text("0" * 40)
        snap = repo / "snapshots" / ("0" * 40)
        snap.mkdir()
        os.symlink("/etc/passwd", snap / "config.json")
    world.lazy(hub, build_hub)
    hub_env = {"HF_HUB_CACHE": str(hub)}
    add("model/no arguments", [], expect=None)
    add("model/unknown subcommand", ["frobnicate"], expect=E)
    add("model/--model is a file", ["tokenize", "--model", shapes1, "--text", "x"], expect=E)
    add("model/--model nonexistent", ["tokenize", "--model", str(world.root / "nope"), "--text", "x"], expect=E)
    add("model/--model empty", ["generate", "--model", "", "--prompt", "x"], expect=E)
    add("model/--model hub id not in the cache", ["tokenize", "--model", "nobody/nothing", "--text", "x"], expect=E)
    add("model/hub ref that is a path", ["tokenize", "--model", "evil/model", "--text", "x"], expect=E,
        env=hub_env)
    add("model/hub snapshot symlink leaving the cache", ["tokenize", "--model", "evil/model", "--revision", "hash",
                                                         "--text", "x"], expect=E, env=hub_env)
    add("model/--revision ../..", ["tokenize", "--model", "evil/model", "--revision", "../../x", "--text", "x"],
        expect=E, env=hub_env)
    add("model/--revision with a folder", ["tokenize", "--model", clean, "--revision", "main", "--text", "x"], expect=E)
    add("model/IDEFICS_KERNELS=bogus", gen(clean, "--max-new-tokens", "4"), env={"IDEFICS_KERNELS": "bogus"},
        expect_message=r"IDEFICS_KERNELS")
    add("model/IDEFICS_DEMO_MODEL nonexistent", ["tokenize", "--text", "x"],
        env={"IDEFICS_DEMO_MODEL": str(world.root / "nope")})
    add("model/preprocess without --image", ["preprocess", "--model", clean, "--output", world.out("noimg.st")], expect=E)
    return cases


# ----------------------------------------------------------------------------------------------------------------


def fingerprint(folder):
    digest = hashlib.sha256()
    for entry in sorted(Path(folder).rglob("*")):
        if entry.is_file():
            st = entry.stat()
            digest.update(str(entry).encode())
            digest.update(str((st.st_size, st.st_mtime_ns)).encode())
            if st.st_size < (2 << 20):
                digest.update(entry.read_bytes())
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the idefics executable to test")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a case counts as a hang (60)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--json", help="write every result to this file")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (2)")
    parser.add_argument("--memory-limit-mb", type=int, default=4096,
                        help="address-space limit of each run in MiB; 0 for none (4096)")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    args = parser.parse_args()

    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit("hostile_inputs.py: %s is not an executable file" % binary)
    if not DEMO.is_dir():
        sys.exit("hostile_inputs.py: the demo model %s is missing" % DEMO)

    before = {str(DEMO): fingerprint(DEMO), str(EXAMPLES): fingerprint(EXAMPLES)}
    devfull_was_char = stat.S_ISCHR(os.stat("/dev/full").st_mode) if os.path.exists("/dev/full") else False

    with tempfile.TemporaryDirectory(prefix="idefics-hostile-") as root:
        os.chmod(root, 0o755)            # the /dev/full cases run as nobody and read the model copy
        world = World(root)
        server = start_server((EXAMPLES / "shapes-1.png").read_bytes())
        world.port = server.server_address[1]
        cases = build_cases(world)
        names = [c.name for c in cases]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            sys.exit("hostile_inputs.py: duplicate case names: %s" % duplicates)
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        if args.list:
            for c in cases:
                print(c.name)
            return 0
        memory_limit = args.memory_limit_mb << 20 if args.memory_limit_mb > 0 else 0
        width = min(64, max((len(c.name) for c in cases), default=10))
        results = []
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_case, c, binary, world, args.timeout, memory_limit) for c in cases]
            for future in futures:
                result = future.result()
                results.append(result)
                print("%-*s %-9s %7s  %s" % (width, result["name"], result["class"], status_text(result),
                                              result["first_line"]), flush=True)
        server.shutdown()
        elapsed = time.monotonic() - started

    counts = {cls: sum(r["class"] == cls for r in results) for cls in CLASSES}
    summary = "cases %d: %s" % (len(results), ", ".join("%s %d" % (cls, counts[cls]) for cls in CLASSES))
    print()
    failures = [r for r in results if r["class"] in FAILURES]
    if failures:
        print("failures:")
        for r in failures:
            print("  %-9s %s: %s%s" % (r["class"], r["name"], r["first_line"] or "(no stderr)",
                                       "  [%s]" % r["note"] if r["note"] else ""))
        print()
    print(summary + "  (%.0f s)" % elapsed)

    problems = []
    for folder, digest in before.items():
        if fingerprint(folder) != digest:
            problems.append("%s changed during the run" % folder)
    if devfull_was_char and not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        problems.append("/dev/full is no longer a character device")
    for problem in problems:
        print("WARNING: " + problem, file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"binary": binary, "summary": summary, "counts": counts, "results": results}, f, indent=1)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
