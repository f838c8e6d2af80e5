"""Records transformers' logits processors / warpers on seeded random logits: Tests/Fixtures/generation/logits_processors.json.

Every processor is applied to each input row on its own (batch of 1, float32, as generate() does after casting the
logits to float32). The chains are built by transformers' own `GenerationMixin._prepare_generation_config` +
`_get_logits_processor` for a given GenerationConfig, so they include the global defaults that generate() fills
in (e.g. top_k=50 whenever do_sample=True and top_k is unset).

-inf is written as the JSON string "-inf" (also "inf" / "nan" if they ever occur).

Usage: .venv/bin/python scripts/make_generation_fixtures.py [OUTPUT_JSON]
"""
import json
import math
import os
import sys

import torch
import transformers
from transformers import GenerationConfig, Idefics2ForConditionalGeneration
from transformers.generation.logits_process import (
    MinNewTokensLengthLogitsProcessor,
    NoBadWordsLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import MODELS, build_config  # noqa: E402

SEED = 7
VOCAB = 64
EOS = 2


def f(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def vec(t):
    return [f(x) for x in t.tolist()]


def make_inputs():
    g = torch.Generator().manual_seed(SEED)
    rows = []

    def hist(n, prompt_len):
        return torch.randint(0, VOCAB, (n,), generator=g).tolist(), prompt_len

    # 0: plain random normal * 2 (positive and negative logits, history hits both signs)
    x = torch.randn(VOCAB, generator=g) * 2.0
    h, p = hist(12, 8)
    rows.append(("random", x, h, p))
    # 1: ties at the top-k / top-p boundaries: the 5th..7th largest are equal, and two equal maxima
    x = torch.randn(VOCAB, generator=g) * 1.5
    order = torch.argsort(x, descending=True)
    x[order[1]] = x[order[0]]
    x[order[5]] = x[order[4]]
    x[order[6]] = x[order[4]]
    h, p = hist(10, 10)
    rows.append(("ties", x, h, p))
    # 2: already contains -inf entries (e.g. after a bad-words filter) and a large spread
    x = torch.randn(VOCAB, generator=g) * 3.0
    x[[3, 17, 40]] = -math.inf
    h, p = hist(6, 3)
    h[-1] = 17  # history contains a -inf token
    rows.append(("with_neg_inf", x, h, p))
    # 3: peaked: one dominant logit (top-p keeps only min_tokens_to_keep)
    x = torch.randn(VOCAB, generator=g) * 0.5
    x[21] = 15.0
    h, p = hist(5, 5)
    h.append(21)
    rows.append(("peaked", x, h, p))
    # 4: quantised values: many exact ties everywhere (values in {-1, 0, 0.5, 1, 2})
    levels = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])
    x = levels[torch.randint(0, 5, (VOCAB,), generator=g)]
    h, p = hist(8, 4)
    rows.append(("quantised_ties", x, h, p))
    # 5: eos (id 2) is the argmax; short history (new tokens fewer than min_new_tokens)
    x = torch.randn(VOCAB, generator=g) * 2.0
    x[EOS] = x.max() + 1.0
    h, p = hist(7, 6)
    rows.append(("eos_argmax", x, h, p))
    return [(n, x.to(torch.float32), h, p) for n, x, h, p in rows]


SORTING = (TopPLogitsWarper, TypicalLogitsWarper)  # the processors whose result can depend on sort order


def split_ties(before, after):
    """True when equal input values end up partly kept and partly filtered: transformers' answer then depends on
    the order torch.sort (not stable) gives to equal elements, and only the number kept is meaningful."""
    removed = torch.isinf(after) & ~torch.isinf(before)
    kept = ~torch.isinf(after)
    return any(bool(kept[before == v].any()) for v in before[removed].unique().tolist())


def apply(proc, x, h):
    with torch.no_grad():
        return proc(torch.tensor([h], dtype=torch.long), x.clone()[None])[0]


