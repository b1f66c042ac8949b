"""Fine-tuning a pretrained network: ResNet-18 on a few labelled digits, and on your own photos.

A network trained on one task already knows much that helps with the next: edges, strokes,
textures, parts of shapes. Fine-tuning starts from those weights instead of random ones, so the
new task needs far fewer labelled images. This script writes out ResNet-18, key for key the
network of torchvision's ImageNet checkpoint, and measures here what pretraining is worth: it
pretrains on the handwritten digits 0-4 drawn "in the wild" (random colours, backgrounds, sizes
and slants), then learns the digits 5-9, drawn the same way, from a few labelled pictures of
each, three ways (from scratch; a frozen backbone with a new head; full fine-tuning with a
smaller learning rate for the backbone), next to logistic regression on the pixels. With `--data DIR`
it fine-tunes torchvision's ImageNet weights (`--weights FILE`) on a folder of your own images,
such as the workshop's fungi photos on Puma.

Run it: `python3 examples/fine_tuning.py` (`--quick` for a short run, `--help` for the options).
"""

# %%
import time
from pathlib import Path

import workshop

CHECKPOINT_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1
DEFAULT_WEIGHTS = Path.home() / ".cache" / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # where torchvision keeps it

parser = workshop.make_parser(
    "Fine-tune a ResNet-18: pretrained on the digits 0-4, then learning 5-9 from a few labels; "
    "or from torchvision's ImageNet weights, on a folder of your own images.",
    default_out="results/fine_tuning",
)
parser.add_argument("--labels", type=workshop.at_least(1), nargs="+", default=[5, 10, 25, 50],
                    help="labelled digits of each class 5-9 to fine-tune on, one run per count")
parser.add_argument("--draws", type=workshop.at_least(1), default=3, help="labelled sets drawn at random for each count")
parser.add_argument("--pretrain-epochs", type=workshop.at_least(1), default=100,
                    help="epochs of pretraining on the digits 0-4, each drawn anew in every epoch")
parser.add_argument("--plain", action="store_true",
                    help="draw the digits plain, grey on white and upright as scikit-learn gives them, instead of in the wild")
parser.add_argument("--steps", type=workshop.at_least(1), default=100, help="training steps of each run on the digits 5-9")
parser.add_argument("--width", type=workshop.at_least(1),
                    help="channels of the first stage; torchvision's ResNet-18 has 64, which its checkpoint needs "
                    "(default: 64 with --data; for the digits 32, 8 with --quick)")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=64, help="images per training step")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=1e-3, help="Adam's step size for the head and from scratch")
parser.add_argument("--backbone-factor", type=workshop.positive_float, default=0.1,
                    help="full fine-tuning: the backbone's step size is the learning rate times this")
parser.add_argument("--data", type=Path,
                    help="a folder with one subfolder of images per class, e.g. the fungi photos that slurm/fine_tuning_gpu.sbatch "
                    "stages (default: none, the digits experiment)")
parser.add_argument("--weights", type=Path, help=f"with --data: torchvision's ResNet-18 ImageNet checkpoint (default: {DEFAULT_WEIGHTS})")
parser.add_argument("--image-size", type=workshop.at_least(32), default=224, help="with --data: pixels square the network sees; ImageNet's are 224")
parser.add_argument("--epochs", type=workshop.at_least(1), default=5, help="with --data: epochs of each of the three ways")
parser.add_argument("--skip-unreadable", action="store_true", help="with --data: leave out image files that cannot be read, instead of stopping")
args = workshop.parse_args(parser, quick_defaults={"labels": [10], "draws": 1, "pretrain_epochs": 1, "steps": 5, "epochs": 1})
args.labels = sorted(set(args.labels))
if args.data is None and args.weights is not None:
    workshop.refuse("--weights is for --data: the digits experiment pretrains its own weights; add --data DIR or leave out --weights")
if args.data is not None:
    if not args.data.is_dir():
        workshop.refuse(f"--data {args.data} is not a folder; give a folder with one subfolder of images per class")
    args.weights = args.weights or DEFAULT_WEIGHTS
if args.width is None:
    args.width = 64 if args.data is not None else 8 if args.quick else 32
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The network: ResNet-18, written out
# ResNet-18 (He et al., 2015) is a stem, four stages of two *basic blocks* each, and a head.
# The stem (a 7x7 convolution with stride 2, then a max-pool with stride 2) makes the image 4
# times smaller in each direction. Each block is two 3x3 convolutions with batch normalisation, and adds its input
# back to its output: the *residual* connection, which lets a deep network train. Stages 2-4
# halve the image in their first block and double the channels, and a 1x1 convolution
# (`downsample`) brings the input to the new shape before it is added back. The head averages
# each of the last 512 channels (8 x 64) over the image, which gives the *features*, and a
# linear layer `fc` turns them into a score per class. The names of the parts (`conv1`, `bn1`, `layer1` to `layer4`,
# `downsample`, `fc`) are torchvision's, so its checkpoint file loads into this model as it is.
# `width` scales every stage (torchvision's is 64): a narrow one trains fast for a quick test.

