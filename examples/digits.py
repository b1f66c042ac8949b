"""The handwritten digits, their one split, and the small CNN that learns them.

The digits example explains these (docs/examples/digits-cnn.md); the scaling examples and any
later example that needs digits import them from here, so every page scores the same 360 test
images with the same model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

TEST_IMAGES = 360  # a fifth of the 1,797 digits, never trained on and never used to choose anything
VALIDATION_IMAGES = 180  # a tenth, to choose the best epoch or setting
SPLIT_SEED = 0  # the split is fixed, whatever --seed says: every run is scored on the same images


# --8<-- [start:data]
def load_digits_split() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's 1,797 handwritten digits (8x8 pixels, bundled: no download), split three ways.

    Returns {"train": (images, labels), "validation": ..., "test": ...}: images are float32 of
    shape (n, 1, 8, 8) with pixels from 0 (white) to 1 (black), labels the digits 0-9. Every part
    holds each digit in the same proportion (stratified).
    """
    digits = load_digits()
    images = torch.tensor(digits.images / 16, dtype=torch.float32).unsqueeze(1)  # one channel: grey
    labels = torch.tensor(digits.target)
    everything = np.arange(len(labels))
    rest, test = train_test_split(everything, test_size=TEST_IMAGES, stratify=labels, random_state=SPLIT_SEED)
    train, validation = train_test_split(
        rest, test_size=VALIDATION_IMAGES, stratify=labels[rest], random_state=SPLIT_SEED
    )
    return {name: (images[part], labels[part]) for name, part in (("train", train), ("validation", validation), ("test", test))}
# --8<-- [end:data]


# --8<-- [start:model]
def small_cnn(channels: int = 1, classes: int = 10, image_size: int = 8) -> nn.Sequential:
    """Stages of two 3x3 convolutions, each stage halving the image until it is 2x2 pixels;
    then the average of each feature over what is left, and one linear layer: a score per class."""
    layers, width, size = [], 32, image_size
    while size > 2:
        layers += [*conv_bn_relu(channels, width), *conv_bn_relu(width, width), nn.MaxPool2d(2)]
        channels, width, size = width, min(2 * width, 128), size // 2
    return nn.Sequential(
        *layers,
        nn.AdaptiveAvgPool2d(1),  # the mean of each feature map: one number per feature
        nn.Flatten(),
        nn.Dropout(0.3),  # drop 30% of the features at random while training: less memorising
        nn.Linear(channels, classes),  # scores (logits); softmax would turn them into probabilities
    )


def conv_bn_relu(channels_in: int, channels_out: int) -> list[nn.Module]:
    """A 3x3 convolution, batch normalisation (rescales each feature to a steady range, which
    makes training faster and steadier) and a ReLU (negative values become 0)."""
    return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU()]
# --8<-- [end:model]


# --8<-- [start:evaluate]
@torch.no_grad()  # no training here: skip the bookkeeping for gradients
def evaluate(model: nn.Module, batches, device) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the predicted class of every image, over (images, labels) batches:
    a DataLoader, or `zip(images.split(256), labels.split(256))` for tensors in memory."""
    model.eval()  # dropout off; batch norm uses the statistics it learned
    total_loss, predictions, truth = 0.0, [], []
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        scores = model(images)
        total_loss += F.cross_entropy(scores, labels, reduction="sum").item()
        predictions.append(scores.argmax(1).cpu())
        truth.append(labels.cpu())
    predictions, truth = torch.cat(predictions).numpy(), torch.cat(truth).numpy()
    return total_loss / len(truth), float((predictions == truth).mean()), predictions
# --8<-- [end:evaluate]