def describe(proc):
    name = type(proc).__name__
    params = {}
    for k in ("penalty", "temperature", "top_k", "top_p", "mass", "min_tokens_to_keep", "filter_value",
              "min_new_tokens", "prompt_length_to_skip", "bad_word_ids", "prompt_ignore_length"):
        if hasattr(proc, k):
            v = getattr(proc, k)
            if isinstance(v, torch.Tensor):
                v = v.tolist()
            params[k] = f(v) if isinstance(v, float) else v
    if hasattr(proc, "eos_token_id"):
        e = proc.eos_token_id
        params["eos_token_id"] = e.tolist() if isinstance(e, torch.Tensor) else e
    if hasattr(proc, "sequence_bias"):
        params["sequence_bias"] = [[list(k), f(v)] for k, v in proc.sequence_bias.items()]
    return {"class": name, "params": params}


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/generation/logits_processors.json"
    inputs = make_inputs()
    last = {n: h[-1] for n, _, h, _ in inputs}

    single = [
        ("repetition_penalty_1.3", lambda r: RepetitionPenaltyLogitsProcessor(1.3)),
        ("repetition_penalty_0.8", lambda r: RepetitionPenaltyLogitsProcessor(0.8)),
        ("temperature_0.7", lambda r: TemperatureLogitsWarper(0.7)),
        ("temperature_1.5", lambda r: TemperatureLogitsWarper(1.5)),
        ("top_k_1", lambda r: TopKLogitsWarper(1)),
        ("top_k_5", lambda r: TopKLogitsWarper(5)),
        ("top_k_5_min_keep_8", lambda r: TopKLogitsWarper(5, min_tokens_to_keep=8)),
        ("top_k_100", lambda r: TopKLogitsWarper(100)),
        ("top_p_0.9", lambda r: TopPLogitsWarper(0.9)),
        ("top_p_0.5", lambda r: TopPLogitsWarper(0.5)),
        ("top_p_0.5_min_keep_3", lambda r: TopPLogitsWarper(0.5, min_tokens_to_keep=3)),
        ("typical_0.8", lambda r: TypicalLogitsWarper(0.8)),
        ("typical_0.2", lambda r: TypicalLogitsWarper(0.2)),
        ("bad_words_single", lambda r: NoBadWordsLogitsProcessor([[5], [9], [33]], eos_token_id=EOS)),
        # [last, 12] matches the end of the history -> 12 banned; [63, 13] does not match (unless last == 63);
        # [2] is the eos token and is filtered out of the bad words by transformers.
        ("bad_words_multi", lambda r: NoBadWordsLogitsProcessor([[last[r], 12], [63, 13], [4, 5, 6], [2]],
                                                                eos_token_id=EOS)),
        ("min_new_tokens_3", "min_new_tokens"),
    ]

    processors_out = []
    for name, make in single:
        outputs, descs, tie_dep = [], [], []
        for rname, x, h, p in inputs:
            if make == "min_new_tokens":
                proc = MinNewTokensLengthLogitsProcessor(prompt_length_to_skip=p, min_new_tokens=3,
                                                         eos_token_id=EOS)
            else:
                proc = make(rname)
            descs.append(describe(proc))
            y = apply(proc, x, h)
            tie_dep.append(isinstance(proc, SORTING) and split_ties(x, y))
            outputs.append(vec(y))
        entry = {"name": name, "class": descs[0]["class"], "outputs": outputs, "tie_dependent": tie_dep}
        if all(d == descs[0] for d in descs):
            entry["params"] = descs[0]["params"]
        else:
            entry["params_per_input"] = [d["params"] for d in descs]
        processors_out.append(entry)

    # Chains exactly as generate() builds them.
    torch.manual_seed(0)
    model = Idefics2ForConditionalGeneration(build_config(MODELS["tiny-f32"]))
    model.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=EOS)
    chain_specs = [
        ("sample_t0.7_k5_p0.9_rep1.3", dict(do_sample=True, temperature=0.7, top_k=5, top_p=0.9,
                                            repetition_penalty=1.3)),
        ("sample_t1.5_typical0.8_badwords", dict(do_sample=True, temperature=1.5, typical_p=0.8,
                                                 bad_words_ids=[[5], [9, 10]])),
        ("sample_p0.5_minnew3_default_topk", dict(do_sample=True, top_p=0.5, min_new_tokens=3)),
        ("sample_all", dict(do_sample=True, temperature=0.7, top_k=10, top_p=0.9, typical_p=0.95,
                            repetition_penalty=1.2, bad_words_ids=[[33]], min_new_tokens=2)),
        ("greedy_rep1.3", dict(do_sample=False, repetition_penalty=1.3, top_k=5, temperature=0.5)),
    ]
    chains = []
    for cname, kw in chain_specs:
        outputs, probs, orders, tie_dep = [], [], [], []
        for rname, x, h, p in inputs:
            gc, _ = model._prepare_generation_config(GenerationConfig(**kw))
            model._prepare_special_tokens(gc, kwargs_has_attention_mask=False, device="cpu")
            procs = model._get_logits_processor(generation_config=gc, input_ids_seq_length=p, device="cpu",
                                                model_kwargs={})
            orders.append([describe(pr) for pr in procs])
            y = x.clone()[None]
            ids = torch.tensor([h])
            steps = []
            dep = False
            for pr in procs:
                before = y[0].clone()
                y = pr(ids, y)
                dep = dep or (isinstance(pr, SORTING) and split_ties(before, y[0]))
                steps.append(vec(y[0]))
            tie_dep.append(dep)
            outputs.append({"after_each": steps, "final": vec(y[0])})
            probs.append(vec(torch.softmax(y[0], -1)))
        classes = [d["class"] for d in orders[0]]
        assert all([d["class"] for d in o] == classes for o in orders)
        chain = {"name": cname, "generation_config": kw, "processor_order": classes}
        if all(o == orders[0] for o in orders):
            chain["processors"] = orders[0]
        else:
            chain["processors_per_input"] = orders
        chains.append({
            **chain,
            "outputs": outputs,
            "probabilities": probs,
            "tie_dependent": tie_dep,
        })

    doc = {
        "format_version": 1,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": SEED,
        "vocab_size": VOCAB,
        "eos_token_id": EOS,
        "dtype": "float32",
        "special_values": "'-inf' / 'inf' / 'nan' are JSON strings",
        "generate_processor_order": [
            "UnbatchedClassifierFreeGuidanceLogitsProcessor (guidance_scale != 1)",
            "SequenceBiasLogitsProcessor (sequence_bias)",
            "EncoderRepetitionPenaltyLogitsProcessor (encoder_repetition_penalty != 1, encoder-decoder)",
            "RepetitionPenaltyLogitsProcessor (repetition_penalty != 1; ignores left padding only, the prompt IS "
            "penalised)",
            "NoRepeatNGramLogitsProcessor (no_repeat_ngram_size > 0)",
            "EncoderNoRepeatNGramLogitsProcessor",
            "NoBadWordsLogitsProcessor (bad_words_ids; single-token bad words equal to an eos id are dropped)",
            "MinLengthLogitsProcessor (min_length > 0 and eos set)",
            "MinNewTokensLengthLogitsProcessor (min_new_tokens > 0 and eos set)",
            "PrefixConstrainedLogitsProcessor",
            "ForcedBOSTokenLogitsProcessor",
            "ForcedEOSTokenLogitsProcessor",
            "InfNanRemoveLogitsProcessor (remove_invalid_values)",
            "ExponentialDecayLengthPenalty",
            "SuppressTokensLogitsProcessor",
            "SuppressTokensAtBeginLogitsProcessor",
            "-- user logits_processor list merged here --",
            "only if do_sample: TemperatureLogitsWarper (temperature != 1)",
            "only if do_sample: TopHLogitsWarper (top_h)",
            "only if do_sample: TopKLogitsWarper (top_k != 0; generate's global default top_k = 50)",
            "only if do_sample: TopPLogitsWarper (top_p < 1)",
            "only if do_sample: MinPLogitsWarper (min_p)",
            "only if do_sample: TypicalLogitsWarper (typical_p < 1)",
            "only if do_sample: EpsilonLogitsWarper, EtaLogitsWarper",
            "watermarking processor",
            "LogitNormalization (renormalize_logits)",
        ],
        "semantics": {
            "repetition_penalty": "for every distinct id in input_ids (prompt + generated): score < 0 ? score * p : "
                                  "score / p",
            "top_k": "k = max(top_k, min_tokens_to_keep), min(k, vocab); remove scores < k-th largest (ties kept)",
            "top_p": "ascending sort, cumsum(softmax); remove where cumprob <= 1 - top_p; the last "
                     "min_tokens_to_keep of the ascending order are always kept. Sort is torch.sort(descending="
                     "False) (not stable-guaranteed); see ties rows",
            "typical": "see transformers TypicalLogitsWarper; entropy uses nansum so -inf entries are ignored",
            "min_new_tokens": "eos ids set to -inf while len(input_ids) - prompt_length < min_new_tokens",
            "filter_value": "-inf",
            "tie_dependent": "per input: equal values were split between kept and filtered; transformers' choice "
                             "of which ones survive comes from torch.sort's (unstable) order, so compare only the "
                             "number of kept entries and the values of the others there",
            "probabilities": "softmax(final scores) in float32, as generate() samples from",
        },
        "inputs": [{"name": n, "logits": vec(x), "input_ids": h, "prompt_length": p} for n, x, h, p in inputs],
        "processors": processors_out,
        "chains": chains,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    for c in chains:
        print(c["name"], c["processor_order"])
    print("wrote", out_path, os.path.getsize(out_path), "bytes")


if __name__ == "__main__":
    main()
