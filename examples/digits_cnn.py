"""Classifying images with a small CNN in PyTorch.

A convolutional neural network (CNN) learns to tell images apart by their class. Here it learns
scikit-learn's handwritten digits: 1,797 real scans of the digits 0 to 9, 8 x 8 pixels each,
bundled with scikit-learn (nothing to download). The test digits are never trained on, so the
accuracy on them is honest; it is measured before training (an untrained model only guesses)
and after. For a folder of your own images, such as the workshop's fungi photos on Puma, see
examples/fine_tuning.py: it starts from a network pretrained on ImageNet instead.

Run it: `python3 examples/digits_cnn.py` (`--quick` for a short run, `--help` for the options).
"""

# %%
import time

import workshop

parser = workshop.make_parser(
    "Train a small CNN to classify scikit-learn's handwritten digits.",
    default_out="results/digits_cnn",
)
parser.add_argument("--epochs", type=workshop.at_least(1), default=40, help="passes over the training images")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=64, help="images per training step")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=3e-3, help="Adam's starting step size")
args = workshop.parse_args(parser, quick_defaults={"epochs": 2})
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
# ## Threads, data loaders and the device
# A job may use the CPUs Slurm gave it (`--cpus-per-task`), and no more. A data loader hands
# out batches of images, the training ones in a new random order every epoch. Digits held in
# memory need no loader workers: a batch is a slice of a tensor, and a worker process would
# only add the cost of passing it over, so every CPU of the allocation is a torch thread.
# (Image files are another matter: they must be opened and decoded, and loader workers do that
# while the model trains; the fine-tuning example, for your own photos, shows how.)

# %%
import torch
from torch.utils.data import DataLoader

loader_workers = 0  # the digits are in memory
threads = workshop.use_allocated_threads(loader_workers=loader_workers)
device = workshop.pick_device()
torch.manual_seed(args.seed)
# The same seed gives the same numbers on a GPU too (cuDNN otherwise picks its fastest,
# not always repeatable, way to compute a convolution).
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False

loader_options = {
    "batch_size": args.batch_size,
    "num_workers": loader_workers,
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
