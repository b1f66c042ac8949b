"""Confident, wrong and biased: two things to keep in mind about trained models, made visible.

A trained classifier always answers, and it often answers with great confidence: when the input
is nothing like what it was trained on, and when it is wrong. And a model learns whatever in its
data predicts the label, including patterns nobody meant to put there. This example shows both
on scikit-learn's bundled handwritten digits (8 x 8 pixel images, 10 classes, no download).

(a) Confident nonsense and calibration. A small neural network is trained on 100 digits (ten of
    each class) long after it fits them perfectly: a small data set and long training are the
    setting in which networks become overconfident. We compare its confidence (its largest
    softmax probability) on real test digits with its confidence on random noise and on digits
    whose pixels were shuffled. Then we ask whether its confidence on real digits can be
    trusted: a reliability diagram and the expected calibration error (ECE) on the held-out
    test set, before and after temperature scaling (one number T, fitted on the validation set,
    that divides the model's outputs).

(b) A planted shortcut. Almost every training image gets a bright tag above the digit, at a
    column that tells its class. A model trained on these images is perfect on test images with
    the same tag, worse on the same test images without it, and when the tag sits at a random
    column it follows the tag, not the digit. A model trained on the same images without tags is
    the reference.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import workshop

VALIDATION_IMAGES = 400  # to fit the temperature; the digits left after training and validation are the test set
MIN_TEST_IMAGES = 100
CALIBRATION_BINS = 15  # equal-width confidence bins: (0, 1/15], (1/15, 2/15], ..., (14/15, 1]
SHORTCUT_SHARE = 0.95  # share of the shortcut model's training images whose tag tells the class
TAG_HEIGHT = 3  # pixels: the tag is a short bright bar, as bold as a digit's stroke
INPUTS = {"real_digits": "real test digits", "random_noise": "random noise", "shuffled_pixels": "shuffled pixels"}
TEST_SETS = {"tag": "tag at its class's column", "none": "no tag", "random": "tag at a random column"}


# %% [markdown]
# ## The whole run
# The options, the data, the two experiments, then the figures and `metrics.json`.
# Each step is a small function further down.


# %%
def main() -> None:
    parser = workshop.make_parser(__doc__.split("\n")[0], default_out="results/confident_wrong_biased")
    parser.add_argument(
        "--epochs",
        type=workshop.positive_int,
        help="training epochs of each of the three models (default: 300, or 200 with --quick)",
    )
    parser.add_argument(
        "--train-images",
        type=workshop.positive_int,
        default=100,
        help=(
            "training digits, the same number of each class as far as possible: from 10 up to what leaves "
            f"{VALIDATION_IMAGES} for validation and {MIN_TEST_IMAGES} for testing (default: 100)"
        ),
    )
    parser.add_argument(
        "--batch-size", type=workshop.positive_int, default=32, help="images per training step (default: 32)"
    )
    args = workshop.parse_args(parser)
    epochs = args.epochs or (200 if args.quick else 300)

    started = time.perf_counter()
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()
    workshop.seed_everything(args.seed)
    digits = split_digits(args.train_images, args.seed)
    workshop.log(
        f"data: {len(digits['train_y'])} training, {len(digits['val_y'])} validation and "
        f"{len(digits['test_y'])} test digits of 8 x 8 pixels"
    )

    # (a) A classifier trained long after it fits its training set; its confidence everywhere.
    classifier = train(mlp(inputs=64), digits, epochs, args.batch_size, args.seed, device, name="classifier")
    temperature = fit_temperature(logits_of(classifier, digits["val_x"], device), digits["val_y"])
    workshop.log(f"temperature fitted on the validation set: T = {temperature:.3f}")
    inputs = {"real_digits": digits["test_x"], **strange_inputs(digits["test_x"], args.seed)}
    logits = {kind: logits_of(classifier, images, device) for kind, images in inputs.items()}
    before = probabilities(logits["real_digits"])
    after = probabilities(logits["real_digits"], temperature)

    # (b) The same digits on a larger canvas: one model learns with the tag, one without.
    tagged = with_tags(digits, SHORTCUT_SHARE, args.seed)
    untagged = with_tags(digits, 0.0, args.seed)
    seen = {"shortcut": tagged, "clean": untagged}  # what each model trains and validates on
    models = {
        name: train(mlp(inputs=data["train_x"].shape[1]), data, epochs, args.batch_size, args.seed, device, f"{name} model")
        for name, data in seen.items()
    }
    # Both models meet the same three versions of the test digits.
    accuracy = {
        name: {test_set: accuracy_of(model, tagged[f"test_x_{test_set}"], digits["test_y"], device) for test_set in TEST_SETS}
        for name, model in models.items()
    }
    for name, scores in accuracy.items():
        workshop.log(f"{name} model, test accuracy: " + ", ".join(f"{TEST_SETS[k]} {v:.2%}" for k, v in scores.items()))

    save_confidence_figure(inputs, logits, digits["test_y"], args.out / "confidence.png")
    save_reliability_figure(before, after, digits["test_y"], temperature, args.out / "reliability.png")
    save_shortcut_figure(tagged, untagged, accuracy, args.out / "shortcut.png")

    metrics = {
        "train_images": len(digits["train_y"]),
        "validation_images": len(digits["val_y"]),
        "test_images": len(digits["test_y"]),
        "epochs": epochs,
        "train_accuracy": accuracy_of(classifier, digits["train_x"], digits["train_y"], device),
        "test_accuracy": float((before.argmax(1) == digits["test_y"]).mean()),
        "calibration_bins": CALIBRATION_BINS,
        "temperature": temperature,
        "ece_before": expected_calibration_error(before, digits["test_y"]),
        "ece_after": expected_calibration_error(after, digits["test_y"]),
        "nll_before": negative_log_likelihood(before, digits["test_y"]),
        "nll_after": negative_log_likelihood(after, digits["test_y"]),
        "mean_confidence": {kind: mean_confidence(values) for kind, values in logits.items()},
        "mean_confidence_after_scaling": {kind: mean_confidence(values, temperature) for kind, values in logits.items()},
        "shortcut_share": SHORTCUT_SHARE,
        **{
            f"{name}_model": {
                "validation_accuracy": accuracy_of(model, seen[name]["val_x"], digits["val_y"], device),
                **{f"test_accuracy_{test_set}": value for test_set, value in accuracy[name].items()},
            }
            for name, model in models.items()
        },
        "shortcut_drop_without_tag": accuracy["shortcut"]["tag"] - accuracy["shortcut"]["none"],
        "shortcut_drop_random_tag": accuracy["shortcut"]["tag"] - accuracy["shortcut"]["random"],
        "clean_drop_without_tag": accuracy["clean"]["tag"] - accuracy["clean"]["none"],
        "clean_drop_random_tag": accuracy["clean"]["tag"] - accuracy["clean"]["random"],
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device=str(device), threads=threads))
    workshop.report_result(
        test_accuracy=metrics["test_accuracy"],
        ece_before=metrics["ece_before"],
        ece_after=metrics["ece_after"],
        noise_confidence=metrics["mean_confidence"]["random_noise"],
        shortcut_tag=accuracy["shortcut"]["tag"],
        shortcut_none=accuracy["shortcut"]["none"],
        shortcut_random=accuracy["shortcut"]["random"],
        clean_none=accuracy["clean"]["none"],
    )


# %% [markdown]
# ## The data
# 1,797 real handwritten digits: a small stratified training set (each class equally often), 400
# for validation, the rest for testing. Pixels are scaled to 0..1. The *strange inputs* look
# nothing like a digit, yet the classifier must put each one in a class.


# %%
def split_digits(train_images: int, seed: int) -> dict[str, np.ndarray]:
    images, labels = load_digits(return_X_y=True)
    most = len(labels) - VALIDATION_IMAGES - MIN_TEST_IMAGES
    if not 10 <= train_images <= most:
        raise workshop.UsageError(
            f"--train-images {train_images} is out of range: choose 10 (one a class) to {most} "
            f"(the data set has {len(labels)} digits; {VALIDATION_IMAGES} are kept for validation, "
            f"at least {MIN_TEST_IMAGES} for testing)"
        )
    images = (images / 16.0).astype(np.float32)  # the data set stores ink as 0..16
    train_x, rest_x, train_y, rest_y = train_test_split(
        images, labels, train_size=train_images, stratify=labels, random_state=seed
    )
    val_x, test_x, val_y, test_y = train_test_split(
        rest_x, rest_y, train_size=VALIDATION_IMAGES, stratify=rest_y, random_state=seed
    )
    return {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y, "test_x": test_x, "test_y": test_y}


def strange_inputs(test_x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Inputs unlike any digit: uniform noise, and the test digits with their 64 pixels shuffled
    (the same amount of ink, no shape)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.0, 1.0, size=test_x.shape).astype(np.float32)
    shuffled = np.stack([rng.permutation(image) for image in test_x])
    return {"random_noise": noise, "shuffled_pixels": shuffled}


def with_tags(digits: dict[str, np.ndarray], share: float, seed: int) -> dict[str, np.ndarray]:
    """The digits on a larger canvas, with a shortcut tag in `share` of the training and
    validation images: a bright bar above the digit at column = class, which predicts the label
    without looking at the digit. The other images carry no tag. The test set comes three
    times: tag at its class's column, no tag, tag at a random column."""
    rng = np.random.default_rng(seed)
    result = {"train_y": digits["train_y"], "val_y": digits["val_y"]}
    for part in ("train", "val"):
        labels = digits[f"{part}_y"]
        result[f"{part}_x"] = on_canvas(digits[f"{part}_x"], np.where(rng.random(len(labels)) < share, labels, -1))
    test_y = digits["test_y"]
    result["test_x_tag"] = on_canvas(digits["test_x"], test_y)
    result["test_x_none"] = on_canvas(digits["test_x"], np.full_like(test_y, -1))
    result["test_x_random"] = on_canvas(digits["test_x"], rng.integers(0, 10, size=len(test_y)))
    return result


