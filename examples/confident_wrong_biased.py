"""Confident, wrong and biased: two things to keep in mind about trained models, made visible.

A trained classifier always answers, often with great confidence: on inputs nothing like what
it was trained on, and when it is wrong. And a model learns whatever in its data predicts the
label, including patterns nobody meant to put there. This example shows both with small
networks on scikit-learn's handwritten digits (8 x 8 pixels, 10 classes, no download):

- a network trained long on a few digits, and its confidence on real test digits, on random
  noise and on shuffled pixels; then calibration: a reliability diagram and the expected
  calibration error (ECE) on the test digits, before and after temperature scaling;
- a planted shortcut: a tag above each training digit that gives its class away, and what a
  network trained on it does when the tag is missing or misleading, next to one trained
  without tags.

Run it: `python3 examples/confident_wrong_biased.py` (`--quick` for a short run, `--help` for the options).
"""

# %%
import time

import workshop

parser = workshop.make_parser(
    "Confidence on strange inputs, calibration with temperature scaling, and a planted shortcut, on handwritten digits.",
    default_out="results/confident_wrong_biased",
)
parser.add_argument("--epochs", type=workshop.at_least(1), default=300, help="training epochs of each of the three networks")
parser.add_argument("--train-images", type=workshop.at_least(10), default=100,
                    help="training digits, each class equally often as far as possible: 10 (one a class) up to the 1257 of "
                    "digits.py's training part")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=32, help="images per training step")
args = workshop.parse_args(parser, quick_defaults={"epochs": 100, "train_images": 80})
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The data: a few training digits
# The digits come split once by `digits.py`, as in every example. The network learns from only
# `--train-images` of the training part (100 by default: ten of each digit), drawn with
# `--seed`; few labelled examples are common in science, where labels are expensive. The
# validation digits fit the temperature below; the test digits only judge. The network reads
# an image's 64 pixels as one row of numbers.

# %%
import numpy as np
import torch
from sklearn.model_selection import train_test_split

import digits

split = digits.load_digits_split()
pool_images, pool_labels = split["train"]
if args.train_images > len(pool_labels):
    workshop.refuse(
        f"--train-images {args.train_images} is more than the {len(pool_labels)} digits of the training part; "
        f"choose 10 to {len(pool_labels)}"
    )
everything = np.arange(len(pool_labels))
if args.train_images == len(pool_labels):
    chosen, unused = everything, everything[:0]
else:
    chosen, unused = train_test_split(everything, train_size=args.train_images, stratify=pool_labels, random_state=args.seed)
data = {
    "train": (pool_images[chosen].flatten(1), pool_labels[chosen]),
    # The training digits this network does not learn from join the validation digits: the
    # more held-out digits the temperature is fitted on, the steadier it is.
    "validation": (
        torch.cat([split["validation"][0], pool_images[unused]]).flatten(1),
        torch.cat([split["validation"][1], pool_labels[unused]]),
    ),
    "test": (split["test"][0].flatten(1), split["test"][1]),
}
for part, (images, labels) in data.items():
    workshop.log(f"{part}: images {tuple(images.shape)}, of each digit 0-9: {np.bincount(labels).tolist()}")
test_images, test_labels = data["test"][0], data["test"][1].numpy()

# %% [markdown]
# ## Strange inputs
# Inputs that look nothing like a digit, yet the classifier will have to put each one in a
# class: uniform random noise, and the test digits with their 64 pixels shuffled (the same ink,
# no shape).

# %%
generator = torch.Generator().manual_seed(args.seed)
inputs = {
    "real_digits": test_images,
    "random_noise": torch.rand(test_images.shape, generator=generator),
    "shuffled_pixels": torch.stack([image[torch.randperm(64, generator=generator)] for image in test_images]),
}
INPUT_NAMES = {"real_digits": "real test digits", "random_noise": "random noise", "shuffled_pixels": "shuffled pixels"}
for kind, images in inputs.items():
    workshop.log(f"{INPUT_NAMES[kind]}: {tuple(images.shape)}, mean pixel {images.mean():.2f}")

