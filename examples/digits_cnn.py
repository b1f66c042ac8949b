"""Classifying images with a small CNN in PyTorch.

A convolutional neural network (CNN) learns to tell images apart by their class. Here it learns
scikit-learn's handwritten digits: 1,797 real scans of the digits 0 to 9, 8 x 8 pixels each,
bundled with scikit-learn (nothing to download). The test digits are never trained on, so the
accuracy on them is honest; it is measured before training (an untrained model only guesses)
and after. With `--data DIR` the same script learns a folder of your own images, one subfolder
per class, such as the workshop's fungi photos on Puma.

Run it: `python3 examples/digits_cnn.py` (`--quick` for a short run, `--help` for the options).
"""

# %%
import time
from pathlib import Path

import workshop

parser = workshop.make_parser(
    "Train a small CNN to classify images: scikit-learn's handwritten digits, or a folder of your own images.",
    default_out="results/digits_cnn",
)
parser.add_argument(
    "--epochs", type=workshop.at_least(1), default=40, help="passes over the training images (default: 40; 4 with --quick)"
)
parser.add_argument("--batch-size", type=workshop.at_least(1), default=64, help="images per training step (default: 64)")
parser.add_argument(
    "--learning-rate", type=workshop.positive_float, default=3e-3, help="Adam's starting step size (default: 0.003)"
)
parser.add_argument(
    "--data",
    type=Path,
    help="a folder with one subfolder of images per class, e.g. the fungi photos that slurm/digits_cnn_gpu.sbatch "
    "stages (default: none, scikit-learn's handwritten digits)",
)
parser.add_argument(
    "--image-size",
    type=workshop.at_least(8),
    default=64,
    help="with --data: each image is resized to this many pixels square (default: 64)",
)
args = workshop.parse_args(parser, quick_defaults={"epochs": 4})
if args.data is not None and not args.data.is_dir():
    workshop.refuse(f"--data {args.data} is not a folder; give a folder with one subfolder of images per class")
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The data: handwritten digits
# `digits.load_digits_split()` (explained on the page) splits the 1,797 digits once, the same
# way in every run and every example: images to train on, validation images to choose the
# best epoch, and test images that play no part in training and are scored once at the end.
# Each part holds every digit in the same proportion. Look at the data before training on it:
# its shape, how many of each class, and a few images.

# %%
import numpy as np
from torch.utils.data import TensorDataset

import digits

if args.data is None:
    split = digits.load_digits_split()
    parts = {part: TensorDataset(images, labels) for part, (images, labels) in split.items()}
    test_labels = split["test"][1].numpy()
    classes, channels, image_size = [str(digit) for digit in range(10)], 1, 8
    data_name = "scikit-learn handwritten digits"
    for part, (images, labels) in split.items():
        workshop.log(f"{part}: images {tuple(images.shape)}, of each digit 0-9: {np.bincount(labels).tolist()}")

    # The first training images, drawn in characters from light to dark (two per pixel: a
    # character is twice as tall as it is wide).
    shades = " .:-=+*#%@"
    images, labels = split["train"][0][:8, 0], split["train"][1][:8]
    print("   ".join(f"label {label:<10d}" for label in labels.tolist()))
    for row in range(8):
        print("   ".join("".join(2 * shades[round(9 * pixel)] for pixel in image[row].tolist()) for image in images))

# %% [markdown]
# ## Or: a folder of your own images
# With `--data DIR`, each subfolder of DIR is a class and holds its images. They are read
# lazily: the `Dataset` opens a file only when asked for that image, so memory stays small
# however many images there are, and the data loader's workers (next section) can decode the
# next batch while the model trains on this one. Each image is read once now, before any
# training: a broken file is then a clear message at the start, not a crash in epoch 30.
# The split is made once, as for the digits: 20% to test, 10% to validate, each class in
# proportion.