def on_canvas(images: np.ndarray, tag_at: np.ndarray) -> np.ndarray:
    """Each 8 x 8 image in the middle of a (TAG_HEIGHT + 8) x 10 canvas: TAG_HEIGHT rows above the
    digit and a column either side, so that the tag has 10 places, one per class. A tag at
    column `tag_at` (0..9); none where `tag_at` is -1. Returned flattened, as the model reads it."""
    canvas = np.zeros((len(images), TAG_HEIGHT + 8, 10), dtype=np.float32)
    canvas[:, TAG_HEIGHT:, 1:9] = images.reshape(-1, 8, 8)
    tagged = np.flatnonzero(tag_at >= 0)
    canvas[tagged, :TAG_HEIGHT, tag_at[tagged]] = 1.0  # as bright as the brightest ink
    return canvas.reshape(len(images), -1)


def tag_column(images: np.ndarray) -> np.ndarray:
    """The column of each canvas's tag (the class it points to), -1 where there is none."""
    top_rows = np.atleast_2d(images).reshape(-1, TAG_HEIGHT + 8, 10)[:, 0]
    return np.where(top_rows.max(1) > 0, top_rows.argmax(1), -1)


# %% [markdown]
# ## The model and its training
# A small fully connected network; Adam without weight decay and no early stopping, so the
# training loss keeps falling long after every training image is classified right. One line
# per epoch: the training loss and the validation accuracy.