# %% [markdown]
# ## The network and its training
# A small fully connected network. Adam without weight decay and with nothing to stop it
# early, so the training loss keeps falling long after every training digit is classified
# right: the classic recipe for an overconfident network. The digits are in memory, so the
# job's CPUs are all torch threads (no loader workers). The same training serves the three
# networks of this example; one line per epoch: the training loss and validation accuracy.

# %%
import torch.nn.functional as F
from torch import nn

threads = workshop.use_allocated_threads()
device = workshop.pick_device()
torch.manual_seed(args.seed)


def small_network(pixels: int) -> nn.Module:
    return nn.Sequential(nn.Linear(pixels, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


@torch.no_grad()
def scores_of(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The network's raw outputs (logits), in float64 on the CPU for the calibration arithmetic."""
    model.eval()
    return model(images.to(device)).double().cpu()


def accuracy_of(model: nn.Module, images: torch.Tensor, labels) -> float:
    return float((scores_of(model, images).argmax(1) == torch.as_tensor(labels)).double().mean())


def train(name: str, train_images, train_labels, validation_images, validation_labels) -> nn.Module:
    model = small_network(train_images.shape[1]).to(device)
    images, labels = train_images.to(device), train_labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(args.seed)  # the same batches for the same seed
    progress = workshop.Progress(total=args.epochs, unit="images", label=f"{name}: epoch")
    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss = torch.zeros((), device=device)
        for batch in torch.randperm(len(labels), generator=order).split(args.batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(batch)
        validation_accuracy = accuracy_of(model, validation_images, validation_labels)
        progress.step(epoch, items=len(labels), loss=total_loss.item() / len(labels), val_accuracy=validation_accuracy)
    return model


classifier = train("classifier", *data["train"], *data["validation"])
print(classifier)
train_accuracy = accuracy_of(classifier, *data["train"])
workshop.log(f"classifier: {sum(w.numel() for w in classifier.parameters()):,} weights; training accuracy {train_accuracy:.2%}")

# %% [markdown]
# ## Confident nonsense
# The confidence of an answer is its largest softmax probability. "I don't know" would be 10%
# on each digit, yet the softmax can only share 100% among the ten digits: "none of these" is
# not an answer the network has.

# %%
import matplotlib.pyplot as plt


def probabilities(scores: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return F.softmax(scores / temperature, dim=1).numpy()


scores = {kind: scores_of(classifier, images) for kind, images in inputs.items()}
confidence = {kind: probabilities(values).max(1) for kind, values in scores.items()}
test_accuracy = float((probabilities(scores["real_digits"]).argmax(1) == test_labels).mean())
workshop.log(f"test accuracy: {test_accuracy:.2%} (guessing: 10%)")
for kind, values in confidence.items():
    workshop.log(f"mean confidence on {INPUT_NAMES[kind]}: {values.mean():.2%}")

# Left: examples of each kind of input, with the digit the network names and how sure it is
# (and the wrong test answers it was surest of); right: how the confidences spread.
real = probabilities(scores["real_digits"])
wrong = np.flatnonzero(real.argmax(1) != test_labels)
surest_wrong = wrong[np.argsort(-real[wrong].max(1))]
rows = {
    "real test digits": ("real_digits", np.arange(4)),
    "wrong, yet sure\n(true class above)": ("real_digits", surest_wrong[:4]),
    "random noise": ("random_noise", np.arange(4)),
    "shuffled pixels": ("shuffled_pixels", np.arange(4)),
}
figure = plt.figure(figsize=(11, 6), layout="constrained")
left, right = figure.add_gridspec(1, 2, width_ratios=[1, 1.5])
examples = left.subgridspec(len(rows), 4)
for row, (label, (kind, shown)) in enumerate(rows.items()):
    answers = probabilities(scores[kind])
    for column, index in enumerate(shown):
        axes = figure.add_subplot(examples[row, column])
        axes.imshow(inputs[kind][index].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        truth = f"is {test_labels[index]}, " if label.startswith("wrong") else ""
        axes.set_title(f"{truth}says {answers[index].argmax()}\n{answers[index].max():.0%} sure", fontsize=8)
        axes.set(xticks=[], yticks=[])
        if column == 0:
            axes.set_ylabel(label, fontsize=9)
histogram = figure.add_subplot(right)
for kind, values in confidence.items():
    label = f"{INPUT_NAMES[kind]} (mean {values.mean():.0%})"
    histogram.hist(values, bins=np.linspace(0, 1, 16), histtype="step", linewidth=2, label=label)  # 15 bins
histogram.set(xlabel="confidence: the largest softmax probability", ylabel="number of inputs")
histogram.set_title("How sure the classifier is, on digits and on non-digits")
histogram.legend(loc="upper left")
workshop.save_figure(figure, args.out / "confidence.png")

# %% [markdown]
# ## Calibration, and temperature scaling
# A network is *calibrated* when its confidence matches how often it is right: of all the
# answers it gives with 90% confidence, 90% are right. The expected calibration error (ECE)
# sorts the test answers into 15 equal-width confidence bins, (0, 1/15], ..., (14/15, 1], and
# averages |accuracy - mean confidence| over the bins, each weighted by its share of the
# answers. Temperature scaling divides the scores by one number T > 0, fitted on the
# validation digits by minimising the negative log-likelihood (NLL); T > 1 softens
# overconfident answers. It never changes which digit wins, so the accuracy stays the same.

# %%
BINS = 15


def calibration_bins(answers: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: the number of answers, and the sums of their confidence and of their right answers."""
    sure = answers.max(1)
    right = answers.argmax(1) == labels
    in_bin = np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], sure)  # bin b holds (b/15, (b+1)/15]
    return np.bincount(in_bin, minlength=BINS), np.bincount(in_bin, sure, BINS), np.bincount(in_bin, right, BINS)


def expected_calibration_error(answers: np.ndarray, labels: np.ndarray) -> float:
    counts, sure, right = calibration_bins(answers, labels)
    # sum over bins of n_b / N * |accuracy_b - confidence_b| = |right_b - sure_b| / N
    return float(np.abs(right - sure).sum() / counts.sum())


def negative_log_likelihood(answers: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(answers[np.arange(len(labels)), labels]).mean())


# L-BFGS finds the T that minimises the validation NLL; it searches log T, so that T stays positive.
validation_scores, validation_labels = scores_of(classifier, data["validation"][0]), data["validation"][1]
log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
optimizer = torch.optim.LBFGS([log_temperature], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")


def validation_nll() -> torch.Tensor:
    optimizer.zero_grad()
    loss = F.cross_entropy(validation_scores / log_temperature.exp(), validation_labels)
    loss.backward()
    return loss


optimizer.step(validation_nll)
temperature = log_temperature.exp().item()
before, after = probabilities(scores["real_digits"]), probabilities(scores["real_digits"], temperature)
workshop.log(f"temperature fitted on the {len(validation_labels)} validation digits: T = {temperature:.3f}")
for name, measure in (("ECE", expected_calibration_error), ("NLL", negative_log_likelihood)):
    workshop.log(f"test {name}: {measure(before, test_labels):.4f} before temperature scaling, {measure(after, test_labels):.4f} after")

# Reliability diagrams: accuracy against confidence per bin (a calibrated network follows the
# diagonal), before and after, with the number of answers per bin below.
figure, axes = plt.subplots(2, 2, figsize=(11, 6.5), height_ratios=[3, 1], sharex=True, layout="constrained")
centres = (np.arange(BINS) + 0.5) / BINS
panels = (("Before temperature scaling", before), (f"After temperature scaling (T = {temperature:.2f})", after))
for column, (title, answers) in enumerate(panels):
    counts, sure, right = calibration_bins(answers, test_labels)
    with np.errstate(invalid="ignore"):  # an empty bin is 0 / 0: no bar
        accuracy, mean_sure = right / counts, sure / counts
    top, bottom = axes[0, column], axes[1, column]
    top.bar(centres, np.nan_to_num(accuracy), width=1 / BINS, edgecolor="black", label="accuracy in the bin")
    gap = np.nan_to_num(mean_sure - accuracy)
    label = "gap to the bin's mean confidence"
    top.bar(centres, gap, bottom=np.nan_to_num(accuracy), width=1 / BINS, color="tab:red", alpha=0.35, label=label)
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_title(f"{title}\nECE {expected_calibration_error(answers, test_labels):.2%} on {len(test_labels)} test digits")
    top.set(ylabel="accuracy", ylim=(0, 1))
    top.legend(loc="upper left")
    bottom.bar(centres, counts, width=1 / BINS, edgecolor="black", color="tab:gray")
    bottom.set(yscale="log", ylim=(0.8, 1.5 * len(test_labels)), ylabel="test digits", xlim=(0, 1))
    bottom.set_xlabel(f"confidence ({BINS} equal-width bins)")
workshop.save_figure(figure, args.out / "reliability.png")

# %% [markdown]
# ## A planted shortcut
# Each digit goes on a slightly larger canvas: three empty rows above it and a column either
# side. In 95% of the training and validation images a bright bar sits above the digit at the
# column of its class, which predicts the label without looking at the digit. One network
# learns from these; a second, the reference, from the same canvases without tags. Both then
# meet the same test digits three ways: tag at its class's column, no tag, and tag at a
# random column.

# %%
SHORTCUT_SHARE = 0.95  # share of the training and validation images whose tag tells the class
TAG_HEIGHT = 3  # rows: the tag is a short bright bar, as bold as a digit's stroke
TEST_SETS = {"tag": "tag at its class's column", "none": "no tag", "random": "tag at a random column"}


def on_canvas(images: torch.Tensor, tag_at: torch.Tensor) -> torch.Tensor:
    """Each 8 x 8 image in the middle of a (TAG_HEIGHT + 8) x 10 canvas, with a tag at column
    `tag_at` (0-9: one place per class) or none where `tag_at` is -1; flattened, as the network reads it."""
    canvas = torch.zeros(len(images), TAG_HEIGHT + 8, 10)
    canvas[:, TAG_HEIGHT:, 1:9] = images.reshape(-1, 8, 8)
    tagged = torch.nonzero(tag_at >= 0).flatten()
    canvas[tagged, :TAG_HEIGHT, tag_at[tagged]] = 1.0  # as bright as the brightest ink
    return canvas.flatten(1)


def tag_or_none(labels: torch.Tensor) -> torch.Tensor:
    """The label as the tag's column in SHORTCUT_SHARE of the images, -1 (no tag) in the others."""
    return torch.where(torch.rand(len(labels), generator=generator) < SHORTCUT_SHARE, labels, -1)


tags = {part: tag_or_none(data[part][1]) for part in ("train", "validation")}
tagged = {part: (on_canvas(data[part][0], tags[part]), data[part][1]) for part in tags}
untagged = {part: (on_canvas(images, torch.full_like(labels, -1)), labels) for part, (images, labels) in data.items()}
test_versions = {
    "tag": on_canvas(test_images, data["test"][1]),
    "none": untagged["test"][0],
    "random": on_canvas(test_images, torch.randint(0, 10, (len(test_labels),), generator=generator)),
}
for part, tag in tags.items():
    workshop.log(f"{part}: canvases {tuple(tagged[part][0].shape)}, {int((tag >= 0).sum())} of {len(tag)} tagged")

networks = {
    "shortcut": train("shortcut model", *tagged["train"], *tagged["validation"]),
    "clean": train("clean model", *untagged["train"], *untagged["validation"]),
}
seen = {"shortcut": tagged, "clean": untagged}  # what each network trained and validated on
accuracy = {
    name: {version: accuracy_of(model, images, test_labels) for version, images in test_versions.items()}
    for name, model in networks.items()
}
for name, results in accuracy.items():
    workshop.log(f"{name} model, test accuracy: " + ", ".join(f"{TEST_SETS[k]} {v:.2%}" for k, v in results.items()))

# What each network saw in training, one test digit three ways, and the accuracies.
canvas_shape = (TAG_HEIGHT + 8, 10)


def tag_column(image: torch.Tensor) -> int:
    """The column of the canvas's tag (the class it points to), -1 if it has none."""
    top_row = image.reshape(canvas_shape)[0]
    return int(top_row.argmax()) if top_row.max() > 0 else -1


example = next(i for i, image in enumerate(tagged["train"][0]) if tag_column(image) >= 0)
# a test digit whose random tag points clearly away from its class
misleading = next(i for i, label in enumerate(test_labels) if abs(tag_column(test_versions["random"][i]) - label) >= 3)
shown = {
    "shortcut model's\ntraining image": tagged["train"][0][example],
    "clean model's\ntraining image": untagged["train"][0][example],
    **{f"test:\n{label}": test_versions[key][misleading] for key, label in TEST_SETS.items()},
}
figure = plt.figure(figsize=(11, 6.5), layout="constrained")
top, bottom = figure.add_gridspec(2, 1, height_ratios=[1, 1.6])
pictures = top.subgridspec(1, len(shown))
for column, (title, image) in enumerate(shown.items()):
    axes = figure.add_subplot(pictures[column])
    axes.imshow(image.reshape(canvas_shape), cmap="gray_r", vmin=0, vmax=1)
    axes.add_patch(plt.Rectangle((0.5, TAG_HEIGHT - 0.5), 8, 8, fill=False, edgecolor="tab:blue", linewidth=1))
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(f"the tag says {tag_column(image)}" if tag_column(image) >= 0 else "no tag", fontsize=9)
    axes.set(xticks=[], yticks=[])
bars = figure.add_subplot(bottom)
positions = np.arange(len(TEST_SETS))
for offset, (name, results) in zip((-0.2, 0.2), accuracy.items()):
    values = [results[key] for key in TEST_SETS]
    drawn = bars.bar(positions + offset, values, width=0.4, label=f"{name} model")
    bars.bar_label(drawn, labels=[f"{value:.1%}" for value in values])
bars.axhline(0.1, color="black", linestyle=":", linewidth=1, label="guessing (10%)")
bars.set_xticks(positions, [f"test: {label}" for label in TEST_SETS.values()])
bars.set(ylabel="test accuracy", ylim=(0, 1.25), yticks=np.linspace(0, 1, 6))  # room for the legend above the bars
bars.legend(loc="upper center", ncols=3)
bars.set_title("The same test digits; only the tag above them changes")
workshop.save_figure(figure, args.out / "shortcut.png")

# %% [markdown]
# ## Results
# The numbers the page shows, in `metrics.json`; the log's last line sums them up.

# %%
metrics = {
    "train_images": len(data["train"][1]),
    "validation_images": len(validation_labels),
    "test_images": len(test_labels),
    "epochs": args.epochs,
    "batch_size": args.batch_size,
    "train_accuracy": train_accuracy,
    "test_accuracy": test_accuracy,
    "calibration_bins": BINS,
    "temperature": temperature,
    "ece_before": expected_calibration_error(before, test_labels),
    "ece_after": expected_calibration_error(after, test_labels),
    "nll_before": negative_log_likelihood(before, test_labels),
    "nll_after": negative_log_likelihood(after, test_labels),
    "mean_confidence": {kind: float(values.mean()) for kind, values in confidence.items()},
    "mean_confidence_after_scaling": {kind: float(probabilities(s, temperature).max(1).mean()) for kind, s in scores.items()},
    "shortcut_share": SHORTCUT_SHARE,
    **{
        f"{name}_model": {
            "validation_accuracy": accuracy_of(model, *seen[name]["validation"]),
            **{f"test_accuracy_{version}": value for version, value in accuracy[name].items()},
        }
        for name, model in networks.items()
    },
    **{
        f"{name}_drop_{change}": accuracy[name]["tag"] - accuracy[name][version]
        for name in networks
        for change, version in (("without_tag", "none"), ("random_tag", "random"))
    },
    "seed": args.seed,
    "quick": args.quick,
}
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
workshop.report_result(
    test_accuracy=test_accuracy,
    ece_before=metrics["ece_before"],
    ece_after=metrics["ece_after"],
    noise_confidence=metrics["mean_confidence"]["random_noise"],
    shortcut_tag=accuracy["shortcut"]["tag"],
    shortcut_none=accuracy["shortcut"]["none"],
    shortcut_random=accuracy["shortcut"]["random"],
    clean_none=accuracy["clean"]["none"],
)
