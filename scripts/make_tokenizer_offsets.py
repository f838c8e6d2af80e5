"""Writes Tests/Fixtures/tokenizer/offsets.jsonl: for every text of the tokenizer corpus (corpus.jsonl), the ids
and the byte offsets that the `tokenizers` library gives (its Rust `encode` offsets, which TGI's /tokenize
reports; the Python binding gives character offsets, converted back to bytes here).

Usage: python scripts/make_tokenizer_offsets.py   (needs only `pip install tokenizers`)
"""
import json
import os

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")


def main():
    tokenizer = Tokenizer.from_file(os.path.join(FOLDER, "tokenizer.json"))
    with open(os.path.join(FOLDER, "corpus.jsonl")) as f:
        texts = [entry["text"] for entry in map(json.loads, f) if "ids" in entry]
    with open(os.path.join(FOLDER, "offsets.jsonl"), "w") as out:
        for text in texts:
            encoding = tokenizer.encode(text)
            byte = [len(text[:i].encode()) for i in range(len(text) + 1)]
            offsets = [[byte[start], byte[stop]] for start, stop in encoding.offsets]
            out.write(json.dumps({"text": text, "ids": encoding.ids, "offsets": offsets}) + "\n")  # ASCII escapes, as corpus.jsonl
    print(f"{len(texts)} texts")


if __name__ == "__main__":
    main()
