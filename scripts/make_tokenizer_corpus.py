"""Writes the tokenizer reference corpus: ids and decodes of the Idefics2 tokenizer for several hundred strings.

Every line of the output is a JSON object, either
  {"text": s, "ids": encode(s), "ids_no_special": encode(s, add_special_tokens=False),
   "decoded": decode(ids), "decoded_skip": decode(ids, skip_special_tokens=True)}
or, for id sequences that encoding never produces (lone byte tokens, specials in odd places, unknown ids),
  {"decode_ids": ids, "text": decode(ids), "text_skip": decode(ids, skip_special_tokens=True)}.

The reference is the `tokenizers` library loading Tests/Fixtures/tokenizer/tokenizer.json verbatim; transformers'
PreTrainedTokenizerFast is checked to agree on the ids.

Usage: .venv/bin/python scripts/make_tokenizer_corpus.py [Tests/Fixtures/tokenizer]
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

SEED = 20240611

# Idefics2's added tokens and Mistral's specials, as users might type them.
SPECIALS = ["<s>", "</s>", "<unk>", "<fake_token_around_image>", "<image>", "<end_of_utterance>"]

HAND_WRITTEN = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t\tx", "a", " a", "a ", "  a  ", "Hello",
    " Hello", "Hello ", "Hello world", "Hello  world", "Hello   world", "Hello\tworld", "Hello\nworld",
    "Hello\r\nworld", "Hello\n\nworld", "line one\nline two\n", "   leading", "trailing   ", " \t \n mixed \r\n",
    "0", "7", "42", "1234567890", "3.14159265358979", "1,000,000", "-273.15", "+1 (555) 012-3456",
    "12345678901234567890123456789012345678901234567890", "2024-06-11T12:34:56Z", "0x7FFF_FFFF", "1e-9",
    "!", "?!", "...", "…", "Hello, world!", "Wait... what?!", "(parentheses) [brackets] {braces}",
    "\"double\" 'single' `back`", "a-b_c/d\\e|f", "~!@#$%^&*()_+-=", "§±¶•ªº«»", "“smart quotes” ‘too’",
    "em—dash en–dash", "don't won't can't", "e.g. i.e. etc.",
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "if x == 1 and y != 2:\n        pass",
    "SELECT * FROM users WHERE id = 42;",
    "<div class=\"a\">text</div>",
    "let x: [Int: String] = [:]  // comment",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); }",
    "https://huggingface.co/HuggingFaceM4/idefics2-8b?x=1&y=2#frag",
    "user@example.com", "C:\\Program Files\\app.exe", "/usr/local/bin/swift",
    "café", "cafe\u0301", "naïve", "nai\u0308ve", "Ångström", "A\u030angstro\u0308m", "\u212b", "résumé", "Zoë",
    "São Paulo", "Straße", "ﬁ ligature", "Æsir œuvre", "ǅ ǈ ǋ", "İstanbul ı", "ΣΑΣ σας", "Ελληνικά",
    "Русский текст", "Українська", "日本語のテキスト", "中文文本，标点。", "繁體中文", "한국어 텍스트",
    "ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ", "ｶﾀｶﾅ", "العربية نص", "مرحبا بالعالم", "עברית", "हिन्दी पाठ",
    "नमस्ते दुनिया", "বাংলা", "தமிழ்", "ภาษาไทย", "tiếng Việt", "ქართული", "Հայերեն", "አማርኛ",
    "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵", "🇺🇸 flag", "❤️", "☕ coffee", "🧑🏿‍💻 coder",
    "x\u200by", "zero\u200dwidth\u200cjoiner", "\ufeffBOM", "soft\u00adhyphen", "nb\u00a0sp", "\u3000ideographic",
    "\u2028line\u2029para", "\x00", "a\x00b", "\x01\x02\x03", "\x1b[31mred\x1b[0m", "\x7f", "\x85", "bell\x07",
    "\ue000 private use", "\U000f0000", "\U0001d400\U0001d401", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀀𠀁", "\U0010fffd", "\ufffd",
    "\u0301 leading combining", "e\u0301\u0301\u0301", "Z̴̡̢a̸l̷g̵o̶", "▁", "▁▁x", "x▁y", " ▁ ",
    "<0x41>", "<0xFF>", "<<>>", "<", ">", "<>", "</", "<s", "s>", "<ima", "<image", "image>", "<imag e>",
    "<IMAGE>", "< image>",
]

SPECIAL_MIXES = [
    "<image>", "<s>", "</s>", "<unk>", "<end_of_utterance>", "<fake_token_around_image>",
    "<end_of_utterance>\n", "<end_of_utterance>\n\n", "\n<end_of_utterance>", " <image> ", "  <image>  ",
    "<image><image>", "<image><image><image>", "<fake_token_around_image><image><fake_token_around_image>",
    "<s></s>", "</s><s>", "<s><s>", "<s> Hello", "Hello</s>", "Hello </s>", "a<unk>b", "x<image>y",
    "<image>What is this?", "What is <image> this?", "<ima<image>", "<image>ge>", "<<image>>",
    "<end_of_utterance><end_of_utterance>", "<end_of_utterance> <end_of_utterance>", "<s>\n", "\n<s>",
    "User:<image>What is this?<end_of_utterance>\nAssistant:",
    "User: What is in the image?<end_of_utterance>\nAssistant: A cat.<end_of_utterance>\n",
    "User:<fake_token_around_image><image><image><fake_token_around_image>Describe.<end_of_utterance>\nAssistant:",
    "User: Compare<image>and<image>.<end_of_utterance>\nAssistant: The first one.<end_of_utterance>\nUser: Why?"
    "<end_of_utterance>\nAssistant:",
    "System: Be brief.<end_of_utterance>\nUser:<image><end_of_utterance>\nAssistant:",
    "User:<image>这是什么？<end_of_utterance>\nAssistant: 一只猫 🐱<end_of_utterance>\n",
    "User:<image>ما هذا؟<end_of_utterance>\nAssistant:",
    "User:<image>  spaced   text  <end_of_utterance>\r\nAssistant:\t",
]

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. " * 8,
    "Idefics2 is an open multimodal model that accepts arbitrary sequences of image and text inputs and produces "
    "text outputs. The model can answer questions about images, describe visual content, create stories grounded "
    "on multiple images, or simply behave as a pure language model without visual inputs. It improves upon "
    "Idefics1, significantly enhancing capabilities around OCR, document understanding and visual reasoning.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua.\n\nUt enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea "
    "commodo consequat.\n\tDuis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat "
    "nulla pariatur.  Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit.",
    "机器学习是人工智能的一个分支。人工智能的研究历史有着一条从以“推理”为重点，到以“知识”为重点，再到以“学习”为重点的自然、"
    "清晰的脉络。显然，机器学习是实现人工智能的一个途径，即以机器学习为手段解决人工智能中的问题。",
    "Le traitement automatique des langues naturelles est un domaine multidisciplinaire impliquant la linguistique, "
    "l'informatique et l'intelligence artificielle, qui vise à créer des outils capables d'interpréter et de "
    "synthétiser du texte pour diverses applications. Ça marche très bien, n'est-ce pas ? Œuvre, cœur, déjà-vu.",
    "import numpy as np\n\n\nclass Model:\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, n: int = 3) -> None:\n"
    "        self.w = np.zeros((n, n), dtype=np.float32)  # weights\n\n    def __call__(self, x):\n"
    "        return self.w @ x + 1e-6\n",
]

# Scalar ranges for the random strings: ASCII, Latin, Greek/Cyrillic, combining marks, Arabic, Devanagari, CJK,
# Hangul, symbols, emoji (incl. modifiers and ZWJ), private use and astral planes, whitespace and controls.
RANDOM_RANGES = [
    (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0x09, 0x0D), (0x00, 0x1F), (0xA0, 0x24F), (0x300, 0x36F),
    (0x370, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F), (0x2000, 0x206F), (0x2500, 0x25FF), (0x3000, 0x30FF),
    (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xE0FF), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF),
    (0x1F1E6, 0x1F1FF), (0x1F3FB, 0x1F3FF), (0x200B, 0x200D), (0x10000, 0x1034F), (0x20000, 0x2A6DF),
    (0xF0000, 0xF00FF),
]


def random_strings(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
        chars = []
        for _ in range(length):
            r = rng.random()
            if r < 0.08:
                chars.append(rng.choice(SPECIALS))
            elif r < 0.2:
                chars.append(" " * rng.randint(1, 4))
            else:
                lo, hi = rng.choice(RANDOM_RANGES)
                chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def random_words(rng: random.Random, count: int) -> list[str]:
    """Random English-like sentences with numbers and punctuation."""
    words = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
             "word but not what all were we when your can said there use an each which she do how their if will up "
             "other about out many then them these so some her would make like him into time has look two more write "
             "go see number no way could people my than first water been call who oil its now find long down day did "
             "get come made may part Image Assistant User photo describe cat dog tree").split()
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.1:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.15:
                parts.append(rng.choice([",", ".", "!", "?", ";", ":", "-", "'s", "(", ")", "\n", "\t"]))
            else:
                parts.append(rng.choice(words))
        out.append(rng.choice(["", " "]).join(parts) if rng.random() < 0.1 else " ".join(parts))
    return out


def decode_only_cases(rng: random.Random, tok: Tokenizer) -> list[list[int]]:
    byte = lambda b: 3 + b  # <0x00> is id 3
    cases = [
        [], [byte(0xC3)], [byte(0xE4), byte(0xB8)], [byte(0xC3), byte(0xA9), byte(0x80)], [byte(0x80)],
        [byte(0xC3), byte(0xA9)], [byte(0xF0), byte(0x9F), byte(0x98), byte(0x80)], [byte(0xF0), byte(0x9F)],
        [byte(0xFF), byte(0xFE)], [byte(0x20), byte(0x41)], [byte(0x0A)],
        [28705], [28705, 28705], [28705, 13], [28705, 28705, 13], [259, 22557], [22557, 28705],
        [1, 22557, 32001, 1824, 2], [32001, 22557], [22557, 32001], [32002, 28705, 13], [0, 0, 22557, 0],
        [1, 1, 2, 2], [32000, 32001, 32000], [2, 28705, 22557], [22557, byte(0xC3), 32001, byte(0xA9), 28705],
        [22557, byte(0xE2), byte(0x9C), byte(0x85), 28705, 1526], [40000, 22557, 32003, 1824],
    ]
    vocab_size = tok.get_vocab_size()
    for _ in range(40):
        cases.append([rng.randrange(vocab_size) for _ in range(rng.randint(1, 24))])
    for _ in range(20):  # mostly byte tokens, often invalid UTF-8
        cases.append([byte(rng.choice([0x41, 0x20, 0xC3, 0xA9, 0xE4, 0xB8, 0x80, 0xF0, 0x9F, 0x0A]))
                      if rng.random() < 0.7 else rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))])
    return cases


def small_model(reference: dict, max_id: int = 1500) -> dict:
    """The reference BPE cut down to its first ids plus every single-character token, renumbered densely, with
    the merges that stay inside it: small enough to commit several variants of."""
    vocab = reference["model"]["vocab"]
    kept = sorted((i, t) for t, i in vocab.items() if i < max_id or len(t) == 1)
    new_vocab = {t: n for n, (_, t) in enumerate(kept)}
    merges = [[a, b] for a, b in reference["model"]["merges"]
              if a in new_vocab and b in new_vocab and a + b in new_vocab]
    return dict(reference["model"], vocab=new_vocab, merges=merges)


def added(content: str, id: int, special: bool, normalized: bool, lstrip=False, rstrip=False, single_word=False):
    return {"id": id, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def variants(reference: dict) -> dict[str, dict]:
    """Tokenizer layouts other Llama/Mistral-family checkpoints use, exercising the components and added-token
    flags the Idefics2 file does not: Metaspace (prepend_scheme first/always/never, split on/off), Split
    behaviors, NFKC/NFD/Lowercase/Strip normalizers, lstrip/rstrip/single_word/normalized added tokens,
    legacy "a b" merges, ignore_merges, no byte fallback, EOS templates, Metaspace decoder."""
    model = small_model(reference)
    n = len(model["vocab"])
    specials = [added("<unk>", 0, True, False), added("<s>", 1, True, False), added("</s>", 2, True, False)]
    bpe_decoder = reference["decoder"]
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                   "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
    base = {"version": "1.0", "truncation": None, "padding": None}
    return {
        "metaspace_first": dict(
            base, normalizer=None,
            pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
            model=dict(model, merges=[f"{a} {b}" for a, b in model["merges"]]),
            added_tokens=specials + [added("<tool>", n, True, False, lstrip=True, rstrip=True),
                                     added("[WORD]", n + 1, False, False, single_word=True),
                                     added("hello world", n + 2, False, True)],
            post_processor=template, decoder=bpe_decoder),
        "metaspace_split": dict(
            base,
            normalizer={"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                                                            {"type": "Strip", "strip_left": True, "strip_right": True}]},
            pre_tokenizer={"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": False},
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]},
            model=dict(model, byte_fallback=False, fuse_unk=False, ignore_merges=True),
            added_tokens=specials + [added("<image>", n, True, False), added("Δelta", n + 1, False, True),
                                     added("[w]", n + 2, False, True, single_word=True, lstrip=True)],
            post_processor=None,
            decoder={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}),
        "split_behaviors": dict(
            base,
            normalizer={"type": "Sequence", "normalizers": [
                {"type": "NFD"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            pre_tokenizer={"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"String": "▁"}, "behavior": "MergedWithPrevious", "invert": False},
                {"type": "Split", "pattern": {"String": "."}, "behavior": "Removed", "invert": False},
                {"type": "Split", "pattern": {"String": ","}, "behavior": "Contiguous", "invert": True},
                {"type": "Split", "pattern": {"String": "!"}, "behavior": "MergedWithNext", "invert": False},
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True}]},
            model=model,
            added_tokens=specials + [added("ab", n, False, True, rstrip=True), added("<|x|>", n + 1, True, False,
                                                                                      lstrip=True)],
            post_processor=None,
            decoder={"type": "Sequence", "decoders": [
                {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"},
                {"type": "Strip", "content": " ", "start": 0, "stop": 1}]}),
    }


VARIANT_TEXTS = [
    "<tool>", " <tool> ", "a <tool> b", "a  <tool>\n\tb", "<tool><tool>", "x<tool>y", "[WORD]", "a [WORD] b",
    "a[WORD]b", "[WORD]s", " [WORD]", "([WORD])", "hello world", "Hello world", "say hello world!", "hello  world",
    "<image>", "Δelta", "δelta", "ΔELTA", "the Δelta-v", "[w]", "a [w] b", "x[w]", "  [w]", "well-known", "a--b",
    "-", "ab", "ab ab", "abab", "cab", " ab ", "<|x|>", "a <|x|>", "a  <|x|>b", "end. Next, one!two", "a,b,,c",
    "!!", "...", "x.y", "a b  c   d", "ＡＢＣ ﬁ", "ÀÉÎ", "Ａｂ-Ｃ", "\u00a0nbsp\u2003em",
]


def main(out_dir: str) -> None:
    path = os.path.join(out_dir, "tokenizer.json")
    tok = Tokenizer.from_file(path)
    fast = PreTrainedTokenizerFast(tokenizer_file=path)
    rng = random.Random(SEED)

    texts = HAND_WRITTEN + SPECIAL_MIXES + PARAGRAPHS
    texts += [a + b for a, b in zip(rng.sample(HAND_WRITTEN, 40), rng.sample(SPECIAL_MIXES + HAND_WRITTEN, 40))]
    texts += random_words(rng, 80)
    texts += random_strings(rng, 160)
    # One long text with no added token: the whole of it is a single BPE word (tests the merge queue at scale).
    texts.append("\n".join(PARAGRAPHS * 6))

    lines = []
    for text in texts:
        ids = tok.encode(text).ids
        ids_no_special = tok.encode(text, add_special_tokens=False).ids
        assert fast(text)["input_ids"] == ids, text
        lines.append({"text": text, "ids": ids, "ids_no_special": ids_no_special,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    for ids in decode_only_cases(rng, tok):
        lines.append({"decode_ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                      "text_skip": tok.decode(ids, skip_special_tokens=True)})

    write_lines(os.path.join(out_dir, "corpus.jsonl"), lines)
    print(f"{len(texts)} texts, {len(lines) - len(texts)} decode-only cases")

    with open(path) as f:
        reference = json.load(f)
    variant_dir = os.path.join(out_dir, "variants")
    os.makedirs(variant_dir, exist_ok=True)
    variant_lines = []
    variant_texts = VARIANT_TEXTS + HAND_WRITTEN + SPECIAL_MIXES + random_words(rng, 30) + random_strings(rng, 40)
    for name, spec in variants(reference).items():
        file = os.path.join(variant_dir, f"{name}.json")
        with open(file, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        variant = Tokenizer.from_file(file)
        for text in variant_texts:
            ids = variant.encode(text).ids
            variant_lines.append({"tokenizer": name, "text": text, "ids": ids,
                                  "ids_no_special": variant.encode(text, add_special_tokens=False).ids,
                                  "decoded": variant.decode(ids, skip_special_tokens=False),
                                  "decoded_skip": variant.decode(ids, skip_special_tokens=True)})
    write_lines(os.path.join(variant_dir, "corpus.jsonl"), variant_lines)


def write_lines(out: str, lines: list[dict]) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for line in lines:
            # ASCII escapes: Foundation's JSONSerialization drops a raw U+FEFF that starts a string.
            f.write(json.dumps(line) + "\n")
    print(f"{out}: {len(lines)} lines, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/tokenizer")