# %%
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_image(path: Path, size: int) -> torch.Tensor:
    """An image file as a tensor of 3 colour channels x size x size pixels, values 0 to 1."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # a JPEG is decoded at a smaller scale: much faster
        image = image.convert("RGB").resize((size, size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


class ImageFiles(Dataset):
    """Image files and their classes; an image is read from disk only when asked for."""

    def __init__(self, files: list[Path], labels: np.ndarray, size: int):
        self.files, self.labels, self.size = files, labels, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return read_image(self.files[index], self.size), int(self.labels[index])


if args.data is not None:
    class_folders = sorted(folder for folder in args.data.iterdir() if folder.is_dir() and not folder.name.startswith("."))
    found = {folder.name: sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for folder in class_folders}
    classes = [name for name, paths in found.items() if paths]
    if len(classes) < 2:
        workshop.refuse(
            f"--data {args.data} has {len(classes)} class folder(s) with images; a classifier needs at least 2 "
            f"(expected {args.data}/<class name>/<image files>)"
        )
    too_few = [name for name in classes if len(found[name]) < 3]
    if too_few:
        workshop.refuse(
            f"class folders {too_few} in {args.data} have fewer than 3 images: each class needs one to train, validate and test"
        )
    files = [file for name in classes for file in found[name]]
    labels = np.array([index for index, name in enumerate(classes) for _ in found[name]])
    for file in files:
        try:
            read_image(file, args.image_size)
        except (OSError, ValueError) as error:  # Pillow: not an image, truncated, or an unknown format
            workshop.refuse(f"cannot read the image {file} ({error}); remove or replace it, then run again")

    # A stratified part needs at least one image of each class, however small the folder.
    everything = np.arange(len(files))
    n_test, n_validation = (max(len(classes), round(share * len(files))) for share in (0.2, 0.1))
    rest, test = train_test_split(everything, test_size=n_test, stratify=labels, random_state=digits.SPLIT_SEED)
    train, validation = train_test_split(rest, test_size=n_validation, stratify=labels[rest], random_state=digits.SPLIT_SEED)
    chosen = {"train": train, "validation": validation, "test": test}
    parts = {part: ImageFiles([files[i] for i in index], labels[index], args.image_size) for part, index in chosen.items()}
    test_labels = labels[test]
    channels, image_size, data_name = 3, args.image_size, str(args.data)
    for part, index in chosen.items():
        counts = ", ".join(f"{count} {name}" for name, count in zip(classes, np.bincount(labels[index])))
        workshop.log(f"{part}: {len(index)} images: {counts}")

# %% [markdown]
# ## Threads, data loaders and the device
# A job may use the CPUs Slurm gave it (`--cpus-per-task`), and no more. A data loader hands
# out batches of images, the training ones in a new random order every epoch. Digits held in
# memory need no loader workers: a batch is a slice of a tensor, and a worker process would
# only add the cost of passing it over. Image files must be opened and decoded: then one CPU
# runs the training and each of the others runs a loader worker that prepares the next batches.
# Either way, torch threads plus loader workers add up to the allocation.

# %%
from torch.utils.data import DataLoader

loader_workers = 0 if args.data is None else workshop.cpus_from_allocation() - 1
threads = workshop.use_allocated_threads(loader_workers=loader_workers)
device = workshop.pick_device()
workshop.seed_everything(args.seed)
# The same seed gives the same numbers on a GPU too (cuDNN otherwise picks its fastest,
# not always repeatable, way to compute a convolution).
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False

loader_options = {
    "batch_size": args.batch_size,
    "num_workers": loader_workers,
    "persistent_workers": loader_workers > 0,  # start the workers once, not every epoch
    "pin_memory": device.type == "cuda",  # page-locked memory: faster copies to the GPU
}
order = torch.Generator().manual_seed(args.seed)  # the shuffled order follows --seed
train_loader = DataLoader(parts["train"], shuffle=True, generator=order, **loader_options)
validation_loader = DataLoader(parts["validation"], **loader_options)
test_loader = DataLoader(parts["test"], **loader_options)
workshop.log(f"{len(train_loader)} training batches of up to {args.batch_size} images per epoch")

# %% [markdown]
# ## The model
# `digits.small_cnn` (explained on the page): stages of two 3x3 convolutions, each stage
# halving the image until it is 2x2 pixels, then one linear layer with a score per class.

# %%
model = digits.small_cnn(channels, len(classes), image_size).to(device)
print(model)
workshop.log(f"model: {sum(weights.numel() for weights in model.parameters()):,} parameters")

# %% [markdown]
# ## Before training: the line to beat
# The weights start out random, so the answers do too. Scoring the untrained model on the
# test images measures the line that training has to beat: guessing one of the classes at
# random is right one time in the number of classes.

# %%
chance = 1 / len(classes)
majority_share = float(np.bincount(test_labels).max() / len(test_labels))  # always naming the commonest class
_, accuracy_before, answers_before = digits.evaluate(model, test_loader, device)
workshop.log(
    f"test accuracy before training: {accuracy_before:.2%} (guessing: {chance:.2%}, always the commonest class: "
    f"{majority_share:.2%}); the untrained model named {len(np.unique(answers_before))} of the {len(classes)} classes"
)

# %% [markdown]
# ## Training
# Each epoch is one pass over the training images. Every batch is shifted, turned and scaled
# a little at random (augmentation): the model sees a slightly different image every epoch,
# so it learns the shapes rather than the exact pixels. Adam takes the steps; a cosine
# schedule makes them large at first and small at the end, to fine-tune. After every epoch
# the model is scored on the validation images, and the weights of the best epoch are kept.

# %%
import copy
import math

import torch.nn.functional as F


def augment(images: torch.Tensor) -> torch.Tensor:
    """Move each image by up to 10% of its size, turn it by up to 10 degrees, scale it by 0.9-1.1."""
    n = len(images)
    angle = (torch.rand(n) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n)
    shift = (torch.rand(n, 2) * 2 - 1) * 0.2  # the image spans -1..1, so 0.2 is 10% of it
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)  # pixels moved in from outside are 0


optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
history = {"train_loss": [], "train_accuracy": [], "validation_loss": [], "validation_accuracy": []}
best_accuracy, best_epoch, best_weights = -1.0, 0, None
progress = workshop.Progress(total=args.epochs, unit="images")
training_started = time.perf_counter()
for epoch in range(1, args.epochs + 1):
    model.train()  # dropout on; batch normalisation learns the statistics of the batches
    total_loss, correct = 0.0, 0
    for images, labels in train_loader:
        images, labels = augment(images.to(device)), labels.to(device)
        scores = model(images)
        loss = F.cross_entropy(scores, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (scores.argmax(1) == labels).sum().item()
    schedule.step()
    validation_loss, validation_accuracy, _ = digits.evaluate(model, validation_loader, device)
    results = (total_loss / len(parts["train"]), correct / len(parts["train"]), validation_loss, validation_accuracy)
    for key, value in zip(history, results):
        history[key].append(round(value, 6))
    if validation_accuracy >= best_accuracy:  # a tie goes to the later epoch: it trained longer
        best_accuracy, best_epoch, best_weights = validation_accuracy, epoch, copy.deepcopy(model.state_dict())
    progress.step(epoch, items=len(parts["train"]), loss=results[0], val_accuracy=validation_accuracy)
training_seconds = time.perf_counter() - training_started

# %% [markdown]
# ## After training: the test images, once
# The weights of the best validation epoch are put back, and the test images are scored: the
# only time they are used. The confusion matrix counts, for each true class (row), what the
# model said (column): the diagonal holds the right answers, everything else is a mistake.

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

model.load_state_dict(best_weights)
_, test_accuracy, predictions = digits.evaluate(model, test_loader, device)
workshop.log(
    f"test accuracy after training: {test_accuracy:.2%} (before: {accuracy_before:.2%}, guessing: {chance:.2%}; "
    f"weights of epoch {best_epoch}, {best_accuracy:.2%} on the validation images)"
)
matrix = confusion_matrix(test_labels, predictions, labels=range(len(classes)))
print(matrix)

figure, axes = plt.subplots(figsize=[max(5.0, 0.5 * len(classes) + 2)] * 2)
ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=axes, colorbar=False, cmap="Blues")
right = int(np.trace(matrix))
axes.set(xlabel="predicted class", ylabel="true class")
axes.set_title(f"Test images: {right} of {len(test_labels)} right ({right / len(test_labels):.1%})\noff the diagonal: mistakes")
workshop.save_figure(figure, args.out / "confusion_matrix.png")

# %% [markdown]
# ## Training curves
# How the loss and the accuracy moved, epoch by epoch, next to the untrained model and to
# guessing. Training accuracy is measured on augmented images while the weights still change,
# so it can sit below the validation accuracy.

# %%
from matplotlib.ticker import MaxNLocator

epochs = range(1, args.epochs + 1)
figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
for axes, measure in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
    axes.plot(epochs, history[f"train_{measure}"], "o-", label="training (augmented images)")
    axes.plot(epochs, history[f"validation_{measure}"], "s-", label="validation")
loss_axes.set(xlabel="epoch", ylabel="loss (cross-entropy)", yscale="log", title="Loss: lower is better")
before_label = f"test, before training ({accuracy_before:.0%})"
accuracy_axes.plot(0, accuracy_before, "X", color="tab:red", markersize=10, label=before_label)
accuracy_axes.axhline(chance, color="grey", linestyle="--", label=f"guessing ({chance:.0%})")
accuracy_axes.axvline(best_epoch, color="black", linestyle=":", label=f"best validation epoch ({best_epoch})")
accuracy_axes.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy: higher is better")
for axes in (loss_axes, accuracy_axes):
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
    axes.grid(alpha=0.3)
    axes.legend()
workshop.save_figure(figure, args.out / "training_curves.png")

# %% [markdown]
# ## Results
# The numbers the page shows, in `metrics.json`, with where and how long the run took; the
# log's last line sums them up.

# %%
metrics = {
    "data": data_name,
    "classes": classes,
    "image_size": image_size,
    "n_train": len(parts["train"]),
    "n_validation": len(parts["validation"]),
    "n_test": len(parts["test"]),
    "chance_level": chance,
    "majority_class_share": majority_share,
    "accuracy_before": accuracy_before,
    "distinct_answers_before": len(np.unique(answers_before)),
    "test_accuracy": test_accuracy,
    "per_class_accuracy": {name: float(row[i] / row.sum()) for i, (name, row) in enumerate(zip(classes, matrix))},
    "epochs": args.epochs,
    "best_epoch": best_epoch,
    "validation_accuracy": best_accuracy,
    "history": history,
    "batch_size": args.batch_size,
    "learning_rate": args.learning_rate,
    "loader_workers": loader_workers,
    "seed": args.seed,
    "quick": args.quick,
}
speed = round(len(parts["train"]) * args.epochs / training_seconds)  # of this machine, not of the model
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads, images_per_second=speed)
workshop.report_result(test_accuracy=test_accuracy, accuracy_before=accuracy_before, chance=chance)
