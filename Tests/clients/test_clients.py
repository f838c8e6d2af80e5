"""`idefics serve` driven by the real clients: text-generation-inference's `text_generation` and the `openai` package.

Each answer must equal what `idefics generate` gives for the same prompt (greedy decoding on the demo model), and
the server's refusals must be TGI's JSON with its status codes. Run by .ci/run in a venv with the clients installed:
    python -m venv .venv-clients && .venv-clients/bin/pip install -r Tests/clients/requirements.txt
    .venv-clients/bin/python Tests/clients/test_clients.py BINARY
"""
import base64
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import asyncio

import openai
from huggingface_hub import InferenceClient
from prometheus_client.parser import text_string_to_metric_families
from text_generation import AsyncClient, Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("IDEFICS_BINARY", os.path.join(ROOT, ".build", "debug", "idefics"))
MODEL = os.path.join(ROOT, "Models", "idefics2-demo")
IMAGE = os.path.join(ROOT, "Examples", "shapes-1.png")
with open(IMAGE, "rb") as f:
    DATA_URI = "data:image/png;base64," + base64.b64encode(f.read()).decode()
QUESTION = "What shape is this?"
NEW_TOKENS = 8


def start_server(*extra, model=MODEL):
    process = subprocess.Popen([BINARY, "serve", "--model", model, "--port", "0", "--threads", "2", *extra],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in process.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            # Keep reading its request log, so that a full pipe never blocks the server.
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, match.group(1)
    raise RuntimeError(f"the server did not start (exit {process.wait()})")


def idefics_generate(*arguments):
    run = subprocess.run([BINARY, "generate", "--model", MODEL, "--max-new-tokens", str(NEW_TOKENS), "--json", *arguments],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def post(url, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.process, cls.url = start_server()
        raw = idefics_generate("--prompt", "<image>" + QUESTION, "--image", IMAGE)
        chat = idefics_generate("--chat", "--prompt", QUESTION, "--image", IMAGE)
        cls.raw, cls.chat = raw, chat
        assert raw["generated_token_ids"] and chat["text"], (raw, chat)

    @classmethod
    def tearDownClass(cls):
        cls.process.send_signal(signal.SIGTERM)
        cls.exit_status = cls.process.wait(timeout=60)
        assert cls.exit_status == 0, cls.exit_status

    def test_tgi_generate_with_details(self):
        client = Client(self.url, timeout=120)
        response = client.generate(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS)  # always asks for details
        self.assertEqual(response.generated_text, self.raw["text"])
        self.assertEqual([t.id for t in response.details.tokens], self.raw["generated_token_ids"])
        self.assertEqual(response.details.finish_reason.value, self.raw["finish_reason"])
        self.assertEqual(response.details.generated_tokens, len(self.raw["generated_token_ids"]))
        self.assertIsNone(response.details.seed)  # greedy
        self.assertTrue(all(t.logprob <= 0 for t in response.details.tokens))

    def test_tgi_stream_matches_generate(self):
        client = Client(self.url, timeout=120)
        events = list(client.generate_stream(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS))
        self.assertEqual([e.token.id for e in events], self.raw["generated_token_ids"])
        self.assertTrue(all(e.generated_text is None for e in events[:-1]))
        self.assertEqual(events[-1].generated_text, self.raw["text"])
        self.assertEqual(events[-1].details.generated_tokens, len(events))
        self.assertEqual("".join(e.token.text for e in events if not e.token.special), self.raw["text"])

    def test_tgi_async_client(self):
        async def run():
            client = AsyncClient(self.url, timeout=120)
            answer = await client.generate(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS)
            events = [e async for e in client.generate_stream(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS)]
            return answer, events
        answer, events = asyncio.run(run())
        self.assertEqual(answer.generated_text, self.raw["text"])
        self.assertEqual([e.token.id for e in events], self.raw["generated_token_ids"])

    def test_tgi_prompt_logprobs_top_tokens_and_truncation(self):
        client = Client(self.url, timeout=120)
        response = client.generate(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS, decoder_input_details=True,
                                   top_n_tokens=3)
        self.assertEqual([t.id for t in response.details.prefill], self.raw["prompt_token_ids"])
        self.assertIsNone(response.details.prefill[0].logprob)
        self.assertTrue(all(t.logprob <= 0 for t in response.details.prefill[1:]))
        self.assertEqual([t.id for t in response.details.tokens], self.raw["generated_token_ids"])
        self.assertEqual([len(top) for top in response.details.top_tokens], [3] * len(response.details.tokens))
        for token, top in zip(response.details.tokens, response.details.top_tokens):  # greedy: the likeliest
            self.assertEqual(top[0].id, token.id)
            self.assertAlmostEqual(top[0].logprob, token.logprob, places=5)
        events = list(client.generate_stream("Once upon a time there was", max_new_tokens=2, truncate=3, top_n_tokens=2))
        self.assertEqual([len(e.top_tokens) for e in events], [2, 2])
        body = {"inputs": "Once upon a time there was", "parameters": {"max_new_tokens": 2, "truncate": 3}}
        request = urllib.request.Request(self.url + "/generate_stream", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:  # the client's StreamDetails drops input_length
            last = [line for line in response.read().decode().splitlines() if line.startswith("data:")][-1]
        self.assertEqual(json.loads(last[5:])["details"]["input_length"], 3)
        code, answer = post(self.url + "/generate_stream", {"inputs": "Hi", "parameters": {"decoder_input_details": True}})
        self.assertEqual((code, answer["error"]), (422, "`decoder_input_details` == true is not supported when streaming tokens"))

    def test_tokenize_gives_the_ids_idefics_generate_runs(self):
        code, tokens = post(self.url + "/tokenize", {"inputs": f"![]({DATA_URI}){QUESTION}"})
        self.assertEqual(code, 200, tokens)
        self.assertEqual([t["id"] for t in tokens], self.raw["prompt_token_ids"])
        self.assertEqual("".join(t["text"] for t in tokens if not t["text"].startswith("![](")), QUESTION)
        self.assertEqual({(t["start"], t["stop"]) for t in tokens if t["text"].startswith("![](")},
                         {(0, len(f"![]({DATA_URI})"))})

    def test_huggingface_hub_inference_client(self):
        client = InferenceClient(base_url=self.url, timeout=120)
        answer = client.text_generation(f"![]({DATA_URI}){QUESTION}", max_new_tokens=NEW_TOKENS, details=True)
        self.assertEqual(answer.generated_text, self.raw["text"])
        self.assertEqual([t.id for t in answer.details.tokens], self.raw["generated_token_ids"])
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URI}},
                                                 {"type": "text", "text": QUESTION}]}]
        chat = client.chat_completion(messages, max_tokens=NEW_TOKENS)
        self.assertEqual(chat.choices[0].message.content, self.chat["text"])
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat_completion(messages, max_tokens=NEW_TOKENS,
                                                                                              stream=True) if c.choices)
        self.assertEqual(streamed, self.chat["text"])

    def test_tgi_sampling_reports_its_seed_and_repeats_with_it(self):
        client = Client(self.url, timeout=120)
        first = client.generate("Once upon a time", max_new_tokens=NEW_TOKENS, do_sample=True, temperature=0.9)
        self.assertIsNotNone(first.details.seed)
        again = client.generate("Once upon a time", max_new_tokens=NEW_TOKENS, temperature=0.9, seed=first.details.seed)
        self.assertEqual(again.generated_text, first.generated_text)
        best = client.generate("Once upon a time", max_new_tokens=NEW_TOKENS, do_sample=True, temperature=0.9, best_of=2)
        (other,) = best.details.best_of_sequences
        for text, seed in [(best.generated_text, best.details.seed), (other.generated_text, other.seed)]:
            alone = client.generate("Once upon a time", max_new_tokens=NEW_TOKENS, temperature=0.9, seed=seed)
            self.assertEqual(alone.generated_text, text)

    def test_concurrent_streams_get_their_lone_answers(self):
        client = Client(self.url, timeout=120)
        prompts = ["Once upon a time", "The capital of France is", "1, 2, 3,", f"![]({DATA_URI}){QUESTION}"]
        alone = [client.generate(p, max_new_tokens=4 + 2 * i).generated_text for i, p in enumerate(prompts)]

        def stream(item):
            index, prompt = item
            events = client.generate_stream(prompt, max_new_tokens=4 + 2 * index)
            return "".join(e.token.text for e in events if not e.token.special)

        with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
            together = list(pool.map(stream, enumerate(prompts)))
        self.assertEqual(together, alone)

    def test_openai_chat_matches_the_chat_template_run(self):
        client = openai.OpenAI(base_url=self.url + "/v1", api_key="unused")
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URI}},
                                                 {"type": "text", "text": QUESTION}]}]
        completion = client.chat.completions.create(model="idefics2-demo", messages=messages, max_tokens=NEW_TOKENS)
        self.assertEqual(completion.choices[0].message.content, self.chat["text"])
        self.assertEqual(completion.choices[0].finish_reason, "length" if self.chat["finish_reason"] == "length" else "stop")
        self.assertEqual(completion.usage.prompt_tokens, len(self.chat["prompt_token_ids"]))
        self.assertEqual(completion.usage.completion_tokens, len(self.chat["generated_token_ids"]))
        stream = client.chat.completions.create(model="idefics2-demo", messages=messages, max_tokens=NEW_TOKENS,
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), self.chat["text"])
        self.assertEqual(chunks[-1].usage.completion_tokens, len(self.chat["generated_token_ids"]))
        self.assertEqual([m.id for m in client.models.list().data], ["idefics2-demo"])
        scored = client.chat.completions.create(model="idefics2-demo", messages=messages, max_tokens=NEW_TOKENS,
                                                logprobs=True, top_logprobs=2)
        content = scored.choices[0].logprobs.content
        self.assertEqual("".join(t.token for t in content), self.chat["text"])
        self.assertEqual(len(content), len(self.chat["generated_token_ids"]) - (self.chat["finish_reason"] == "eos_token"))
        self.assertTrue(all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob == t.logprob for t in content))
        self.assertTrue(all(bytes(t.bytes).decode() == t.token for t in content))
        several = client.chat.completions.create(model="idefics2-demo", messages=messages, max_tokens=NEW_TOKENS, n=3)
        self.assertEqual([(c.index, c.message.content) for c in several.choices], [(i, self.chat["text"]) for i in range(3)])
        self.assertEqual(several.usage.completion_tokens, 3 * len(self.chat["generated_token_ids"]))

    def test_openai_completions(self):
        client = openai.OpenAI(base_url=self.url + "/v1", api_key="unused")
        completion = client.completions.create(model="idefics2-demo", prompt=f"![]({DATA_URI}){QUESTION}",
                                               max_tokens=NEW_TOKENS)
        self.assertEqual(completion.choices[0].text, self.raw["text"])
        # The chat turn written out (the raw prompt's answer has no text to score).
        scored = client.completions.create(model="idefics2-demo", max_tokens=NEW_TOKENS, logprobs=2,
                                           prompt=f"User:![]({DATA_URI}){QUESTION}<end_of_utterance>\nAssistant:")
        logprobs = scored.choices[0].logprobs
        self.assertEqual(scored.choices[0].text, self.chat["text"])
        self.assertEqual("".join(logprobs.tokens), self.chat["text"])
        self.assertEqual(len(logprobs.token_logprobs), len(logprobs.tokens))
        self.assertTrue(all(len(top) <= 2 and max(top.values()) >= p - 1e-6 for top, p in zip(logprobs.top_logprobs, logprobs.token_logprobs)))
        self.assertEqual(logprobs.text_offset[0], 0)

    def test_refusals_are_tgi_json(self):
        cases = [
            ({"inputs": "Hi", "parameters": {"top_p": 1.5}}, 422, "`top_p` must be > 0.0 and < 1.0"),
            ({"inputs": "Hi", "parameters": {"temperature": 0}}, 422, "`temperature` must be strictly positive"),
            ({"inputs": "Hi", "parameters": {"max_new_tokens": 0}}, 422, "`max_new_tokens` must be strictly positive"),
            ({"inputs": "Hi", "parameters": {"stop": ["a", "b", "c", "d", "e"]}}, 422,
             "`stop` supports up to 4 stop sequences. Given: 5"),
            ({"inputs": "Hi", "parameters": {"max_new_tokens": 5000}}, 422, "`inputs` tokens + `max_new_tokens` must be <= 4096"),
            ({"inputs": ""}, 422, "`inputs` cannot be empty"),
            ({"inputs": 3}, 422, "`inputs` must be a string"),
            ({"inputs": "![](/etc/passwd)Hi"}, 422, "give an http(s) URL or a data: URI"),
            ({"inputs": "![](http://127.0.0.1:9/x.png)Hi"}, 422, "(loopback); this server fetches only public addresses"),
            ({"inputs": "![](data:image/png;base64,AAAA)Hi"}, 422, "data URI: unknown image format"),
            (b"{not json", 422, "not valid JSON"),
        ]
        for body, status, message in cases:
            code, answer = post(self.url + "/generate", body)
            self.assertEqual(code, status, (body, answer))
            self.assertEqual(answer["error_type"], "validation", answer)
            self.assertIn(message, answer["error"], body)
        code, answer = post(self.url + "/generate", b"x" * (21 << 20))
        self.assertEqual((code, answer["error_type"]), (413, "payload_too_large"))
        code, answer = post(self.url + "/", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
        self.assertEqual(code, 200)
        self.assertIsInstance(answer, list)  # the compat route answers an array


    def scrape(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as response:
            self.assertTrue(response.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}  # Prometheus' own parser
        return families, {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}

    def test_metrics_parse_and_count(self):
        _, before = self.scrape()
        client = Client(self.url, timeout=120)
        self.assertEqual(client.generate("Hi", max_new_tokens=3).details.generated_tokens, 3)
        code, _ = post(self.url + "/generate", {"inputs": "Hi", "parameters": {"top_k": 0}})
        self.assertEqual(code, 422)
        families, after = self.scrape()
        types = {name: f.type for name, f in families.items()}
        self.assertEqual(types["idefics_generated_tokens"], "counter")  # the parser drops counters' _total
        self.assertEqual(types["idefics_queue_size"], "gauge")
        self.assertEqual(types["idefics_time_to_first_token_seconds"], "histogram")
        delta = lambda key: after.get(key, 0) - before.get(key, 0)
        self.assertEqual(delta(("idefics_generated_tokens_total", ())), 3)
        self.assertEqual(delta(("idefics_requests_admitted_total", ())), 1)
        self.assertEqual(delta(("idefics_http_responses_total", (("status", "422"),))), 1)
        self.assertEqual(delta(("idefics_time_to_first_token_seconds_count", ())), 1)
        buckets = sorted((float(dict(labels)["le"]), value) for (name, labels), value in after.items()
                         if name == "idefics_time_to_first_token_seconds_bucket")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))  # cumulative
        self.assertEqual(buckets[-1][1], after[("idefics_time_to_first_token_seconds_count", ())])