# %%
def mlp(inputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def train(model, data, epochs: int, batch_size: int, seed: int, device, name: str) -> nn.Module:
    model.to(device)
    x = torch.as_tensor(data["train_x"], device=device)
    y = torch.as_tensor(data["train_y"], device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order_generator = torch.Generator().manual_seed(seed)  # the same batches for the same seed
    progress = workshop.Progress(total=epochs, unit="images", label=f"{name}: epoch")
    for epoch in range(1, epochs + 1):
        model.train()
        total_loss = torch.zeros((), device=device)
        for batch in torch.randperm(len(y), generator=order_generator).split(batch_size):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(batch)
        val_accuracy = accuracy_of(model, data["val_x"], data["val_y"], device)
        progress.step(epoch, items=len(y), loss=total_loss.item() / len(y), val_accuracy=val_accuracy)
    return model


@torch.no_grad()
def logits_of(model, images: np.ndarray, device) -> torch.Tensor:
    """The model's raw outputs, in float64 on the CPU for the calibration arithmetic."""
    model.eval()
    return model(torch.as_tensor(images, device=device)).double().cpu()


def accuracy_of(model, images: np.ndarray, labels: np.ndarray, device) -> float:
    return float((logits_of(model, images, device).argmax(1).numpy() == labels).mean())


# %% [markdown]
# ## Calibration
# A model is *calibrated* when, of all the answers it gives with 90% confidence, 90% are right.
# The expected calibration error sorts the test answers into equal-width confidence bins and
# averages |accuracy - mean confidence| over the bins, each weighted by its share of the answers.
# Temperature scaling divides the logits by one number T > 0, fitted on the validation set by
# minimising the negative log-likelihood (NLL); T > 1 softens overconfident answers. It never
# changes which class wins, so the accuracy stays the same.


# %%
def probabilities(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return F.softmax(logits / temperature, dim=1).numpy()


def mean_confidence(logits: torch.Tensor, temperature: float = 1.0) -> float:
    return float(probabilities(logits, temperature).max(1).mean())


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS):
    """Per equal-width confidence bin (0, 1/bins], ..., ((bins-1)/bins, 1]: the number of
    answers, their mean confidence and their accuracy (NaN for an empty bin)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):  # an empty bin is 0 / 0
        mean_confidence_per_bin = np.bincount(index, weights=confidence, minlength=bins) / counts
        accuracy_per_bin = np.bincount(index, weights=correct, minlength=bins) / counts
    return counts, mean_confidence_per_bin, accuracy_per_bin


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    counts, confidence, accuracy = calibration_bins(probs, labels, bins)
    filled = counts > 0
    return float(np.sum(counts[filled] / counts.sum() * np.abs(accuracy[filled] - confidence[filled])))


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


def fit_temperature(val_logits: torch.Tensor, val_labels: np.ndarray) -> float:
    """The T that minimises the validation NLL of softmax(logits / T), found with L-BFGS on
    log T (so that T stays positive)."""
    labels = torch.as_tensor(val_labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(val_logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.detach().exp().item()


# %% [markdown]
# ## Figures


# %%
def save_confidence_figure(inputs, logits, test_y, path) -> None:
    """Examples of each kind of input with the class the model gives them and how sure it is
    (and the wrong test answers it was surest of), then the spread of confidences."""
    real = probabilities(logits["real_digits"])
    wrong = np.flatnonzero(real.argmax(1) != test_y)
    surest_wrong = wrong[np.argsort(-real[wrong].max(1))]
    rows = {
        "real test digits": (inputs["real_digits"], real, np.arange(4)),
        "wrong, yet sure\n(true class above)": (inputs["real_digits"], real, surest_wrong[:4]),
        **{INPUTS[k]: (inputs[k], probabilities(logits[k]), np.arange(4)) for k in ("random_noise", "shuffled_pixels")},
    }
    figure = plt.figure(figsize=(11, 6), layout="constrained")
    left, right = figure.add_gridspec(1, 2, width_ratios=[1, 1.5])
    examples = left.subgridspec(len(rows), 4)
    for row, (label, (images, probs, chosen)) in enumerate(rows.items()):
        for column, index in enumerate(chosen):
            axes = figure.add_subplot(examples[row, column])
            axes.imshow(images[index].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            truth = f"is {test_y[index]}, " if label.startswith("wrong") else ""
            axes.set_title(f"{truth}says {probs[index].argmax()}\n{probs[index].max():.0%} sure", fontsize=8)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(label, fontsize=9)
    histogram = figure.add_subplot(right)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    for kind, values in logits.items():
        confidence = probabilities(values).max(1)
        histogram.hist(confidence, bins=edges, histtype="step", linewidth=2, label=f"{INPUTS[kind]} (mean {confidence.mean():.0%})")
    histogram.set_xlabel("confidence: the largest softmax probability")
    histogram.set_ylabel("number of inputs")
    histogram.set_title("How sure the classifier is, on digits and on non-digits")
    histogram.legend(loc="upper left")
    workshop.save_figure(figure, path)


def save_reliability_figure(before, after, labels, temperature: float, path) -> None:
    """Accuracy against confidence per bin on the test set (a calibrated model follows the
    diagonal), before and after temperature scaling, with the number of answers per bin."""
    figure, axes = plt.subplots(2, 2, figsize=(11, 6.5), height_ratios=[3, 1], sharex=True, layout="constrained")
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / CALIBRATION_BINS
    panels = (("Before temperature scaling", before), (f"After temperature scaling (T = {temperature:.2f})", after))
    for column, (title, probs) in enumerate(panels):
        counts, confidence, accuracy = calibration_bins(probs, labels)
        top, bottom = axes[0, column], axes[1, column]
        top.bar(centres, np.nan_to_num(accuracy), width=width, edgecolor="black", label="accuracy in the bin")
        top.bar(
            centres, np.nan_to_num(confidence - accuracy), bottom=np.nan_to_num(accuracy), width=width,
            color="tab:red", alpha=0.35, edgecolor="tab:red", label="gap to the bin's mean confidence",
        )
        top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        top.set_title(f"{title}\nECE {expected_calibration_error(probs, labels):.2%} on {len(labels)} test digits")
        top.set_ylabel("accuracy")
        top.set_ylim(0, 1)
        top.legend(loc="upper left")
        bottom.bar(centres, counts, width=width, edgecolor="black", color="tab:gray")
        bottom.set_yscale("log")
        bottom.set_ylim(0.8, 1.5 * len(labels))  # the same scale in both panels
        bottom.set_ylabel("test digits")
        bottom.set_xlabel(f"confidence ({CALIBRATION_BINS} equal-width bins)")
        bottom.set_xlim(0, 1)
    workshop.save_figure(figure, path)


def save_shortcut_figure(tagged, untagged, accuracy, path) -> None:
    """What each model saw in training, the three versions of the test set, and the accuracies."""
    shape = (TAG_HEIGHT + 8, 10)
    train = np.flatnonzero(tag_column(tagged["train_x"]) >= 0)[0]  # one that has a tag
    test = np.flatnonzero(abs(tag_column(tagged["test_x_random"]) - tag_column(tagged["test_x_tag"])) >= 3)[0]  # clearly misleading
    shown = {
        "shortcut model's\ntraining image": tagged["train_x"][train],
        "clean model's\ntraining image": untagged["train_x"][train],
        **{f"test:\n{label}": tagged[f"test_x_{key}"][test] for key, label in TEST_SETS.items()},
    }
    figure = plt.figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.add_gridspec(2, 1, height_ratios=[1, 1.6])
    examples = top.subgridspec(1, len(shown))
    for column, (title, image) in enumerate(shown.items()):
        axes = figure.add_subplot(examples[column])
        axes.imshow(image.reshape(shape), cmap="gray_r", vmin=0, vmax=1)
        axes.add_patch(plt.Rectangle((0.5, TAG_HEIGHT - 0.5), 8, 8, fill=False, edgecolor="tab:blue", linewidth=1))
        axes.set_title(title, fontsize=9)
        column_of_tag = tag_column(image)[0]
        axes.set_xlabel(f"the tag says {column_of_tag}" if column_of_tag >= 0 else "no tag", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    bars = figure.add_subplot(bottom)
    positions = np.arange(len(TEST_SETS))
    for offset, (name, scores) in zip((-0.2, 0.2), accuracy.items()):
        values = [scores[key] for key in TEST_SETS]
        drawn = bars.bar(positions + offset, values, width=0.4, label=f"{name} model")
        bars.bar_label(drawn, labels=[f"{value:.1%}" for value in values])
    bars.axhline(0.1, color="black", linestyle=":", linewidth=1, label="guessing (10%)")
    bars.set_xticks(positions, [f"test: {label}" for label in TEST_SETS.values()])
    bars.set_ylabel("test accuracy")
    bars.set_ylim(0, 1.25)  # room for the legend above the bars
    bars.set_yticks(np.linspace(0, 1, 6))
    bars.legend(loc="upper center", ncols=3)
    bars.set_title("The same test digits; only the tag above them changes")
    workshop.save_figure(figure, path)


# %%
if __name__ == "__main__":
    workshop.run_main(main)