# %%
import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions, each with batch normalisation; the input is added back before the last ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.downsample = None  # the input already has the output's shape: add it as it is
        if stride != 1 or channels_in != channels_out:
            self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet18(nn.Module):
    """The stem, four stages of two blocks, and the head: average each channel, then `fc`."""

    def __init__(self, classes: int, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, stride=2), BasicBlock(2 * width, 2 * width))
        self.layer3 = nn.Sequential(BasicBlock(2 * width, 4 * width, stride=2), BasicBlock(4 * width, 4 * width))
        self.layer4 = nn.Sequential(BasicBlock(4 * width, 8 * width, stride=2), BasicBlock(8 * width, 8 * width))
        self.fc = nn.Linear(8 * width, classes)
        for module in self.modules():  # torchvision's starting weights, so that "from scratch" is a fair start
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))  # one number per channel: what the head reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


shapes = ResNet18(1000).state_dict()
print(f"ResNet-18 as torchvision builds it: {sum(t.numel() for k, t in shapes.items() if 'running' not in k and 'num_batches' not in k):,} "
      f"weights in {len(shapes)} named tensors, for example:")  # fmt: skip
for name in ("conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.running_var", "fc.weight"):
    print(f"  {name:<30} {tuple(shapes[name].shape)}")

# %% [markdown]
# ## Loading a checkpoint, and refusing a wrong one
# A checkpoint is a file of named tensors (a *state dict*). Loading one means copying each
# tensor into the part of the model with the same name, so the names and shapes must match.
# `load_pretrained` checks that before it copies anything, and says in one line what is wrong:
# no file (and the command that fetches it), a damaged download, or a file of another network.
# The head `fc` is never loaded: the new task has its own classes, so it gets a new head.
# Nothing here downloads: compute nodes may not reach the internet, and a job that waits on a
# download wastes its allocation. torchvision names its files `<name>-<hash>.pth`, where the
# hash is the first digits of the file's SHA-256 (the convention of `torch.hub`); a file named
# that way is checked against it, as `torch.hub` does when it downloads one.

# %%
import hashlib
import re


def fetch_command(path: Path) -> str:
    return f"on a login node: mkdir -p {path.parent} && curl --location --output {path} {CHECKPOINT_URL}"


def load_pretrained(model: nn.Module, path: Path) -> None:
    """Copy the weights of a ResNet-18 checkpoint into `model`, all but the head `fc`; stop in one line if they do not fit."""
    if not path.is_file():
        workshop.refuse(f"no checkpoint at {path}; fetch torchvision's ResNet-18 weights {fetch_command(path)}")
    named_hash = re.fullmatch(r".+-([0-9a-f]{8,64})\.pth?", path.name)
    if named_hash:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(named_hash.group(1)):
            workshop.refuse(
                f"{path} is damaged or incomplete: its SHA-256 starts {digest[:8]}, its name says {named_hash.group(1)}; "
                f"delete it and fetch it again {fetch_command(path)}"
            )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: tensors, never code
    except Exception as error:  # noqa: BLE001 (torch raises many kinds for a file that is not a checkpoint)
        workshop.refuse(f"cannot read {path} as a PyTorch checkpoint ({type(error).__name__}); fetch it again {fetch_command(path)}")
    if not isinstance(saved, dict) or not all(isinstance(value, torch.Tensor) for value in saved.values()):
        workshop.refuse(f"{path} is not a state dict of named tensors; save one with torch.save(model.state_dict(), FILE)")
    wanted = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("fc.")}
    given = {name: tensor for name, tensor in saved.items() if not name.startswith("fc.")}
    # A BatchNorm counter that files saved by older PyTorch lack (torch's own loading allows that too).
    missing = [name for name in wanted if name not in given and not name.endswith("num_batches_tracked")]
    extra = [name for name in given if name not in wanted]
    wrong_shape = [f"{name} {tuple(given[name].shape)} (the model's: {tuple(wanted[name].shape)})"
                   for name in wanted if name in given and given[name].shape != wanted[name].shape]  # fmt: skip
    if missing or extra or wrong_shape:

        def some(names: list) -> str:
            return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

        problems = [f"{len(missing)} missing ({some(missing)})"] if missing else []
        problems += [f"{len(extra)} not in ResNet-18 ({some(extra)})"] if extra else []
        problems += [f"{len(wrong_shape)} of another shape ({some(wrong_shape)})"] if wrong_shape else []
        workshop.refuse(f"{path} does not fit this ResNet-18 (width {args.width}): tensors {'; '.join(problems)}")
    model.load_state_dict(given, strict=False)  # strict=False: the head (and any missing counter) keeps its own values


def backbone_change(model: nn.Module, start: dict) -> float:
    """How far training moved the backbone from `start`: |now - start| / |start|, over all its weights and batch-norm statistics."""
    now = {name: tensor.detach().float().cpu() for name, tensor in model.state_dict().items() if name in start}
    return float(torch.sqrt(sum(((now[name] - start[name]) ** 2).sum() for name in now)) / torch.sqrt(sum((t**2).sum() for t in start.values())))