class ShutdownTest(unittest.TestCase):
    def test_sigterm_cuts_running_streams_short_after_the_grace_period(self):
        # The random-weight fixture never ends on its own: its 4,000-token stream outlasts a 1 s grace period.
        process, url = start_server("--shutdown-grace-seconds", "1",
                                    model=os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-f32"))
        request = urllib.request.Request(url + "/generate_stream", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"inputs": "Once upon a time",
                                                          "parameters": {"max_new_tokens": 4000}}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            first = response.readline()
            self.assertTrue(first.startswith(b"data:"), first)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            events = [json.loads(line[5:]) for line in response.read().decode().splitlines() if line.startswith("data:")]
        self.assertEqual(process.wait(timeout=60), 0)
        self.assertLess(time.monotonic() - started, 30)
        self.assertIsNotNone(events[-1]["generated_text"])  # the stream ended with its last event, cut short
        self.assertLess(len(events) + 1, 4000)


class APIKeyTest(unittest.TestCase):
    def test_bearer_key_on_every_route_but_health(self):
        process, url = start_server("--api-key", "sesame")
        try:
            with urllib.request.urlopen(url + "/health", timeout=30) as response:
                self.assertEqual(response.status, 200)
            code, answer = post(url + "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 1}})
            self.assertEqual((code, answer["error_type"]), (401, "authentication"))
            code, _ = post(url + "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 1}},
                           {"Authorization": "Bearer sesame"})
            self.assertEqual(code, 200)
            client = Client(url, headers={"Authorization": "Bearer sesame"}, timeout=60)
            self.assertEqual(client.generate("Hi", max_new_tokens=1).details.generated_tokens, 1)
        finally:
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(timeout=60), 0)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
