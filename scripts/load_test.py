#!/usr/bin/env python3
"""Load and fault test of `idefics serve` on loopback (standard library only).

Starts the server on the demo model (or --model), answers every distinct request alone first (its single-run
answer), then for each concurrency level sends --requests requests from that many client threads: a third carry an
image (a data: URI of the Examples photos), half are streamed (TGI's /generate_stream), the rest /generate and a
share through OpenAI's /v1/chat/completions. Every answer must equal its single-run answer (greedy decoding).
Reports requests/s, generated tokens/s, latency p50/p99 and failures per level, then the faults: clients that
drop their stream after a few tokens, a burst past --max-concurrent-requests (429s expected, nothing else), and the
server's RSS before and after (it must come back near its baseline: the caches are bounded).

    swift build -c release
    python3 scripts/load_test.py --binary .build/release/idefics [--requests 300] [--levels 1,4,16]
        [--serve-option=--image-cache-mb=0 --serve-option=--prefix-cache-tokens=0] [--model DIR [--no-chat]]

Exits 1 if any request failed or differed from its single-run answer, or the server was unhealthy after the faults.
"""
import argparse
import base64
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Once upon a time", "The capital of France is", "1, 2, 3,", "A rainbow has", "The best way to learn is",
           "In the morning I", "Water boils at", "My favourite colour is"]
QUESTIONS = ["What shape is this?", "What colour is the shape?", "How many shapes are there?"]


