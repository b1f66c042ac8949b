"""Classifying images with a small CNN in PyTorch.

A convolutional neural network (CNN) learns to tell images apart by the classes they belong to.
By default it learns scikit-learn's handwritten digits: 1797 real scans of the digits 0 to 9,
8 x 8 pixels each, bundled with scikit-learn (nothing to download). With `--data DIR` it learns
any folder of images sorted into one subfolder per class, such as the workshop's fungi photos
on Puma.

The lesson, step by step:

1. Split the images once, in a fixed way, into training, validation and test images. The test
   images are never used to train or to choose anything, so their accuracy is honest.
2. Measure the test accuracy of the model *before* training: an untrained model is no better
   than guessing (about 1 in the number of classes).
3. Train, one line per epoch in the log; keep the weights of the epoch that did best on the
   validation images.
4. Measure the test accuracy again, and write a confusion matrix, the training curves and
   metrics.json into `--out`.

Run it: `python examples/digits_cnn.py` (add `--quick` for a short run, `--help` for options).
"""

# %%
import copy
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write figures to files; a batch job has no screen
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image  # Pillow, which matplotlib brings along, reads the image files
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

import workshop

FULL_EPOCHS = 40
QUICK_EPOCHS = 4
TEST_FRACTION = 0.2  # of all images, kept aside to measure the final model
VALIDATION_FRACTION = 0.1  # of all images, to choose the best epoch
SPLIT_SEED = 0  # the split is fixed, whatever --seed says, so every run is scored on the same test images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


# %% [markdown]
# ## The whole run
# `main()` reads the command line first, so a mistake there stops the run before any work.
# Each step below is a small function further down.


# %%
def main() -> None:
    parser = workshop.make_parser(
        "Train a small CNN to classify images: scikit-learn's handwritten digits, or your own folder of images.",
        default_out="results/digits_cnn",
    )
    parser.add_argument(
        "--epochs",
        type=workshop.positive_int,
        help=f"passes over the training images (default: {FULL_EPOCHS}, or {QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument("--batch-size", type=workshop.positive_int, default=64, help="images per training step (default: 64)")
    parser.add_argument(
        "--learning-rate", type=workshop.positive_float, default=3e-3, help="Adam's starting step size (default: 0.003)"
    )
    parser.add_argument(
        "--data",
        type=workshop.existing_folder,
        help="a folder with one subfolder of images per class, e.g. the fungi photos staged by "
        "slurm/digits_cnn_gpu.sbatch (default: scikit-learn's handwritten digits)",
    )
    parser.add_argument(
        "--image-size",
        type=workshop.positive_int,
        default=64,
        help="with --data: every image is resized to this many pixels square (default: 64)",
    )
    args = workshop.parse_args(parser)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else FULL_EPOCHS)
    started = time.perf_counter()

    workshop.seed_everything(args.seed)
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()
    # The same seed gives the same numbers on a GPU too (cuDNN otherwise picks its fastest,
    # not always repeatable, way to compute a convolution).
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

    if args.data is None:
        images, data_name = Digits(), "scikit-learn handwritten digits"
    else:
        images, data_name = ImageFolder(args.data, args.image_size), str(args.data)
    train_set, validation_set, test_set = split(images)
    workshop.log(
        f"data: {data_name}: {len(images)} images of {images.image_size}x{images.image_size} pixels, "
        f"{len(images.classes)} classes; {len(train_set)} to train, {len(validation_set)} to validate, "
        f"{len(test_set)} to test (a fixed split, each class in the same proportion in all three)"
    )
    train_loader, validation_loader, test_loader = make_loaders(
        train_set, validation_set, test_set, args.batch_size, args.seed, device
    )

    model = small_cnn(images.channels, len(images.classes), images.image_size).to(device)
    workshop.log(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")

    # Before training: the weights are random, so the answers are too (no better than guessing).
    chance = 1 / len(images.classes)
    _, accuracy_before, answers_before = evaluate(model, test_loader, device)
    workshop.log(
        f"test accuracy before training: {accuracy_before:.2%} (guessing gets {chance:.2%}: "
        "an untrained model is no better than guessing)"
    )

    # Training: one line per epoch (loss, accuracy on the validation images, speed, time left).
    # The weights of the epoch that did best on the validation images are kept.
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    # Large steps first, then smaller and smaller ones: the last epochs fine-tune.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = {"train_loss": [], "train_accuracy": [], "validation_loss": [], "validation_accuracy": []}
    best = {"accuracy": -1.0}
    progress = workshop.Progress(total=epochs, unit="images")
    training_started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_loss, train_accuracy = train_one_epoch(model, train_loader, optimizer, device)
        schedule.step()
        validation_loss, validation_accuracy, _ = evaluate(model, validation_loader, device)
        for key, value in zip(history, (train_loss, train_accuracy, validation_loss, validation_accuracy)):
            history[key].append(round(value, 6))
        if validation_accuracy >= best["accuracy"]:  # a tie goes to the later epoch: trained longer
            best = {"accuracy": validation_accuracy, "epoch": epoch, "weights": copy.deepcopy(model.state_dict())}
        progress.step(epoch, items=len(train_set), loss=train_loss, val_accuracy=validation_accuracy)
    training_seconds = time.perf_counter() - training_started

    # After training: the test images, scored once, with the weights of the best epoch.
    model.load_state_dict(best["weights"])
    _, test_accuracy, predictions = evaluate(model, test_loader, device)
    truth = images.labels[test_set.indices]  # the test loader keeps this order
    matrix = confusion_matrix(truth, predictions, labels=range(len(images.classes)))
    workshop.log(
        f"test accuracy after training: {test_accuracy:.2%} (before: {accuracy_before:.2%}, guessing: {chance:.2%}; "
        f"weights of epoch {best['epoch']}, best on the validation images)"
    )

    plot_confusion_matrix(truth, predictions, images.classes, args.out / "confusion_matrix.png")
    plot_training_curves(history, chance, accuracy_before, best["epoch"], args.out / "training_curves.png")
    metrics = {
        "data": data_name,
        "classes": images.classes,
        "image_size": images.image_size,
        "n_train": len(train_set),
        "n_validation": len(validation_set),
        "n_test": len(test_set),
        "chance_level": chance,
        "majority_class_share": float(np.bincount(truth).max() / len(truth)),
        "accuracy_before": accuracy_before,
        "distinct_answers_before": len(np.unique(answers_before)),  # how many different classes the untrained model said
        "test_accuracy": test_accuracy,
        "per_class_accuracy": {
            name: (float(row[i] / row.sum()) if row.sum() else None) for i, (name, row) in enumerate(zip(images.classes, matrix))
        },
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "validation_accuracy": best["accuracy"],
        "history": history,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "num_workers": train_loader.num_workers,
        "seed": args.seed,
        "quick": args.quick,
    }
    speed = round(len(train_set) * epochs / training_seconds)  # of this machine, not of the model: kept with the run
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device=str(device), threads=threads, images_per_second=speed))
    workshop.report_result(test_accuracy=test_accuracy, accuracy_before=accuracy_before, chance=chance)


