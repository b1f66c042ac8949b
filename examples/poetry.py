"""A small language model that writes verse.

A language model reads text one piece at a time and learns to say what comes next. This one
works on single characters: given the characters so far, it gives a probability to every
character that could follow. Trained on about 700 songs and poems (Debian's `fortunes`
package, no download), a small Transformer written out in full here learns spelling, line
breaks and a little rhyme, and then writes verse of its own, one character at a time.

It is measured honestly. The poems are split into training, validation and test poems, whole
poems each, so no test poem is half seen. Every model is scored on the test poems in bits per
character (fewer is better) next to three baselines: guessing uniformly, character
frequencies, and the best smoothed n-gram model. And its verse is checked for copying: how much
of it is found word for word in the training poems, next to the same numbers for test poems
written by people.

Run it: `python3 examples/poetry.py` (`--quick` for a short run, `--help` for the options).
"""

# %% [markdown]
# ## The options
# Every option has a default, so the notebook runs as it is. `--size` picks the model: `small`
# for CPUs, `large` for a GPU, and `auto` (the default) takes `large` when the run has a GPU.
# `--quick` (the tests' short run) trains a `tiny` model for a few steps. An option you give
# yourself always wins. A mistake on the command line stops the run here, before any work.

# %%
import time
from pathlib import Path

import workshop

FORTUNES = Path("/usr/share/games/fortunes/songs-poems")
# The model sizes. `tiny` is the quick mode's; `small` trains in minutes on two CPU cores;
# `large` is meant for a GPU.
# `context`: the characters the model reads at once; `evaluations`: validation scores in training.
SIZES = {
    "tiny": dict(width=64, layers=2, heads=2, context=64, batch_size=8, steps=60, dropout=0.0, evaluations=1),
    "small": dict(width=128, layers=4, heads=4, context=64, batch_size=16, steps=4000, dropout=0.1, evaluations=20),
    "large": dict(width=384, layers=6, heads=6, context=256, batch_size=64, steps=5000, dropout=0.2, evaluations=20),
}

parser = workshop.make_parser(
    "Train a small character-level Transformer on songs and poems, score it against n-gram models in bits per "
    "character on held-out poems, write verse at three temperatures and check it for copying.",
    default_out="results/poetry",
)
parser.add_argument("--data", type=Path, default=FORTUNES,
                    help="a UTF-8 text file of poems, separated by lines holding only %%, or else by blank lines")
parser.add_argument("--size", choices=["auto", *SIZES], default="auto",
                    help="the model: tiny, small (CPUs) or large (a GPU); auto: large on a GPU, else small")
parser.add_argument("--steps", type=workshop.at_least(1),
                    help="training steps (default: the size's: " + ", ".join(f"{name} {size['steps']}" for name, size in SIZES.items()) + ")")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=3e-3, help="AdamW's largest step size")
parser.add_argument("--max-order", type=workshop.at_least(1), default=6, help="the longest n-gram the baseline may use")
parser.add_argument("--temperatures", type=workshop.positive_float, nargs=3, default=[0.5, 0.8, 1.1],
                    help="the three sampling temperatures: low is safe and repetitive, high is daring")
parser.add_argument("--top-k", type=workshop.at_least(1), default=20, help="sample only among the k likeliest characters")
parser.add_argument("--samples", type=workshop.at_least(1), default=5, help="samples per temperature")
parser.add_argument("--sample-length", type=workshop.at_least(20), default=400, help="characters per sample")
args = workshop.parse_args(parser, quick_defaults={"size": "tiny", "samples": 2, "sample_length": 100})
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The data: songs and poems
# The file holds one poem after another, with a line holding only `%` between two poems (the
# format of the `fortune` program). A file without such lines is cut at blank lines instead,
# so each stanza or paragraph counts as one poem. Before any training, the file is checked: it
# must exist, hold text (UTF-8), and give at least 10 poems, so that each of the three parts
# gets some. Control characters (the backspaces some old poems use to overstrike) are dropped.
# The first poem of about 200 characters is shown.

# %%
import re

MINIMUM_POEMS = 10

if not args.data.is_file():
    hint = "install Debian's fortunes package or " if args.data == FORTUNES else ""
    workshop.refuse(f"--data {args.data} is not a file; {hint}give a text file of poems with --data FILE")
raw = args.data.read_bytes()
if not raw.strip():
    workshop.refuse(f"--data {args.data} is empty; give a text file of poems")
try:
    text = raw.decode("utf-8")
except UnicodeDecodeError as error:
    workshop.refuse(f"--data {args.data} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8 text")