# %% [markdown]
# ## Threads and the device
# A job uses the CPUs Slurm gave it and no more. The digits are in memory: every CPU is a torch
# thread. Image files must be opened and decoded: then one CPU trains and each of the others runs
# a data-loader worker that prepares the next batches. On a GPU two things make a convolutional
# network faster: *mixed precision* (float16 where it is safe, with the loss scaled so that small
# gradients do not round to 0) and the *channels-last* memory layout, in which the GPU's tensor
# cores read convolutions fastest. On the CPU both stay off.

# %%
loader_workers = 0 if args.data is None else workshop.cpus_from_allocation() - 1
threads = workshop.use_allocated_threads(loader_workers=loader_workers)
device = workshop.pick_device()
on_gpu = device.type == "cuda"
layout = torch.channels_last if on_gpu else torch.contiguous_format  # how images and weights lie in memory
torch.manual_seed(args.seed)
torch.backends.cudnn.deterministic = True  # the same seed gives the same numbers on a GPU too
torch.backends.cudnn.benchmark = False
workshop.log(f"mixed precision and channels-last: {'on' if on_gpu else 'off (CPU)'}")

# %% [markdown]
# ## The three ways, in code
# - **From scratch**: random weights; every weight learns from the new labels alone.
# - **Frozen backbone, new head** (*feature extraction*): the pretrained weights stay as they
#   are, batch normalisation's statistics included, and only the new head `fc` learns. Few
#   weights learn, so few labels go a long way, but the features cannot adapt.
# - **Full fine-tuning**: every weight learns, starting from the pretrained ones, the backbone with
#   a smaller step size (`--backbone-factor` times the head's) so that it adapts without
#   forgetting what it knew, while the new head, which starts from random, learns fast.
#
# Each run takes its steps with Adam, the step size falling to 0 on a cosine schedule.

# %%
WAYS = ("scratch", "frozen", "full")


def make_learner(way: str, classes: int, checkpoint: Path, steps: int) -> tuple[nn.Module, torch.optim.Optimizer, object]:
    """A ResNet-18 with a new head for `classes`, set up to learn the given way; its optimizer and schedule."""
    model = ResNet18(classes, args.width)
    if way != "scratch":
        load_pretrained(model, checkpoint)
    head, backbone = list(model.fc.parameters()), [p for name, p in model.named_parameters() if not name.startswith("fc.")]
    if way == "frozen":
        for weights in backbone:
            weights.requires_grad = False  # no gradients: the backbone stays as it was
        groups = [{"params": head, "lr": args.learning_rate}]
    elif way == "full":
        groups = [{"params": backbone, "lr": args.learning_rate * args.backbone_factor}, {"params": head, "lr": args.learning_rate}]
    else:
        groups = [{"params": backbone + head, "lr": args.learning_rate}]
    model = model.to(device, memory_format=layout)
    optimizer = torch.optim.Adam(groups)
    return model, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


scaler = torch.amp.GradScaler("cuda", enabled=on_gpu)