# %% [markdown]
# ## The data
# Both sources give a torch `Dataset`: item `i` is `(image tensor, class number)`, with the
# image as channels x height x width, pixel values from 0 to 1.


# %%
class Digits(TensorDataset):
    """scikit-learn's 1797 handwritten digits: 8x8 pixels of 0 (white) to 16 (black), held in memory."""

    def __init__(self):
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16  # one channel: grey
        super().__init__(images, torch.tensor(digits.target))
        self.classes = [str(name) for name in digits.target_names]
        self.labels = digits.target
        self.channels, self.image_size = 1, 8


class ImageFolder(Dataset):
    """Images in DIR/<class name>/<image file>, read from disk only when the model asks for one.

    Reading on demand keeps memory small for any number of images, and lets the DataLoader's
    worker processes decode the next images while the model trains on the current ones.
    """

    def __init__(self, folder: Path, image_size: int):
        class_folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        files = {c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for c in class_folders}
        self.classes = [name for name, found in files.items() if found]
        if len(self.classes) < 2:
            raise workshop.UsageError(
                f"--data {folder} has {len(self.classes)} class folder(s) with images; a classifier needs at least 2 "
                f"(expected {folder}/<class name>/<image files>, e.g. an unpacked DF20M-4.tar.gz)"
            )
        for name in self.classes:
            if len(files[name]) < 3:
                raise workshop.UsageError(
                    f"class folder {folder / name} has {len(files[name])} image(s); each class needs at least 3 "
                    "(for training, validation and test)"
                )
        self.files = [f for name in self.classes for f in files[name]]
        self.labels = np.array([i for i, name in enumerate(self.classes) for _ in files[name]])
        self.channels, self.image_size = 3, image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[index]) as image:
            image.draft("RGB", (self.image_size, self.image_size))  # JPEGs: decode at a smaller scale, much faster
            image = image.convert("RGB").resize((self.image_size, self.image_size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)  # colour channels first
        return pixels, int(self.labels[index])


def split(dataset) -> tuple[Subset, Subset, Subset]:
    """Training, validation and test images: a fixed, stratified split (each class in proportion)."""
    everything = np.arange(len(dataset))
    n_classes = len(dataset.classes)
    # A stratified part needs at least as many images as there are classes, however small the data set.
    n_test = max(n_classes, round(TEST_FRACTION * len(everything)))
    n_validation = max(n_classes, round(VALIDATION_FRACTION * len(everything)))
    rest, test = train_test_split(everything, test_size=n_test, stratify=dataset.labels, random_state=SPLIT_SEED)
    train, validation = train_test_split(
        rest, test_size=n_validation, stratify=dataset.labels[rest], random_state=SPLIT_SEED
    )
    return Subset(dataset, train), Subset(dataset, validation), Subset(dataset, test)


def make_loaders(train_set, validation_set, test_set, batch_size: int, seed: int, device: torch.device):
    """DataLoaders that hand out batches; the training one in a new random order every epoch."""
    # The main process trains with all the job's CPUs; the workers load and decode images in
    # between. One CPU is left to the main process, the others run workers (none for a job of
    # one CPU: the main process then loads the images itself).
    workers = max(0, workshop.cpus_from_allocation() - 1)
    workshop.log(f"data loader workers: {workers} (the job's CPUs minus one for the training process)")
    shared = {
        "batch_size": batch_size,
        "num_workers": workers,
        "persistent_workers": workers > 0,  # start the workers once, not every epoch
        "pin_memory": device.type == "cuda",  # faster copies to the GPU
    }
    order = torch.Generator().manual_seed(seed)  # the shuffled order follows --seed
    return (
        DataLoader(train_set, shuffle=True, generator=order, **shared),
        DataLoader(validation_set, **shared),
        DataLoader(test_set, **shared),
    )


# %% [markdown]
# ## The model
# Stages of two 3x3 convolutions, each stage halving the image, until it is 2x2; then the
# average over what is left feeds one linear layer with a score per class.


# %%
def small_cnn(channels: int, n_classes: int, image_size: int) -> nn.Sequential:
    layers, width, size = [], 32, image_size
    while size > 2:
        layers += [
            *conv_bn_relu(channels, width),
            *conv_bn_relu(width, width),
            nn.MaxPool2d(2),  # half the height and width
        ]
        channels, width, size = width, min(2 * width, 128), size // 2
    return nn.Sequential(
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),  # drop 30% of the features at random while training: less memorising
        nn.Linear(channels, n_classes),
    )