def data_uri(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def start(binary, model, *extra):
    command = [binary, "serve", "--port", "0", *(["--model", model] if model else []), *extra]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in process.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, match.group(1)
    raise RuntimeError(f"the server did not start (exit {process.wait()})")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def post(url, body, timeout=600):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Case:
    """One distinct request: its route, body and how to read its text out of the answer."""

    def __init__(self, kind, prompt, image, new_tokens):
        self.kind, self.new_tokens = kind, new_tokens
        if kind == "chat":
            content = ([{"type": "image_url", "image_url": {"url": image}}] if image else []) + [{"type": "text", "text": prompt}]
            self.route = "/v1/chat/completions"
            self.body = {"model": "demo", "messages": [{"role": "user", "content": content}], "max_tokens": new_tokens}
        else:
            self.route = "/generate_stream" if kind == "stream" else "/generate"
            self.body = {"inputs": (f"![]({image})" if image else "") + prompt,
                         "parameters": {"max_new_tokens": new_tokens, "details": kind == "generate"}}

    def run(self, url):
        """(text, generated tokens) or raises with the server's answer."""
        status, text = post(url + self.route, self.body)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {text[:200]}")
        if self.kind == "chat":
            answer = json.loads(text)
            return answer["choices"][0]["message"]["content"], answer["usage"]["completion_tokens"]
        if self.kind == "stream":
            events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
            if any("error" in e for e in events):
                raise RuntimeError(f"stream error: {events[-1]}")
            return events[-1]["generated_text"], len(events)
        answer = json.loads(text)
        return answer["generated_text"], answer["details"]["generated_tokens"]


def cases(chat=True):
    """A third with images, half streamed, the others plain or OpenAI chat (plain only without `chat`)."""
    images = [data_uri(os.path.join(ROOT, "Examples", f"shapes-{i}.png")) for i in range(1, 5)]
    made = []
    for i in range(24):
        image = images[i % 4] if i % 3 == 0 else None
        prompt = QUESTIONS[i % 3] if image else PROMPTS[i % len(PROMPTS)]
        kind = "stream" if i % 2 == 0 else ("chat" if i % 4 == 1 and chat else "generate")
        made.append(Case(kind, prompt, image, 4 + i % 9))
    return made


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def level(url, distinct, expected, concurrency, count):
    def one(index):
        case = distinct[index % len(distinct)]
        start = time.perf_counter()
        try:
            text, tokens = case.run(url)
            ok = text == expected[index % len(distinct)]
            return time.perf_counter() - start, tokens, None if ok else f"answer differs: {text!r}"
        except Exception as error:  # noqa: BLE001 - every failure is counted and shown
            return time.perf_counter() - start, 0, str(error)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - start
    latencies = [r[0] for r in results]
    failures = [r[2] for r in results if r[2]]
    return {"concurrency": concurrency, "requests": count, "seconds": elapsed, "requests_per_s": count / elapsed,
            "tokens_per_s": sum(r[1] for r in results) / elapsed, "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99), "failures": len(failures), "first_failures": failures[:3]}


def dropped_streams(url, count):
    """Clients that read two events of a long stream (3,000 tokens of a random-weight model, which never ends on
    its own) and close the connection."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": "Once upon a time", "parameters": {"max_new_tokens": 3000}}).encode()
    for _ in range(count):
        with socket.create_connection((host, int(port)), timeout=60) as s:
            s.sendall(b"POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            seen = b""
            while seen.count(b"data:") < 2:
                chunk = s.recv(4096)
                if not chunk:
                    break
                seen += chunk


def burst(url, count):
    """count requests at once against a small --max-concurrent-requests: each answer is 200 or 429."""
    body = {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 16}}
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return [status for status, _ in pool.map(lambda _: post(url + "/generate", body), range(count))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "idefics"))
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded demo model)")
    parser.add_argument("--fault-model", default=os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-f32"),
                        help="checkpoint for the dropped streams (random weights: its answers run to max_new_tokens)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--no-chat", action="store_true",
                        help="no OpenAI chat requests (a checkpoint whose chat template uses tokens it has no embedding for)")
    parser.add_argument("--serve-option", action="append", default=[],
                        help="passed to the measured server, e.g. --serve-option=--image-cache-mb=0 (repeatable)")
    args = parser.parse_args()

    process, url = start(args.binary, args.model, "--max-concurrent-requests", "64", *args.serve_option)
    report = {"levels": []}
    baseline = loaded = float("nan")
    try:
        distinct = cases(chat=not args.no_chat)
        expected = []
        for case in distinct:  # each request alone: its single-run answer
            expected.append(case.run(url)[0])
        baseline = rss_mb(process.pid)
        print(f"server at {url}; {len(distinct)} distinct requests answered alone; RSS {baseline:.0f} MB", flush=True)
        print("| concurrent clients | requests | requests/s | generated tokens/s | p50 latency | p99 latency | failures |")
        print("|---|---|---|---|---|---|---|")
        for concurrency in [int(c) for c in args.levels.split(",")]:
            row = level(url, distinct, expected, concurrency, args.requests)
            report["levels"].append(row)
            print(f"| {concurrency} | {row['requests']} | {row['requests_per_s']:.2f} | {row['tokens_per_s']:.1f} | "
                  f"{row['p50_s']:.3f} s | {row['p99_s']:.3f} s | {row['failures']} |", flush=True)
            for failure in row["first_failures"]:
                print("  failure:", failure)
        loaded = rss_mb(process.pid)
    finally:
        final_rss = rss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        exit_status = process.wait(timeout=120)
    report["rss_mb"] = {"baseline": baseline, "after_levels": loaded, "final": final_rss}
    print(f"RSS: {baseline:.0f} MB after the single runs, {loaded:.0f} MB after the levels, {final_rss:.0f} MB at the end; "
          f"SIGTERM exit {exit_status}")

    faulty, faulty_url = start(args.binary, args.fault_model)
    try:
        before = rss_mb(faulty.pid)
        started = time.perf_counter()
        dropped_streams(faulty_url, 20)
        dropped_seconds = time.perf_counter() - started
        time.sleep(1)
        metrics = urllib.request.urlopen(faulty_url + "/metrics", timeout=30).read().decode()
        value = lambda name: sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))
        cancelled = value('idefics_requests_finished_total{finish_reason="cancelled"}')
        generated = value("idefics_generated_tokens_total")
        queue, batch = value("idefics_queue_size"), value("idefics_batch_size")
        after_drop = post(faulty_url + "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 4}})[0]
        dropped_rss = rss_mb(faulty.pid)
    finally:
        faulty.send_signal(signal.SIGTERM)
        faulty.wait(timeout=120)
    report["dropped_streams"] = {"clients": 20, "seconds": dropped_seconds, "cancelled": cancelled,
                                 "generated_tokens": generated, "queue_after": queue, "batch_after": batch,
                                 "status_after": after_drop, "rss_mb_before": before, "rss_mb_after": dropped_rss}
    print(f"dropped streams: 20 clients read 2 events of a 3,000-token stream and closed ({dropped_seconds:.1f} s): "
          f"{cancelled:.0f} counted cancelled, {generated:.0f} tokens generated in all, queue {queue:.0f} and batch "
          f"{batch:.0f} after; next request HTTP {after_drop}; RSS {before:.0f} -> {dropped_rss:.0f} MB")

    small, small_url = start(args.binary, args.model, "--max-concurrent-requests", "4")
    try:
        statuses = burst(small_url, 32)
        healthy = post(small_url + "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}})[0] == 200
    finally:
        small.send_signal(signal.SIGTERM)
        small.wait(timeout=120)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    report["burst"] = {"sent": 32, "statuses": counts, "healthy_after": healthy}
    print(f"burst: 32 at once against --max-concurrent-requests 4: statuses {counts}; healthy after: {healthy}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    bad = (any(r["failures"] for r in report["levels"]) or cancelled != 20 or after_drop != 200 or not healthy
           or set(counts) - {200, 429} or exit_status != 0)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