if "\0" in text:
    workshop.refuse(f"--data {args.data} holds NUL bytes, so it is not a text file; give a plain-text file of poems")
text = text.replace("\r\n", "\n")  # Windows line ends, as in many Project Gutenberg files
printable = "".join(character for character in text if character in "\n\t" or character.isprintable())
dropped = len(text) - len(printable)

separator = r"^%\n" if re.search(r"^%$", printable, flags=re.MULTILINE) else r"\n[ \t]*\n"
# Poems keep their number in the file (counted from 0), so the split can be written out and checked.
entries = re.split(separator, printable + "\n", flags=re.MULTILINE)
poems = {number: entry.strip("\n") for number, entry in enumerate(entries) if entry.strip()}
if len(poems) < MINIMUM_POEMS:
    workshop.refuse(
        f"--data {args.data} holds {len(poems)} poem(s); the split needs at least {MINIMUM_POEMS} "
        "(separate poems with lines holding only %, or with blank lines)"
    )
lengths = sorted(len(poem) for poem in poems.values())
workshop.log(
    f"data: {args.data}: {len(printable):,} characters, {len(poems)} poems separated by "
    f"{'% lines' if separator.startswith('^%') else 'blank lines'}, {lengths[len(lengths) // 2]} characters in the median poem; "
    f"{dropped} control characters dropped"
)
print(poems[min(poems, key=lambda number: abs(len(poems[number]) - 200))])

# %% [markdown]
# ## Split by poem, not by character
# A tenth of the poems is held out to test on, another tenth to validate on (to choose the
# n-gram's length and the model's best step), and the rest is for training. Whole poems go to
# one side: cutting the text at a character position instead would put the start of a poem in
# training and its end in the test, and the model would be tested on a poem it half knows. The
# split is drawn once with a fixed seed, whatever `--seed` says, so every run is scored on the
# same test poems.
#
# Each part becomes one long text: its poems in file order, each followed by a line `%`.
# The model learns that line too: it is how the model says "this poem is over". The text of
# each part starts with that line, so the first poem is read as "a new poem starts here".

# %%
import json

import numpy as np

SPLIT_SEED = 2026
END_OF_POEM = "%\n"