def conv_bn_relu(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU()]


# %% [markdown]
# ## Training and evaluation
# Each training batch is shifted, turned and scaled a little at random (augmentation): the
# model sees a slightly different image every epoch, so it learns digits rather than pixels.


# %%
def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer, device: torch.device) -> tuple[float, float]:
    """One pass over the training images; returns the mean loss and accuracy (on augmented images)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = augment(images.to(device)), labels.to(device)
        scores = model(images)
        loss = F.cross_entropy(scores, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (scores.argmax(1) == labels).sum().item()
        seen += len(labels)
    return total_loss / seen, correct / seen


def augment(images: torch.Tensor) -> torch.Tensor:
    """Move each image by up to 10% of its size, turn it by up to 10 degrees and scale it by 0.9-1.1."""
    n = len(images)
    angle = (torch.rand(n) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n)
    shift = (torch.rand(n, 2) * 2 - 1) * 0.2  # the image spans -1..1, so 0.2 is 10% of it
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)  # pixels moved in from outside are 0


@torch.no_grad()  # no training here: skip the bookkeeping for gradients
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the predicted class of every image."""
    model.eval()  # dropout off; batch norm uses the statistics it learned
    total_loss, predictions, truth = 0.0, [], []
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        scores = model(images)
        total_loss += F.cross_entropy(scores, labels, reduction="sum").item()
        predictions.append(scores.argmax(1).cpu())
        truth.append(labels.cpu())
    predictions, truth = torch.cat(predictions).numpy(), torch.cat(truth).numpy()
    return total_loss / len(truth), float((predictions == truth).mean()), predictions


# %% [markdown]
# ## Figures
# Which classes the model confuses, and how loss and accuracy moved during training.


# %%
def plot_confusion_matrix(truth: np.ndarray, predictions: np.ndarray, classes: list[str], path: Path) -> None:
    size = max(5.0, 0.5 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        truth, predictions, labels=range(len(classes)), display_labels=classes, ax=axes, colorbar=False, cmap="Blues"
    )
    right = int((truth == predictions).sum())
    axes.set_title(f"Test images: {right} of {len(truth)} right ({right / len(truth):.1%})\noff the diagonal: mistakes")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    workshop.save_figure(figure, path)


def plot_training_curves(history: dict, chance: float, accuracy_before: float, best_epoch: int, path: Path) -> None:
    epochs = range(1, len(history["train_loss"]) + 1)
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, history["train_loss"], "o-", label="training (augmented images)")
    loss_axes.plot(epochs, history["validation_loss"], "s-", label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss (cross-entropy)", yscale="log", title="Loss: lower is better")
    accuracy_axes.plot(epochs, history["train_accuracy"], "o-", label="training (augmented images)")
    accuracy_axes.plot(epochs, history["validation_accuracy"], "s-", label="validation")
    accuracy_axes.plot(0, accuracy_before, "X", color="tab:red", markersize=10, label=f"test, before training ({accuracy_before:.0%})")
    accuracy_axes.axhline(chance, color="grey", linestyle="--", label=f"guessing ({chance:.0%})")
    accuracy_axes.axvline(best_epoch, color="black", linestyle=":", label=f"best validation epoch ({best_epoch})")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy: higher is better")
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # whole epochs only
        axes.grid(alpha=0.3)
        axes.legend()
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