def train_step(model: nn.Module, way: str, optimizer, schedule, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One step on a batch; a frozen backbone stays in evaluation mode, so its batch-norm statistics do not move."""
    model.train(way != "frozen")
    images = images.to(device, non_blocking=True).contiguous(memory_format=layout)
    with torch.autocast(device.type, dtype=torch.float16, enabled=on_gpu):
        loss = F.cross_entropy(model(images), labels.to(device, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    schedule.step()
    return loss.item()


example = ResNet18(5, args.width)
head_size, all_size = sum(p.numel() for p in example.fc.parameters()), sum(p.numel() for p in example.parameters())
for way, learning in zip(WAYS, (all_size, head_size, all_size)):
    print(f"{way:>8}: {learning:>10,} of the {all_size:,} weights learn (width {args.width}, a head for 5 classes)")

# %% [markdown]
# ## The digits in the wild: a broad task to pretrain on, and a new one with few labels
# Here, where ImageNet's weights cannot be fetched, pretraining happens on a task of its own,
# made to resemble what ImageNet is to the fungi: large and varied. The scikit-learn digits are
# small, clean and alike: a network from scratch reads them well from a few labels, so there
# pretraining has little to add. Photos are not like that. So each digit is drawn *in the
# wild*, as on a house-number plate: a thinner or thicker stroke, turned by up to 30 degrees,
# 25% smaller or larger, moved, in a random colour on a background of another colour with
# blotches, and grainy. The drawing is random every time: pretraining draws every training
# digit 0-4 anew in every epoch, so it never sees the same picture twice. (`--plain` draws the
# digits as scikit-learn gives them instead: grey on white, upright, all alike. Try it.)
#
# The new task is the digits 5-9, drawn the same way: a few labelled pictures of each
# (`--labels`), drawn at random from the training digits 5-9 (`--draws` times, to see how much
# the draw matters; the 10 of each digit include the 5), and the test digits 5-9, never trained
# on, each drawn in 5 pictures. The labelled and test pictures are drawn once, with a seed of
# their own: every run, whatever its `--seed`, learns and is scored on the same pictures, as
# photos would be. Ten labelled pictures of a digit cannot show every colour, size and slant it
# comes in; a network pretrained on the digits 0-4 in the wild has seen them all, on other digits.
#
# ResNet-18's stem shrinks an image 4 times and its stages 8 times more, so the 8x8 digits are
# upsampled to 32x32 before they are drawn; a picture reaches the last stage as one pixel of
# 8 x width channels. (Networks for small images replace the stem instead, but then `conv1` has
# another shape and the ImageNet checkpoint no longer fits.) The pixels are normalised with
# ImageNet's mean and spread of each colour, as a photo for this network would be.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import digits

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
DIGIT_SIZE = 32
TEST_PICTURES = 5  # pictures of each test digit: the score is less a matter of how one was drawn
PICTURE_SEED = 12345  # the labelled and test pictures are drawn with this seed, whatever --seed says


def in_the_wild(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Clean digits (n, 1, 8, 8), ink 0..1 -> colour pictures (n, 3, 32, 32), pixels 0..1, each drawn at random."""
    n = len(images)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    ink = F.interpolate(images, size=DIGIT_SIZE, mode="bilinear", align_corners=False)
    thinner, thicker = -F.max_pool2d(-ink, 3, 1, 1), F.max_pool2d(ink, 3, 1, 1)  # erode or dilate the stroke by a pixel
    stroke = torch.randint(0, 3, (n, 1, 1, 1), generator=generator)
    ink = torch.where(stroke == 0, thinner, torch.where(stroke == 1, ink, thicker))
    angle, size, shift = uniform(-math.pi / 6, math.pi / 6), uniform(0.75, 1.25), uniform(-0.2, 0.2, 2)
    cos, sin = torch.cos(angle) / size, torch.sin(angle) / size  # where each output pixel reads the digit from
    turn_and_move = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    ink = F.grid_sample(ink, F.affine_grid(turn_and_move, list(ink.shape), align_corners=False), align_corners=False).clamp(0, 1)
    background, colour = uniform(0, 1, 3, 1, 1), uniform(0, 1, 3, 1, 1)
    faint = (colour.mean(1, keepdim=True) - background.mean(1, keepdim=True)).abs() < 0.3  # too little contrast to read
    colour = torch.where(faint, 1 - background, colour)
    blotches = F.interpolate(torch.randn(n, 3, 4, 4, generator=generator), size=DIGIT_SIZE, mode="bicubic", align_corners=False)
    picture = (background + 0.15 * blotches) * (1 - ink) + colour * ink
    grain = uniform(0.02, 0.1, 1, 1, 1) * torch.randn(n, 3, DIGIT_SIZE, DIGIT_SIZE, generator=generator)
    return (picture + grain).clamp(0, 1)


def plain(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """With --plain: the digits as they are, upsampled to (n, 3, 32, 32), grey ink on white; nothing random."""
    return 1 - F.interpolate(images, size=DIGIT_SIZE, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)


draw_digits = plain if args.plain else in_the_wild


def as_network_input(pictures: torch.Tensor) -> torch.Tensor:
    """Pictures (n, 3, 32, 32), pixels 0..1 -> normalised as ImageNet photos."""
    return (pictures - IMAGENET_MEAN) / IMAGENET_STD


def digits_in(part: tuple[torch.Tensor, torch.Tensor], first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean 8x8 images of the digits first..first+4 in a part of the split, and their labels 0-4."""
    images, labels = part
    keep = (labels >= first) & (labels < first + 5)
    return images[keep], labels[keep] - first


def drawn_once(part: tuple[torch.Tensor, torch.Tensor], seed: int, pictures: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Each digit of `part` drawn `pictures` times (in the wild, or plain), from its own seed: network inputs and labels."""
    images, labels = part
    generator = torch.Generator().manual_seed(seed)
    return as_network_input(draw_digits(images.repeat(pictures, 1, 1, 1), generator)), labels.repeat(pictures)


if args.data is None:
    split = digits.load_digits_split()
    source_train = digits_in(split["train"], 0)
    source_validation = drawn_once(digits_in(split["validation"], 0), PICTURE_SEED)
    target_pool = drawn_once(digits_in(split["train"], 5), PICTURE_SEED + 1)
    target_test = drawn_once(digits_in(split["test"], 5), PICTURE_SEED + 2, TEST_PICTURES)
    fewest = int(np.bincount(target_pool[1]).min())
    if max(args.labels) > fewest:
        workshop.refuse(f"--labels {max(args.labels)} is more than the {fewest} training images of the rarest digit 5-9; give at most {fewest}")
    workshop.log(f"pretraining task: digits 0-4, {len(source_train[1])} training digits drawn anew each epoch, "
                 f"{len(source_validation[1])} validation pictures")  # fmt: skip
    workshop.log(f"new task: digits 5-9, {len(target_pool[1])} training pictures to draw labels from, {len(target_test[1])} test "
                 f"pictures ({len(target_test[1]) // TEST_PICTURES} test digits, {TEST_PICTURES} pictures each)")  # fmt: skip
    draws_of = {}  # draw -> for each new digit, its training pictures in a random order (the first k are its k labels)
    for draw in range(args.draws):
        rng = np.random.default_rng([args.seed, draw])
        draws_of[draw] = [rng.permutation(np.flatnonzero(target_pool[1].numpy() == digit)) for digit in range(5)]
    print(f"network input: {tuple(target_test[0].shape[1:])}; labelled sets: {args.labels} pictures of each digit 5-9, {args.draws} draw(s)")

    # What the networks see: ten clean training digits 0-4 (as plain pictures), the same drawn for pretraining, and two
    # labelled pictures of each 5-9; each row laid side by side into one strip, with a white gap after each picture.
    clean = split["train"][0][split["train"][1] < 5][:10]
    labelled = torch.cat([torch.from_numpy(order[:2]) for order in draws_of[0]])
    rows = {"clean digits 0-4": plain(clean, None),
            f"0-4 {'plain' if args.plain else 'in the wild'}": draw_digits(clean, torch.Generator().manual_seed(args.seed)),
            "labelled 5-9": (target_pool[0][labelled] * IMAGENET_STD + IMAGENET_MEAN).clamp(0, 1)}  # fmt: skip
    strips = [torch.cat([F.pad(picture, (0, 2, 0, 2), value=1) for picture in pictures], dim=2) for pictures in rows.values()]
    figure, axes = plt.subplots(figsize=(10, 1.1 * len(rows)))
    axes.imshow(torch.cat(strips, dim=1).permute(1, 2, 0).numpy())
    axes.set_yticks([(DIGIT_SIZE + 2) * (row + 0.5) for row in range(len(rows))], list(rows))
    axes.set_xticks([])
    workshop.save_figure(figure, args.out / "training_pictures.png")

# %% [markdown]
# ## Pretraining on the digits 0-4
# A ResNet-18 from scratch learns the digits 0-4 in the wild: every batch is drawn anew from
# their clean training images, so that the network must learn what makes a 3 a 3 whatever its
# colour, size, slant and background. Its weights then go into a checkpoint file written the
# way torchvision writes its own, a state dict, and every fine-tuning run below loads that file
# with `load_pretrained`, as a run on Puma loads the ImageNet file.

# %%
import io


def shifted(images: torch.Tensor, generator: torch.Generator, most: int = 3) -> torch.Tensor:
    """Each image moved by up to `most` pixels in each direction; the edge pixels repeat into the gap."""
    padded = F.pad(images, (most, most, most, most), mode="replicate")
    moves = torch.randint(0, 2 * most + 1, (len(images), 2), generator=generator).tolist()
    size = images.shape[-1]
    return torch.stack([image[:, y : y + size, x : x + size] for image, (y, x) in zip(padded, moves)])


def accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return digits.evaluate(model, zip(images.split(256), labels.split(256)), device)[1]


if args.data is None:
    pretrain_steps = args.pretrain_epochs * -(-len(source_train[1]) // args.batch_size)
    pretrained, optimizer, schedule = make_learner("scratch", 5, None, pretrain_steps)
    batches = torch.Generator().manual_seed(args.seed)
    progress = workshop.Progress(total=args.pretrain_epochs, unit="images")
    pretraining_started = time.perf_counter()
    for epoch in range(1, args.pretrain_epochs + 1):
        losses = []
        for batch in torch.randperm(len(source_train[1]), generator=batches).split(args.batch_size):
            images = as_network_input(draw_digits(source_train[0][batch], batches))
            losses.append(train_step(pretrained, "scratch", optimizer, schedule, images, source_train[1][batch]))
        source_accuracy = accuracy_on(pretrained, *source_validation)
        progress.step(epoch, items=len(source_train[1]), loss=float(np.mean(losses)), val_accuracy=source_accuracy)
    pretraining_seconds = time.perf_counter() - pretraining_started
    checkpoint = args.out / "pretrained_digits_0-4.pt"
    buffer = io.BytesIO()
    torch.save({name: tensor.cpu() for name, tensor in pretrained.state_dict().items()}, buffer)
    workshop.atomic_write_bytes(checkpoint, buffer.getvalue())
    workshop.log(f"pretrained on the digits 0-4: {source_accuracy:.2%} of their validation pictures right; wrote {checkpoint}")

# %% [markdown]
# ## Learning the digits 5-9 from a few labels, three ways
# For every number of labels and every draw, the same labelled pictures are learned the three
# ways and scored on all the test pictures of 5-9. From scratch and full fine-tuning train with
# the same recipe: the same number of steps, the same seed and batches, and the same
# augmentation (each batch shifted at random by up to 3 of the 32 pixels, so that the network
# learns the strokes, not their exact place). A frozen backbone turns a picture into the same
# features every time, so here they are computed once, and the new head is fitted to the end on
# them: logistic regression (scikit-learn), the very classifier of the baseline. The baseline is
# what a statistician would try first: logistic regression on the pixels (32 x 32 in 3 colours),
# with the same labels. So the frozen way and the baseline differ only in what they read:
# pretrained features or pixels.

# %%
from sklearn.linear_model import LogisticRegression

if args.data is None:
    # The pretrained backbone, to measure how far each run moves it (the head and BatchNorm's counters left out).
    backbone_start = {name: tensor.float().cpu() for name, tensor in pretrained.state_dict().items()
                      if not name.startswith("fc.") and not name.endswith("num_batches_tracked")}  # fmt: skip
    pretrained.eval()
    with torch.no_grad():  # the frozen backbone's features of every picture 5-9, once
        pool_features, test_features = (pretrained.features(part[0].to(device)).cpu().numpy() for part in (target_pool, target_test))
    runs = []
    progress = workshop.Progress(total=len(args.labels) * args.draws * (len(WAYS) + 1), label="run")
    fine_tuning_started = time.perf_counter()
    for count in args.labels:
        for draw in range(args.draws):
            chosen = torch.from_numpy(np.concatenate([order[:count] for order in draws_of[draw]]))
            images, labels = target_pool[0][chosen], target_pool[1][chosen]
            baseline = LogisticRegression(max_iter=5000).fit(images.flatten(1).numpy(), labels.numpy())
            baseline_accuracy = float(baseline.score(target_test[0].flatten(1).numpy(), target_test[1].numpy()))
            runs.append({"way": "pixels", "labels": count, "draw": draw, "test_accuracy": baseline_accuracy, "backbone_change": None})
            progress.step(len(runs), way="pixels", labels=count, draw=draw, test_accuracy=baseline_accuracy)
            for way in WAYS:
                if way == "frozen":
                    head = LogisticRegression(max_iter=5000).fit(pool_features[chosen], labels.numpy())
                    test_accuracy, moved = float(head.score(test_features, target_test[1].numpy())), 0.0
                else:
                    torch.manual_seed(args.seed * 1000 + draw)  # the same new head for both
                    model, optimizer, schedule = make_learner(way, 5, checkpoint, args.steps)
                    batches = torch.Generator().manual_seed(args.seed * 1000 + draw)  # the same batches too
                    for step in range(args.steps):
                        batch = torch.randperm(len(labels), generator=batches)[: args.batch_size]
                        train_step(model, way, optimizer, schedule, shifted(images[batch], batches), labels[batch])
                    test_accuracy = accuracy_on(model, *target_test)
                    moved = None if way == "scratch" else round(backbone_change(model, backbone_start), 6)
                runs.append({"way": way, "labels": count, "draw": draw, "test_accuracy": test_accuracy, "backbone_change": moved})
                progress.step(len(runs), way=way, labels=count, draw=draw, test_accuracy=test_accuracy)
    fine_tuning_seconds = time.perf_counter() - fine_tuning_started

# %% [markdown]
# ## Accuracy against the number of labels
# The mean over the draws, and the lowest and highest draw. Guessing one of the five digits is
# right one time in five. The test pictures are 5 of each of 180 test digits: a digit that one
# way cannot read costs it up to 5 pictures at once, so a difference of a few points between
# two ways is within what another draw or seed gives. The range over the draws shows how much.

# %%
NAMES = {"pixels": "logistic regression on the pixels (baseline)", "scratch": "ResNet-18 from scratch",
         "frozen": "pretrained, frozen backbone + new head", "full": "pretrained, full fine-tuning"}  # fmt: skip
if args.data is None:
    curve = {}
    for way in NAMES:
        curve[way] = {}
        for count in args.labels:
            scores = [run["test_accuracy"] for run in runs if run["way"] == way and run["labels"] == count]
            curve[way][str(count)] = {"mean": float(np.mean(scores)), "lowest": min(scores), "highest": max(scores), "draws": scores}
    print(f"{'labels per digit':<48}" + "".join(f"{count:>9d}" for count in args.labels))
    for way, name in NAMES.items():
        print(f"{name:<48}" + "".join(f"{curve[way][str(count)]['mean']:>9.1%}" for count in args.labels))

    figure, axes = plt.subplots(figsize=(8, 5))
    for (way, name), marker in zip(NAMES.items(), "osD^"):
        means = [curve[way][str(count)]["mean"] for count in args.labels]
        spread = [[m - curve[way][str(c)]["lowest"] for m, c in zip(means, args.labels)],
                  [curve[way][str(c)]["highest"] - m for m, c in zip(means, args.labels)]]  # fmt: skip
        axes.errorbar(args.labels, means, yerr=spread, marker=marker, capsize=4, label=name, linestyle="--" if way == "pixels" else "-")
    axes.axhline(0.2, color="grey", linestyle=":", label="guessing (20%)")
    axes.set_xscale("log")
    axes.set_xticks(args.labels, [str(count) for count in args.labels])
    axes.minorticks_off()  # only the counts that were run
    axes.set(xlabel="labelled training pictures of each digit 5-9", ylabel=f"accuracy on the {len(target_test[1])} test pictures of 5-9",
             ylim=(0, 1.02), title=f"Digits in the wild, pretrained on 0-4, learning 5-9: mean and range over {args.draws} draw(s)")  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    workshop.save_figure(figure, args.out / "accuracy_vs_labels.png")

# %% [markdown]
# ## Your own images: a folder per class
# With `--data DIR`, each subfolder of DIR is a class and holds its images. Every image is read
# once now, before any training: a broken file stops the run here, in one line that names it
# (`--skip-unreadable` leaves such files out instead), not a loader worker in the middle of
# training. The split is made once: 20% to test, 10% to validate, each class in proportion.
# The `Dataset` opens a file only when asked for that image, so memory stays small however many
# images there are, and the loader workers decode the next batch while the model trains.
# The preprocessing is ImageNet's, as the pretrained weights expect it: for training, a random
# part of the photo (a third of it to all of it, a little wider or taller) resized to
# `--image-size` and flipped half the time; for validation and test, the photo resized so that
# its shorter side is 8/7 of the size, and its centre cut out. Then the pixels are normalised with
# ImageNet's mean and spread of each colour.

# %%
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_rgb(path: Path, size: int) -> Image.Image:
    """An image file, decoded in colour; a JPEG is decoded at a smaller scale when that still leaves `size` pixels."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        return image.convert("RGB")


def preprocess(image: Image.Image, size: int, train: bool) -> torch.Tensor:
    """ImageNet's preprocessing: (3, size, size), normalised; random crop and flip for training, the centre otherwise."""
    width, height = image.size
    if train:
        area = width * height * (0.35 + 0.65 * torch.rand(1).item())
        aspect = math.exp(math.log(3 / 4) + math.log(16 / 9) * torch.rand(1).item())  # 3/4 to 4/3, as often wider as taller
        crop_w, crop_h = min(width, round(math.sqrt(area * aspect))), min(height, round(math.sqrt(area / aspect)))
        left, top = torch.randint(0, width - crop_w + 1, (1,)).item(), torch.randint(0, height - crop_h + 1, (1,)).item()
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
        if torch.rand(1).item() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        scale = size * 8 / 7 / min(width, height)
        image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BILINEAR)
        left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    return ((pixels.unsqueeze(0) - IMAGENET_MEAN) / IMAGENET_STD)[0]


class ImageFiles(Dataset):
    """Image files and their classes; an image is read from disk only when asked for."""

    def __init__(self, files: list[Path], labels: np.ndarray, size: int, train: bool):
        self.files, self.labels, self.size, self.train = files, labels, size, train

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return preprocess(read_rgb(self.files[index], self.size), self.size, self.train), int(self.labels[index])


if args.data is not None:
    class_folders = sorted(folder for folder in args.data.iterdir() if folder.is_dir() and not folder.name.startswith("."))
    found = {folder.name: sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for folder in class_folders}
    unreadable = []
    for name, paths in found.items():
        for file in paths:
            try:
                read_rgb(file, args.image_size)
            except (OSError, ValueError) as error:  # Pillow: not an image, truncated, or an unknown format
                unreadable.append((name, file, error))
    if unreadable and not args.skip_unreadable:
        name, file, error = unreadable[0]
        others = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        workshop.refuse(f"cannot read the image {file}{others} ({error}); remove or replace it, or add --skip-unreadable to leave such files out")
    for name, file, error in unreadable:
        found[name].remove(file)
        workshop.log(f"skipped {file}: {error}")
    classes = [name for name, paths in found.items() if paths]
    if len(classes) < 2:
        workshop.refuse(
            f"--data {args.data} has {len(classes)} class folder(s) with images; a classifier needs at least 2 "
            f"(expected {args.data}/<class name>/<image files>)"
        )
    too_few = [name for name in classes if len(found[name]) < 3]
    if too_few:
        workshop.refuse(f"class folders {too_few} in {args.data} have fewer than 3 images: each class needs one to train, validate and test")
    load_pretrained(ResNet18(len(classes), args.width), args.weights)  # check it now, before any training
    workshop.log(f"{args.weights} fits ResNet-18")
    files = [file for name in classes for file in found[name]]
    labels = np.array([index for index, name in enumerate(classes) for _ in found[name]])

    # A stratified part needs at least one image of each class, however small the folder.
    n_test, n_validation = (max(len(classes), round(share * len(files))) for share in (0.2, 0.1))
    rest, test = train_test_split(np.arange(len(files)), test_size=n_test, stratify=labels, random_state=digits.SPLIT_SEED)
    train, validation = train_test_split(rest, test_size=n_validation, stratify=labels[rest], random_state=digits.SPLIT_SEED)
    chosen = {"train": train, "validation": validation, "test": test}
    parts = {part: ImageFiles([files[i] for i in index], labels[index], args.image_size, part == "train") for part, index in chosen.items()}
    for part, index in chosen.items():
        counts = ", ".join(f"{count} {name}" for name, count in zip(classes, np.bincount(labels[index], minlength=len(classes))))
        workshop.log(f"{part}: {len(index)} images: {counts}")
    loader_options = {
        "batch_size": args.batch_size,
        "num_workers": loader_workers,
        "persistent_workers": loader_workers > 0,  # start the workers once, not every epoch
        "pin_memory": on_gpu,  # page-locked memory: faster copies to the GPU
    }
    train_loader = DataLoader(parts["train"], shuffle=True, generator=torch.Generator().manual_seed(args.seed), **loader_options)
    validation_loader = DataLoader(parts["validation"], **loader_options)
    test_loader = DataLoader(parts["test"], **loader_options)

# %% [markdown]
# ## Your own images: the three ways
# Each way trains `--epochs` passes over the training images, from torchvision's ImageNet
# weights (or from random ones), and is scored on the validation images after every epoch and
# on the test images once, at the end. The line to beat is always naming the commonest class.

# %%
if args.data is not None:
    majority_share = float(np.bincount(labels[test]).max() / len(test))
    imagenet_start = {name: tensor.float() for name, tensor in torch.load(args.weights, map_location="cpu", weights_only=True).items()
                      if not name.startswith("fc.") and not name.endswith("num_batches_tracked")}  # fmt: skip
    folder_results = {}
    for way in WAYS:
        torch.manual_seed(args.seed)
        model, optimizer, schedule = make_learner(way, len(classes), args.weights, args.epochs * len(train_loader))
        history = []
        progress = workshop.Progress(total=args.epochs, unit="images")
        way_started = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            losses = [train_step(model, way, optimizer, schedule, images, targets) for images, targets in train_loader]
            _, validation_accuracy, _ = digits.evaluate(model, validation_loader, device)
            history.append(validation_accuracy)
            progress.step(epoch, items=len(train), way=way, loss=float(np.mean(losses)), val_accuracy=validation_accuracy)
        seconds = time.perf_counter() - way_started
        _, test_accuracy, _ = digits.evaluate(model, test_loader, device)
        folder_results[way] = {"test_accuracy": test_accuracy, "validation_history": history,
                               "images_per_second": round(len(train) * args.epochs / seconds, 1),
                               "backbone_change": None if way == "scratch" else backbone_change(model, imagenet_start)}  # fmt: skip
        workshop.log(f"{NAMES[way]}: test accuracy {test_accuracy:.2%} (always the commonest class: {majority_share:.2%})")

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for way in WAYS:
        axes.plot(range(1, args.epochs + 1), folder_results[way]["validation_history"], "o-",
                  label=f"{NAMES[way]} (test: {folder_results[way]['test_accuracy']:.0%})")  # fmt: skip
    axes.axhline(majority_share, color="grey", linestyle=":", label=f"always the commonest class ({majority_share:.0%})")
    axes.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02), title=f"{len(classes)} classes of {args.data.name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    workshop.save_figure(figure, args.out / "validation_accuracy.png")

# %% [markdown]
# ## Results
# The numbers the page shows, in `metrics.json`, with where and how long the run took; the
# log's last line sums them up.

# %%
common = {"width": args.width, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
          "backbone_factor": args.backbone_factor, "seed": args.seed, "quick": args.quick}  # fmt: skip
if args.data is None:
    headline = 10 if 10 in args.labels else min(args.labels)
    at_headline = {way: curve[way][str(headline)]["mean"] for way in NAMES}
    metrics = {
        "data": f"scikit-learn handwritten digits drawn {'plain' if args.plain else 'in the wild'}: pretrained on 0-4, fine-tuned on 5-9",
        "plain": args.plain,
        "image_size": DIGIT_SIZE,
        "n_pretrain": len(source_train[1]),
        "n_pretrain_pictures": args.pretrain_epochs * len(source_train[1]),
        "n_pretrain_validation": len(source_validation[1]),
        "n_target_pool": len(target_pool[1]),
        "n_test": len(target_test[1]),
        "n_test_digits": len(target_test[1]) // TEST_PICTURES,
        "test_pictures_per_digit": TEST_PICTURES,
        "chance_level": 0.2,
        "labels": args.labels,
        "draws": args.draws,
        "pretrain_epochs": args.pretrain_epochs,
        "pretrain_validation_accuracy": source_accuracy,
        "steps": args.steps,
        "curve": curve,
        "runs": runs,
        "headline_labels": headline,
        "at_headline": at_headline,
        "gain_full_over_scratch_points": round(100 * (at_headline["full"] - at_headline["scratch"]), 1),
        **common,
    }
    speed = {"pretraining_seconds": round(pretraining_seconds, 1), "fine_tuning_seconds": round(fine_tuning_seconds, 1)}
    workshop.write_metrics(args.out, metrics, started, device=device, threads=threads, **speed)
    workshop.report_result(labels_per_digit=headline, **{way: at_headline[way] for way in NAMES})
else:
    metrics = {
        "data": str(args.data),
        "weights": str(args.weights),
        "classes": classes,
        "image_size": args.image_size,
        "n_train": len(train),
        "n_validation": len(validation),
        "n_test": len(test),
        "skipped_unreadable": [str(file) for _, file, _ in unreadable],
        "majority_class_share": majority_share,
        "epochs": args.epochs,
        "results": folder_results,
        **common,
    }
    workshop.write_metrics(args.out, metrics, started, device=device, threads=threads, loader_workers=loader_workers, mixed_precision=on_gpu)
    workshop.report_result(**{way: folder_results[way]["test_accuracy"] for way in WAYS}, commonest_class=majority_share)