numbers = np.random.default_rng(SPLIT_SEED).permutation(sorted(poems))
held_out = max(1, len(numbers) // 10)
split = {
    "test": sorted(numbers[:held_out].tolist()),
    "validation": sorted(numbers[held_out : 2 * held_out].tolist()),
    "train": sorted(numbers[2 * held_out :].tolist()),
}
texts = {part: END_OF_POEM + "".join(poems[number] + "\n" + END_OF_POEM for number in chosen) for part, chosen in split.items()}
for part, chosen in split.items():
    workshop.log(f"{part}: {len(chosen)} poems, {len(texts[part]):,} characters")

# Anyone can check the split, and rebuild the baselines on it, from the source file alone.
split_file = {"source": str(args.data.resolve()), "separator": separator, "split_seed": SPLIT_SEED, **split}
workshop.atomic_write_bytes(args.out / "split.json", (json.dumps(split_file, indent=1) + "\n").encode())

# %% [markdown]
# ## Characters as numbers
# The alphabet is every character of the training poems, plus one code, 0, for "a character
# never seen in training", which held-out poems may contain. Each part becomes an array of
# codes.

# %%
alphabet = ["\N{REPLACEMENT CHARACTER}", *sorted(set(texts["train"]))]
code_of = {character: code for code, character in enumerate(alphabet)}
codes = {part: np.array([code_of.get(character, 0) for character in text], dtype=np.int64) for part, text in texts.items()}
unknown = {part: int((array == 0).sum()) for part, array in codes.items()}
workshop.log(f"alphabet: {len(alphabet)} characters: {''.join(alphabet[1:]).replace(chr(10), '⏎').replace(chr(9), '⇥')}")
workshop.log(f"characters never seen in training: {unknown['validation']} in validation, {unknown['test']} in test")

# %% [markdown]
# ## Bits per character, and the simplest baselines
# A model that gives the right next character the probability $p$ pays $-\log_2 p$ bits for
# it: 0 bits for a sure thing, 1 bit for a coin toss. The average over the test characters is
# the model's score in **bits per character**; fewer is better. Every model below is scored on
# the same characters: all of the test text after its first `%` line.
#
# - **Uniform**: every character of the alphabet equally likely: $\log_2 V$ bits each.
# - **Unigram**: each character as often as in training, whatever came before (one added to
#   every count, so that no character gets probability 0).

# %%
SCORED_FROM = len(END_OF_POEM)  # the first poem's first character; before it, nothing to predict from


def bits_per_character(probabilities: np.ndarray) -> float:
    return float(-np.log2(probabilities).mean())


V = len(alphabet)
scored = {part: array[SCORED_FROM:] for part, array in codes.items()}
unigram = (np.bincount(codes["train"], minlength=V) + 1) / (len(codes["train"]) + V)
bits = {"uniform": float(np.log2(V)), "unigram": bits_per_character(unigram[scored["test"]])}
workshop.log(f"test bits per character: uniform {bits['uniform']:.3f}, unigram {bits['unigram']:.3f}")

# %% [markdown]
# ## The n-gram baseline: interpolated Kneser-Ney
# An n-gram model predicts a character from the $n-1$ characters before it, by counting how
# often each character followed them in training. Long contexts predict well but are rarely
# seen, so the model mixes orders: it takes a fixed amount $D$ off every count and hands what
# it took to the next shorter context, down to the uniform guess (absolute discounting). With
# $c(h\,w)$ the count of character $w$ after context $h$, $c(h)$ all characters after $h$,
# and $N(h)$ how many different characters followed $h$:
#
# $$P(w \mid h) = \frac{\max(c(h\,w) - D,\ 0)}{c(h)} + \frac{D\,N(h)}{c(h)}\,P(w \mid h')$$
#
# where $h'$ is $h$ without its first character. Kneser and Ney's idea: in the shorter
# contexts, count not how often $h'\,w$ occurred but after how many *different* characters.
# A shorter context is asked only when the longer one does not know, so what matters there is
# how readily $w$ follows in new company. $D = n_1 / (n_1 + 2 n_2)$ from the numbers of
# n-grams seen once and twice (Ney, Essen and Kneser, 1994). Every order from 1 to
# `--max-order` is scored on the validation poems; the best one is then scored on the test poems.
#
# To count fast, each n-gram becomes one number: its codes are the digits of a number in base
# $V$. NumPy then counts them all at once (`np.unique`) and looks them up by binary search.

# %%
from dataclasses import dataclass

if V ** (args.max_order + 1) >= 2**63:
    workshop.refuse(f"--max-order {args.max_order} is too long for an alphabet of {V} characters; give a smaller --max-order")


def ngram_numbers(array: np.ndarray, n: int) -> np.ndarray:
    """Each run of n codes, as one number (the codes as digits in base V), from the run at 0 on."""
    if len(array) < n:
        return np.zeros(0, dtype=np.int64)
    return np.lib.stride_tricks.sliding_window_view(array, n) @ (V ** np.arange(n - 1, -1, -1, dtype=np.int64))


def look_up(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == wanted (keys sorted), 0 where the key is not there."""
    where = np.searchsorted(keys, wanted).clip(max=len(keys) - 1)
    return np.where(keys[where] == wanted, values[where], 0)


@dataclass
class Counts:
    """The counts of one order: of each n-gram, and per context (the n-gram less its last character)."""

    ngrams: np.ndarray  # sorted numbers of the n-grams
    counts: np.ndarray  # c(h w), or in how many contexts h w was seen
    contexts: np.ndarray  # sorted numbers of the contexts h
    totals: np.ndarray  # c(h): the counts of h w summed over w
    followers: np.ndarray  # N(h): how many different w followed h
    discount: float  # D

    @classmethod
    def of(cls, ngrams: np.ndarray, counts: np.ndarray) -> "Counts":
        once, twice = np.sum(counts == 1), np.sum(counts == 2)
        discount = float(np.clip(once / max(once + 2 * twice, 1), 0.05, 0.95))
        contexts, which = np.unique(ngrams // V, return_inverse=True)
        return cls(ngrams, counts, contexts, np.bincount(which, weights=counts), np.bincount(which), discount)


class KneserNey:
    """Interpolated Kneser-Ney over characters, trained on `array` (codes), orders 1 to `max_order`."""

    def __init__(self, array: np.ndarray, max_order: int):
        self.plain = {n: Counts.of(*np.unique(ngram_numbers(array, n), return_counts=True)) for n in range(1, max_order + 1)}
        # The lower orders' counts: of each n-gram, after how many different characters it came.
        self.continuation = {
            n: Counts.of(*np.unique(np.unique(ngram_numbers(array, n + 1)) % V**n, return_counts=True))
            for n in range(1, max_order)
        }

    def probabilities(self, array: np.ndarray, order: int, start: int) -> np.ndarray:
        """P(array[i] | the order-1 codes before it), for every i from `start` on."""
        positions = np.arange(start, len(array))
        probability = np.full(len(positions), 1 / V)  # below order 1: the uniform guess
        for n in range(1, order + 1):
            counts = self.plain[n] if n == order else self.continuation[n]
            ngram = np.full(len(positions), -1)  # -1: fewer than n-1 characters before it
            has_context = positions >= n - 1
            ngram[has_context] = ngram_numbers(array, n)[positions[has_context] - n + 1]
            total = look_up(counts.contexts, counts.totals, ngram // V)
            seen = total > 0  # an unseen context hands everything to the shorter one
            total = np.where(seen, total, 1)
            count = look_up(counts.ngrams, counts.counts, ngram)
            followers = look_up(counts.contexts, counts.followers, ngram // V)
            mixed = np.maximum(count - counts.discount, 0) / total + counts.discount * followers / total * probability
            probability = np.where(seen, mixed, probability)
        return probability


ngram_started = time.perf_counter()
kneser_ney = KneserNey(codes["train"], args.max_order)
validation_bits_by_order = {
    n: bits_per_character(kneser_ney.probabilities(codes["validation"], n, SCORED_FROM)) for n in range(1, args.max_order + 1)
}
best_order = min(validation_bits_by_order, key=validation_bits_by_order.get)
bits["ngram"] = bits_per_character(kneser_ney.probabilities(codes["test"], best_order, SCORED_FROM))
for n, value in validation_bits_by_order.items():
    workshop.log(f"{n}-gram: {value:.3f} bits per character on the validation poems{'  <- best' if n == best_order else ''}")
workshop.log(
    f"test bits per character: {best_order}-gram {bits['ngram']:.3f} "
    f"(counted and scored in {time.perf_counter() - ngram_started:.1f} s)"
)

# %% [markdown]
# ## Threads and the device
# A job may use the CPUs Slurm gave it (`--cpus-per-task`), and no more: torch gets that many
# threads. A GPU is used when there is one; `--size auto` then takes the large model.

# %%
import torch

threads = workshop.use_allocated_threads()
device = workshop.pick_device()
size = args.size if args.size != "auto" else ("large" if device.type == "cuda" else "small")
settings = {**SIZES[size], **({"steps": args.steps} if args.steps else {})}
workshop.log(f"model size: {size}: " + ", ".join(f"{name} {value}" for name, value in settings.items()))
torch.manual_seed(args.seed)

# %% [markdown]
# ## The model: a decoder-only Transformer
# The model reads up to `context` characters and, at every position, scores each character of
# the alphabet as the next one. Its parts, from the input up:
#
# - **Embeddings.** Each character code looks up a vector of `width` numbers, and so does
#   each position (0, 1, 2, ...): their sum is what the model knows about that character.
# - **Causal self-attention.** Every position asks a question (its *query*) and every position
#   offers a *key* and a *value*. Query times key says how well they match; a softmax turns
#   the matches into weights that sum to 1; the position takes that mix of the values. The
#   mask lets a position look only at itself and the positions before it: the model must not
#   see the character it is asked to predict. Several *heads* do this side by side, each with
#   its own queries, keys and values, then their results are joined.
# - **Blocks.** A block is attention followed by a small two-layer network applied to every
#   position alone. Each adds its result to its input (a residual connection), after a layer
#   normalisation: this keeps a deep stack trainable. The model stacks `layers` blocks.
# - **The head.** A last layer normalisation and one linear layer give a score per character.

# %%
import math

from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.query_key_value = nn.Linear(width, 3 * width)  # all heads' queries, keys and values at once
        self.output = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.weights = None  # the last attention weights, kept for the figure

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        # (batch, length, 3 x width) -> three tensors of (batch, heads, length, width per head)
        query, key, value = self.query_key_value(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        match = query @ key.transpose(-2, -1) / math.sqrt(width // self.heads)  # (batch, heads, length, length)
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(diagonal=1)
        weights = match.masked_fill(future, float("-inf")).softmax(dim=-1)  # a row: how much each earlier position counts
        self.weights = weights.detach()
        mixed = self.dropout(weights) @ value  # (batch, heads, length, width per head)
        return self.dropout(self.output(mixed.transpose(1, 2).reshape(batch, length, width)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.feed_forward_norm = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.feed_forward_norm(x))


class CharacterTransformer(nn.Module):
    def __init__(self, alphabet_size: int, width: int, layers: int, heads: int, context: int, dropout: float):
        super().__init__()
        self.context = context
        self.character_embedding = nn.Embedding(alphabet_size, width)
        self.position_embedding = nn.Embedding(context, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(width, heads, dropout) for _ in range(layers)))
        self.final_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, alphabet_size)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (batch, length) -> scores (batch, length, alphabet): for each position, the next character."""
        positions = torch.arange(codes.shape[1], device=codes.device)
        x = self.dropout(self.character_embedding(codes) + self.position_embedding(positions))
        return self.head(self.final_norm(self.blocks(x)))


model = CharacterTransformer(
    V, settings["width"], settings["layers"], settings["heads"], settings["context"], settings["dropout"]
).to(device)
parameters = sum(weights.numel() for weights in model.parameters())
print(model)
workshop.log(f"model: {parameters:,} parameters")

# %% [markdown]
# ## The loss: cross-entropy, in bits
# For each position the model gives scores $s_c$, one per character $c$; the softmax turns
# them into probabilities $p_c = e^{s_c} / \sum_{c'} e^{s_{c'}}$. The loss is the
# cross-entropy: the average of $-\ln p_y$ over the positions, where $y$ is the character that
# really came next. It is measured in nats (natural logarithm); dividing by $\ln 2$ gives bits,
# the unit of the baselines:
#
# $$\text{bits per character} = \frac{1}{N} \sum_{i=1}^{N} -\log_2 p_{y_i} = \frac{\text{cross-entropy in nats}}{\ln 2}$$
#
# To score a long text, the model reads it in windows of `context` characters that overlap by
# half, and scores only the second half of each window (all of the first): every character is
# then predicted from at least half a window of text before it, and counted once.

# %%
import torch.nn.functional as F


@torch.no_grad()
def transformer_bits(array: np.ndarray) -> np.ndarray:
    """The bits the model pays for each character of `array` from SCORED_FROM on."""
    model.eval()
    context, text = model.context, torch.as_tensor(array, device=device)
    half = context // 2
    starts = list(range(0, max(len(text) - 1 - context, 0) + 1, half))
    if starts[-1] + context < len(text) - 1:
        starts.append(len(text) - 1 - context)  # the last window ends at the last character
    bits, scored_up_to = [], SCORED_FROM - 1  # the index of the last character scored so far
    for first in range(0, len(starts), 64):  # 64 windows at a time
        batch = starts[first : first + 64]
        inputs = torch.stack([text[start : start + context] for start in batch])
        targets = torch.stack([text[start + 1 : start + 1 + context] for start in batch])
        nats = F.cross_entropy(model(inputs).transpose(1, 2), targets, reduction="none")
        for start, row in zip(batch, nats):
            row = row[: len(text) - 1 - start]  # a window at the very end may be short
            new = max(scored_up_to - start, 0)  # target j of this window is character start + 1 + j
            bits.append(row[new:] / math.log(2))
            scored_up_to = start + len(row)
    model.train()
    return torch.cat(bits).cpu().numpy()


# %% [markdown]
# ## Training
# Each step takes `batch_size` windows of `context` characters from random places in the
# training text, and the model learns to predict every next character in them at once. AdamW
# takes the steps. The learning rate warms up from almost 0 over the first steps (large steps
# on random weights can throw the model off course), then decays along a cosine to a tenth of
# its peak. On a GPU the arithmetic runs in 16-bit floats where that is safe (mixed precision:
# much faster on a V100S's tensor cores); a gradient scaler keeps small gradients from
# rounding to 0. A few times during training (`evaluations`) the model is scored on the
# validation poems, and the weights of the best score are kept.

# %%
import copy

steps, context, batch_size = settings["steps"], settings["context"], settings["batch_size"]
evaluate_every = max(1, steps // settings["evaluations"])
warmup = max(1, steps // 20)


def learning_rate_factor(step: int) -> float:
    """Linear warm-up, then a cosine from 1 down to 0.1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
mixed_precision = device.type == "cuda"
scaler = torch.amp.GradScaler("cuda", enabled=mixed_precision)
train_text = torch.as_tensor(codes["train"], device=device)
draws = torch.Generator(device=device).manual_seed(args.seed)  # where the windows come from follows --seed

history = {"step": [], "train_bits": [], "validation_bits": []}
best_bits, best_step, best_weights = float("inf"), 0, None
progress = workshop.Progress(total=steps, unit="characters", label="step")
running_nats, evaluation_seconds, training_started = 0.0, 0.0, time.perf_counter()
for step in range(1, steps + 1):
    starts = torch.randint(0, len(train_text) - context - 1, (batch_size,), device=device, generator=draws)
    window = starts[:, None] + torch.arange(context + 1, device=device)
    inputs, targets = train_text[window[:, :-1]], train_text[window[:, 1:]]
    with torch.autocast(device.type, dtype=torch.float16, enabled=mixed_precision):
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # one bad batch cannot throw the weights far
    scaler.step(optimizer)
    scaler.update()
    schedule.step()
    running_nats += loss.item()
    if step % evaluate_every == 0 or step == steps:
        interval = step - (history["step"][-1] if history["step"] else 0)
        train_bits = running_nats / interval / math.log(2)
        evaluation_started = time.perf_counter()
        validation_bits = float(transformer_bits(codes["validation"]).mean())
        evaluation_seconds += time.perf_counter() - evaluation_started
        for key, value in zip(history, (step, train_bits, validation_bits)):
            history[key].append(round(value, 5))
        if validation_bits < best_bits:
            best_bits, best_step, best_weights = validation_bits, step, copy.deepcopy(model.state_dict())
        progress.step(step, items=interval * batch_size * context, train_bits=train_bits, validation_bits=validation_bits)
        running_nats = 0.0
training_seconds = time.perf_counter() - training_started
# The speed of the training steps alone (the validation scores are not training).
characters_per_second = round(steps * batch_size * context / (training_seconds - evaluation_seconds))

# %% [markdown]
# ## The test poems, once
# The weights of the best validation step are put back, and the model is scored on the test
# poems: the same characters the baselines were scored on.

# %%
model.load_state_dict(best_weights)
bits["transformer"] = float(transformer_bits(codes["test"]).mean())
margin = bits["ngram"] - bits["transformer"]
workshop.log(f"best validation step: {best_step} ({best_bits:.3f} bits per character)")
model_names = {"uniform": "uniform", "unigram": "unigram", "ngram": f"{best_order}-gram Kneser-Ney", "transformer": "Transformer"}
for name, label in model_names.items():
    workshop.log(f"test bits per character, {label:<20s} {bits[name]:.3f}")
better_or_worse = "better" if margin > 0 else "worse"
workshop.log(f"the Transformer is {margin:+.3f} bits per character {better_or_worse} than the {best_order}-gram")

# %% [markdown]
# ## Writing verse: sampling with a temperature
# To write, the model starts from the `%` line that begins a poem, gives the probabilities of
# the next character, draws one at random with those probabilities, appends it, and goes on.
# Two knobs change the draw. The **temperature** $T$ divides the scores before the softmax:
# below 1 it sharpens the probabilities (safe, repetitive text), above 1 it flattens them
# (daring text, more misspellings). **Top-k** draws only among the $k$ likeliest characters, so
# that the many unlikely ones, each rare but together not, never get picked. The samples
# follow `--seed`; they are written to `samples.txt` exactly as drawn.

# %%
@torch.no_grad()
def write_verse(temperatures: list[float], length: int, generator: torch.Generator) -> list[str]:
    """One sample of `length` characters per temperature (all drawn side by side, as one batch),
    each starting after the line that begins a poem."""
    model.eval()
    written = torch.tensor([[code_of[character] for character in END_OF_POEM]] * len(temperatures), device=device)
    temperature = torch.tensor(temperatures, device=device)[:, None]
    for _ in range(length):
        scores = model(written[:, -model.context :])[:, -1] / temperature
        kth_best = scores.topk(min(args.top_k, V)).values[:, -1:]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
        next_character = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)
        written = torch.cat([written, next_character], dim=1)
    model.train()
    return ["".join(alphabet[code] for code in row[len(END_OF_POEM) :].tolist()) for row in written]


temperature_of = dict(zip(("low", "middle", "high"), sorted(args.temperatures)))
draws = torch.Generator(device=device).manual_seed(args.seed)
row_temperatures = [temperature for temperature in temperature_of.values() for _ in range(args.samples)]
drawn = write_verse(row_temperatures, args.sample_length, draws)
samples = {level: drawn[i * args.samples : (i + 1) * args.samples] for i, level in enumerate(temperature_of)}
with_headings = [
    f"=== temperature {temperature_of[level]} ({level}), sample {number} of {args.samples} ===\n{text}\n"
    for level, texts_at in samples.items()
    for number, text in enumerate(texts_at, start=1)
]
workshop.atomic_write_bytes(args.out / "samples.txt", "\n".join(with_headings).encode())
for level, texts_at in samples.items():
    print(f"--- temperature {temperature_of[level]} ({level}) ---\n{texts_at[0]}\n")

# %% [markdown]
# ## Is it writing or copying?
# A model can score well by learning its training poems by heart. Two numbers say how much of
# a text is found word for word in the training text:
#
# - the **longest copied run**: the longest stretch of the text, in characters, that also
#   appears somewhere in the training text;
# - the **share of copied 8-grams**: of all runs of 8 characters in the text, how many also
#   appear in the training text.
#
# Some overlap is normal: common words and phrases ("and the ", "of the sea") recur in any
# verse. So the same numbers are measured on passages of the **test poems**, written by people
# and never trained on: each starts where a test poem starts, is as long as a sample and,
# like the samples, runs on into the next poem when one ends. A model whose numbers sit far
# above the people's is reciting, not writing.

# %%
COPY_NGRAM = 8


def longest_copied_run(text: str, training: str) -> int:
    """The length of the longest stretch of `text` that also appears in `training`."""
    longest = 0
    for start in range(len(text)):
        # Only a run longer than the longest so far matters: try to extend by one character.
        while start + longest < len(text) and text[start : start + longest + 1] in training:
            longest += 1
    return longest


def share_copied(text: str, training_ngrams: set[str], n: int = COPY_NGRAM) -> float:
    """The share of the n-character runs of `text` that also appear in the training text."""
    ngrams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return sum(ngram in training_ngrams for ngram in ngrams) / len(ngrams)


def human_passages(count: int, length: int) -> list[str]:
    """Up to `count` passages of the test text, `length` characters each, each starting at a test
    poem's first character and none overlapping the one before."""
    passages, free_from, position = [], 0, len(END_OF_POEM)
    for number in split["test"]:
        if position >= free_from and position + length <= len(texts["test"]) and len(passages) < count:
            passages.append(texts["test"][position : position + length])
            free_from = position + length
        position += len(poems[number]) + 1 + len(END_OF_POEM)
    return passages


training = texts["train"]
training_ngrams = {training[i : i + COPY_NGRAM] for i in range(len(training) - COPY_NGRAM + 1)}
people = human_passages(args.samples * len(samples), args.sample_length)
passages_with_headings = [f"=== test passage {n} of {len(people)} ===\n{text}\n" for n, text in enumerate(people, start=1)]
workshop.atomic_write_bytes(args.out / "held_out_passages.txt", "\n".join(passages_with_headings).encode())
copying = {
    level: [
        {"longest_copied_run": longest_copied_run(text, training), "share_copied_8grams": share_copied(text, training_ngrams)}
        for text in texts_at
    ]
    for level, texts_at in samples.items()
}
copying["people"] = [
    {"longest_copied_run": longest_copied_run(text, training), "share_copied_8grams": share_copied(text, training_ngrams)}
    for text in people
]
copying_summary = {
    who: {
        "texts": len(rows),
        "median_longest_copied_run": float(np.median([row["longest_copied_run"] for row in rows])),
        "max_longest_copied_run": max(row["longest_copied_run"] for row in rows),
        "mean_share_copied_8grams": float(np.mean([row["share_copied_8grams"] for row in rows])),
    }
    for who, rows in copying.items()
}
print(f"{'':24s} {'texts':>5s} {'longest copied run':>20s} {'8-grams in training':>20s}")
print(f"{'':24s} {'':>5s} {'median (max)':>20s} {'mean':>20s}")
for who, row in copying_summary.items():
    label = f"model, temperature {temperature_of[who]}" if who in temperature_of else "people: test poems"
    run = f"{row['median_longest_copied_run']:.0f} ({row['max_longest_copied_run']})"
    print(f"{label:24s} {row['texts']:5d} {run:>20s} {row['mean_share_copied_8grams']:20.1%}")

# %% [markdown]
# ## Learning curves, against the n-gram
# Bits per character on the validation poems as training goes on, next to the baselines
# scored on the same poems. The training curve is the mean over the steps since the last
# point; it is measured on text the model is learning from, so it can fall below the
# validation curve: the gap is overfitting.

# %%
import matplotlib.pyplot as plt

validation_baselines = {
    "uniform": bits["uniform"],
    "unigram": bits_per_character(unigram[scored["validation"]]),
    f"{best_order}-gram Kneser-Ney (the best n-gram)": validation_bits_by_order[best_order],
}
figure, axes = plt.subplots(figsize=(8, 4.5))
axes.plot(history["step"], history["train_bits"], "o-", markersize=3, label="Transformer, training text")
axes.plot(history["step"], history["validation_bits"], "s-", markersize=3, label="Transformer, validation poems")
for (name, value), style in zip(validation_baselines.items(), (":", "-.", "--")):
    axes.axhline(value, color="grey", linestyle=style, label=f"{name}: {value:.2f}")
axes.axvline(best_step, color="black", linewidth=0.8, label=f"best validation step ({best_step})")
axes.set(xlabel="training step", ylabel="bits per character (lower is better)", ylim=(0, bits["uniform"] + 0.5))
axes.set_title(
    f"Test poems: Transformer {bits['transformer']:.2f}, {best_order}-gram {bits['ngram']:.2f}, "
    f"unigram {bits['unigram']:.2f} bits per character"
)
axes.grid(alpha=0.3)
axes.legend(fontsize="small")
workshop.save_figure(figure, args.out / "learning_curves.png")

# %% [markdown]
# ## What the model looks at: attention weights for one line
# One line of a test poem goes through the trained model, and the attention weights of its
# last block are drawn, one panel per head. Row: the position that predicts the next
# character; column: an earlier position it looks at; dark: much weight. The upper triangle
# is empty: the mask hides the future. Heads often differ: one looks back at the last few
# characters (how a word is spelled), another further, at the start of the word or the line.

# %%
line = next(
    (candidate for number in split["test"] for candidate in poems[number].splitlines() if 24 <= len(candidate.strip()) <= 44),
    texts["test"][len(END_OF_POEM) : len(END_OF_POEM) + 40],
).strip()[: model.context - len(END_OF_POEM)]
shown = END_OF_POEM + line
model.eval()
with torch.no_grad():
    model(torch.tensor([[code_of.get(character, 0) for character in shown]], device=device))
model.train()
weights = model.blocks[-1].attention.weights[0].float().cpu().numpy()  # (heads, length, length)
labels = [{"\n": "⏎", " ": "␣", "\t": "⇥"}.get(character, character) for character in shown]
columns = min(len(weights), 3)
rows = math.ceil(len(weights) / columns)
figure, panels = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), squeeze=False)
for head, panel in enumerate(panels.flat):
    if head >= len(weights):
        panel.axis("off")
        continue
    panel.imshow(weights[head], cmap="Greys", vmin=0, vmax=1)
    panel.set_xticks(range(len(labels)), labels, fontsize=6, family="monospace")
    panel.set_yticks(range(len(labels)), labels, fontsize=6, family="monospace")
    panel.set_title(f"head {head + 1}", fontsize=9)
figure.suptitle(f"Last block's attention on a test line: {line!r}", fontsize=10)
figure.supxlabel("earlier position it looks at")
figure.supylabel("position predicting the next character")
workshop.save_figure(figure, args.out / "attention.png")

# %% [markdown]
# ## Results
# `metrics.json` holds the numbers the page shows, with where and how long the run took;
# `split.json`, `samples.txt` and `held_out_passages.txt` let anyone check them without this
# code. The log's last line sums them up.

# %%
metrics = {
    "data": str(args.data),
    "poems": {part: len(chosen) for part, chosen in split.items()},
    "characters": {part: len(text) for part, text in texts.items()},
    "alphabet_size": V,
    "unknown_characters": unknown,
    "bits_per_character": bits,
    "ngram_order": best_order,
    "ngram_validation_bits_by_order": {str(n): value for n, value in validation_bits_by_order.items()},
    "margin_over_ngram": margin,
    "size": size,
    "model": {name: settings[name] for name in ("width", "layers", "heads", "context", "dropout")},
    "parameters": parameters,
    "steps": steps,
    "batch_size": batch_size,
    "learning_rate": args.learning_rate,
    "best_step": best_step,
    "validation_bits": best_bits,
    "history": history,
    "temperatures": temperature_of,
    "top_k": args.top_k,
    "samples_per_temperature": args.samples,
    "sample_length": args.sample_length,
    "samples": samples,
    "copying": copying,
    "copying_summary": copying_summary,
    "attention_line": line,
    "seed": args.seed,
    "quick": args.quick,
}
workshop.write_metrics(
    args.out, metrics, started, device=device, threads=threads, characters_per_second=characters_per_second,
    training_seconds=round(training_seconds, 1), evaluation_seconds=round(evaluation_seconds, 1),
)  # fmt: skip
workshop.report_result(
    transformer_bits=bits["transformer"], ngram_bits=bits["ngram"], ngram_order=best_order, unigram_bits=bits["unigram"]
)
