"""Drawing handwritten digits with a diffusion model, judged by a classifier that never saw them.

Today's image generators are mostly diffusion models: they start from pure noise and remove it
step by step until a picture is left. This example writes one out plainly (a denoising
diffusion probabilistic model, DDPM) and trains it on scikit-learn's 1,797 handwritten digits,
8 x 8 pixels each. It is asked for a digit ("draw me a 7") through classifier-free guidance.

Is what it draws any good? A judge decides: the small CNN of the digits example, trained only on
the training digits and never on a generated image. It reads each generated image and says
which digit it sees; its features give a Frechet distance to real held-out digits (the idea of
the FID, on a scale that runs on a laptop); and every generated image is compared with its
nearest training digit, to see whether the model draws new digits or copies. Two older
generative models are judged the same way: the mean image of each digit plus noise, and a
Gaussian mixture per digit.

Run it: `python3 examples/digits_diffusion.py` (`--quick` for a short run, `--help` for the options).
"""

# %%
import time

import workshop

parser = workshop.make_parser(
    "Train a diffusion model (DDPM) to draw handwritten digits and judge it, and two older "
    "generative models, with a classifier trained on real digits only.",
    default_out="results/digits_diffusion",
)
parser.add_argument("--train-steps", type=workshop.at_least(1), default=2500, help="training steps of the diffusion model")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=128, help="training images per step")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=3e-3, help="Adam's largest step size")
parser.add_argument("--noise-steps", type=workshop.at_least(2), default=100, help="steps from a digit to pure noise, and back when drawing")
parser.add_argument("--width", type=workshop.at_least(4), default=16, help="channels of the denoising network's first layer")
parser.add_argument("--guidance", type=workshop.at_least(0.0, float), default=0.0,
                    help="classifier-free guidance strength w: 0 draws from the class model alone, larger values stick closer to the class")
parser.add_argument("--samples", type=workshop.at_least(10), default=1000, help="images each method generates, per question")
parser.add_argument("--image-size", type=int, choices=(8, 16, 32), default=8,
                    help="pixels per side the diffusion model works at; the digits are upsampled to it; 8 is their own size")
parser.add_argument("--judge-epochs", type=workshop.at_least(1), default=15, help="training epochs of the judging classifier")
parser.add_argument("--gmm-components", type=workshop.at_least(1), default=4, help="Gaussians in the mixture of each digit")
args = workshop.parse_args(
    parser, quick_defaults={"train_steps": 30, "batch_size": 64, "noise_steps": 10, "samples": 50, "judge_epochs": 2, "gmm_components": 2}
)
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The data: handwritten digits
# The digits and their one split come from `digits.py`, as in every example that uses them:
# the diffusion model and the baselines learn from the training digits only; the validation
# digits choose the judge's best epoch; the test digits are the real digits that generated
# images are compared with. Pixels run from 0 (white) to 1 (black). The diffusion model works
# on pixels from -1 to 1, the range of the noise it starts from. At `--image-size 16` or 32 the
# digits are upsampled first: no new detail, but the cost of a larger picture, to see how the
# work grows (the judge still reads 8 x 8 images, so generated ones are shrunk back for it).

# %%
import numpy as np
import torch
import torch.nn.functional as F

import digits

split = digits.load_digits_split()
train_images, train_labels = split["train"]
test_images, test_labels = split["test"]
for part, (images, labels) in split.items():
    workshop.log(f"{part}: images {tuple(images.shape)}, of each digit 0-9: {np.bincount(labels).tolist()}")


def to_model_scale(images: torch.Tensor) -> torch.Tensor:
    """Pixels 0..1 at 8 x 8 -> pixels -1..1 at --image-size."""
    if args.image_size != 8:
        images = F.interpolate(images, size=args.image_size, mode="bilinear", align_corners=False)
    return images * 2 - 1


def to_digit_scale(images: torch.Tensor) -> torch.Tensor:
    """The model's pixels -1..1 -> the digits' 8 x 8 pixels 0..1 (what the judge reads)."""
    images = ((images.float().clamp(-1, 1) + 1) / 2).cpu()
    return F.interpolate(images, size=8, mode="area") if images.shape[-1] != 8 else images


def show(images: torch.Tensor, titles: list) -> None:
    """A row of 8 x 8 images in characters from light to dark (two per pixel: a character is tall)."""
    shades = " .:-=+*#%@"
    print("   ".join(f"{title!s:<16}" for title in titles))
    for row in range(8):
        print("   ".join("".join(2 * shades[round(9 * float(p))] for p in image[0, row]) for image in images))


show(train_images[:6], [f"label {label}" for label in train_labels[:6].tolist()])
model_train_images = to_model_scale(train_images)
workshop.log(f"the diffusion model learns {len(model_train_images)} images of {args.image_size} x {args.image_size} pixels")

# %% [markdown]
# ## Threads and the device
# A job uses the CPUs Slurm gave it and no more: the digits are in memory, so every CPU is a
# torch thread and none a data-loader worker. NumPy's linear algebra (under scikit-learn's
# Gaussian mixture) starts its own threads, one per core of the machine, unless threadpoolctl
# caps it at the same number. A GPU is used when there is one; there the
# network runs in mixed precision (16-bit floats where that is safe, 32-bit where it is not),
# which is faster and lighter on the GPU's memory.

# %%
from threadpoolctl import threadpool_limits

threads = workshop.use_allocated_threads()
threadpool_limits(limits=threads)
device = workshop.pick_device()
mixed_precision = device.type == "cuda"
torch.manual_seed(args.seed)
torch.backends.cudnn.deterministic = True  # the same seed gives the same numbers on a GPU too
torch.backends.cudnn.benchmark = False
workshop.log(f"mixed precision: {'on (float16 on the GPU)' if mixed_precision else 'off (float32 on the CPU)'}")

# %% [markdown]
# ## The judge: a classifier that never sees a generated image
# `digits.small_cnn`, the network of the digits example, learns the training digits and keeps
# the weights of its best validation epoch. It never sees a generated image, so it cannot be
# fooled by learning the generators' quirks. It gives three things: the digit it reads in an
# image (class accuracy, coverage); its last 64 features before the class scores (for the
# Frechet distance below); and its accuracy on the real test digits, the ceiling for a
# generator's class accuracy: the judge misreads some real digits too.

# %%
import copy

judge = digits.small_cnn().to(device)
judge_optimizer = torch.optim.Adam(judge.parameters(), lr=3e-3)
judge_order = torch.Generator().manual_seed(args.seed)
best_validation, best_weights = -1.0, None
for epoch in range(1, args.judge_epochs + 1):
    judge.train()
    for batch in torch.randperm(len(train_images), generator=judge_order).split(64):
        loss = F.cross_entropy(judge(train_images[batch].to(device)), train_labels[batch].to(device))
        judge_optimizer.zero_grad()
        loss.backward()
        judge_optimizer.step()
    _, validation_accuracy, _ = digits.evaluate(judge, [split["validation"]], device)
    if validation_accuracy >= best_validation:
        best_validation, best_weights = validation_accuracy, copy.deepcopy(judge.state_dict())
judge.load_state_dict(best_weights)
_, judge_test_accuracy, _ = digits.evaluate(judge, [split["test"]], device)
features_of = judge[:-2]  # everything up to the dropout and the last layer: 64 features per image
workshop.log(
    f"judge: {args.judge_epochs} epochs, validation accuracy {best_validation:.2%}, "
    f"test accuracy {judge_test_accuracy:.2%} (the ceiling for a generator's class accuracy)"
)


@torch.no_grad()
def judge_reads(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The digit the judge reads in each 8 x 8 image (pixels 0..1), and its 64 features."""
    judge.eval()
    features = torch.cat([features_of(batch.to(device)).float().cpu() for batch in images.split(500)])
    return judge[-1](features.to(device)).argmax(1).cpu().numpy(), features.double().numpy()


test_features = judge_reads(test_images)[1]
print("features of the first test digit:", np.round(test_features[0, :8], 3), "...")

# %% [markdown]
# ## The noise schedule
# The forward process destroys a digit in `--noise-steps` small steps. Step t keeps a share
# $\sqrt{1-\beta_t}$ of the image and adds Gaussian noise of variance $\beta_t$. After t steps
# the image is $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ with
# $\bar\alpha_t = \prod_{s \le t} (1-\beta_s)$ and $\varepsilon$ standard Gaussian noise: one
# line jumps straight to any step. $\bar\alpha_t$, how much of the digit is left, falls from
# nearly 1 to nearly 0. This is the cosine schedule of Nichol and Dhariwal (2021): it destroys
# the image evenly over the steps, where the original linear one (Ho et al., 2020) leaves
# little but noise long before the end, wasting steps, worst when there are few of them.

# %%
import math

steps = torch.arange(args.noise_steps + 1) / args.noise_steps
alpha_bar = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
alpha_bar = (alpha_bar[1:] / alpha_bar[0]).double()  # index t = 0 .. T-1 is the image after t + 1 steps
betas = (1 - alpha_bar / torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])).clamp(max=0.999)
alpha_bar = torch.cumprod(1 - betas, 0)  # the clamp changes the last step: recompute from the betas
shown = sorted({0, args.noise_steps // 4, args.noise_steps // 2, 3 * args.noise_steps // 4, args.noise_steps - 1})
for t in shown:
    workshop.log(f"step {t + 1:4d}: beta {betas[t]:.4f}, alpha_bar {alpha_bar[t]:.4f} (share of the digit left: {alpha_bar[t].sqrt():.3f})")


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The forward process in one jump: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise."""
    keep = alpha_bar.to(x0.device)[t].float().view(-1, 1, 1, 1)
    return keep.sqrt() * x0 + (1 - keep).sqrt() * noise


# %% [markdown]
# ## Check the forward process
# Noise one test digit 20,000 times to each of a few steps and measure the pixels: their mean
# should be $\sqrt{\bar\alpha_t}\,x_0$ and their standard deviation $\sqrt{1-\bar\alpha_t}$.
# A mistake here (a square root too many, an index off by one) would not crash anything; the
# model would only learn the wrong thing. So measure it.

# %%
checker = torch.Generator().manual_seed(args.seed)
digit = to_model_scale(test_images[:1])
forward_check = []
for t in shown:
    copies = digit.expand(20_000, -1, -1, -1)
    noisy = add_noise(copies, torch.full((20_000,), t), torch.randn(copies.shape, generator=checker))
    forward_check.append({
        "step": t + 1,
        "expected_std": float((1 - alpha_bar[t]).sqrt()),
        "measured_std": float(noisy.std(0).mean()),
        "expected_mean_scale": float(alpha_bar[t].sqrt()),
        "measured_mean_scale": float((noisy.mean(0) * digit[0]).sum() / (digit[0] ** 2).sum()),
    })  # fmt: skip
    row = forward_check[-1]
    workshop.log(
        f"step {t + 1:4d}: noise std {row['measured_std']:.4f} (expected {row['expected_std']:.4f}), "
        f"share of the digit {row['measured_mean_scale']:.4f} (expected {row['expected_mean_scale']:.4f})"
    )

# %% [markdown]
# ## The denoising network
# One network learns to undo every step: given a noisy image $x_t$, the step $t$ and the digit
# asked for, it predicts the noise $\varepsilon$ that was added. It is a small U-Net: convolutions
# at full size, a stage at half size that sees more of the image at once, and the way back up
# with the full-size features added back in (the "skip" that gives the U its shape). The step
# becomes a vector of sines and cosines (as in a transformer); the digit, a learned vector. Both
# are added to every block's features. Ten digits have vectors, and an eleventh means "no digit
# asked for": training with it now and then teaches the same network to draw any digit.

# %%
from torch import nn

NO_DIGIT = 10  # the class vector that means "no digit asked for"


class Block(nn.Module):
    """Two 3x3 convolutions with the step-and-digit vector added in between, plus the input (residual)."""

    def __init__(self, channels: int, embedding: int):
        super().__init__()
        self.first = nn.Conv2d(channels, channels, 3, padding=1)
        self.condition = nn.Linear(embedding, channels)
        self.second = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.first(x) + self.condition(condition)[:, :, None, None])
        return x + self.second(h)


class Denoiser(nn.Module):
    """A small U-Net: (noisy image, step, digit) -> the noise in the image."""

    def __init__(self, width: int, embedding: int = 64):
        super().__init__()
        self.embedding = embedding
        self.step_mlp = nn.Sequential(nn.Linear(embedding, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.digit_vectors = nn.Embedding(11, embedding)  # 0-9, and NO_DIGIT
        self.into = nn.Conv2d(1, width, 3, padding=1)
        self.full_size = Block(width, embedding)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)  # half the size, twice the channels
        self.half_size = nn.ModuleList([Block(2 * width, embedding), Block(2 * width, embedding)])
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.back_at_full_size = Block(width, embedding)
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        half = self.embedding // 2
        frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=x.device) / half)
        angles = t[:, None].float() * frequencies[None]
        step_vector = self.step_mlp(torch.cat([angles.sin(), angles.cos()], 1))
        condition = F.silu(step_vector + self.digit_vectors(digit))
        full = self.full_size(self.into(x), condition)
        half_size = self.down(F.silu(full))
        for block in self.half_size:
            half_size = block(half_size, condition)
        h = self.back_at_full_size(self.up(F.silu(half_size)) + full, condition)  # the skip: full-size features added back
        return self.out(F.silu(h))


denoiser = Denoiser(args.width).to(device)
print(denoiser)
workshop.log(f"denoiser: {sum(weights.numel() for weights in denoiser.parameters()):,} parameters")

# %% [markdown]
# ## Training: predict the noise
# Each step takes a batch of training digits, a random step $t$ for each, fresh noise
# $\varepsilon$, and asks the network for the noise in $x_t$. The loss is the mean squared error
# $\lVert \varepsilon - \varepsilon_\theta(x_t, t, c) \rVert^2$. One digit label in ten is
# replaced by "no digit", so that the network also learns to draw without being told which
# digit: what classifier-free guidance needs. Adam takes the steps, their size rising then
# falling (a one-cycle schedule). On a GPU the forward pass runs in mixed precision, and the
# loss is scaled up before the backward pass so that small float16 gradients do not round to 0.

# %%
LABEL_DROPOUT = 0.1  # the share of labels replaced by NO_DIGIT during training

optimizer = torch.optim.Adam(denoiser.parameters(), lr=args.learning_rate)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.learning_rate, total_steps=args.train_steps, pct_start=0.1)
scaler = torch.amp.GradScaler("cuda", enabled=mixed_precision)
draws = torch.Generator().manual_seed(args.seed)  # batches, steps and noise all follow --seed
log_every = max(1, args.train_steps // 20)
loss_history, recent_losses = [], []
progress = workshop.Progress(total=args.train_steps, unit="images", label="step")
training_started = time.perf_counter()
denoiser.train()
for step in range(1, args.train_steps + 1):
    batch = torch.randint(len(model_train_images), (args.batch_size,), generator=draws)
    x0, digit = model_train_images[batch].to(device), train_labels[batch].clone()
    digit[torch.rand(args.batch_size, generator=draws) < LABEL_DROPOUT] = NO_DIGIT
    t = torch.randint(args.noise_steps, (args.batch_size,), generator=draws).to(device)
    noise = torch.randn(x0.shape, generator=draws).to(device)
    with torch.autocast(device.type, dtype=torch.float16, enabled=mixed_precision):
        loss = F.mse_loss(denoiser(add_noise(x0, t, noise), t, digit.to(device)).float(), noise)
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    schedule.step()
    recent_losses.append(loss.item())
    if step % log_every == 0 or step == args.train_steps:
        loss_history.append((step, float(np.mean(recent_losses))))
        progress.step(step, items=len(recent_losses) * args.batch_size, loss=loss_history[-1][1])
        recent_losses = []
training_seconds = time.perf_counter() - training_started

# %% [markdown]
# ## Drawing: ancestral sampling with classifier-free guidance
# Drawing runs the process backwards. Start from pure noise $x_T$; at each step, take the
# network's estimate of the noise and step to a slightly cleaner image,
# $x_{t-1} = \frac{1}{\sqrt{1-\beta_t}}\bigl(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\varepsilon\bigr) + \sigma_t z$,
# adding a little fresh noise $z$ (none at the last step), with
# $\sigma_t^2 = \beta_t\,\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}$. To draw a 7, the network
# predicts the noise twice, told "7" and told "no digit", and the guided estimate goes further in
# the direction that "7" adds: $\hat\varepsilon = (1+w)\,\varepsilon_\theta(x_t, 7) - w\,\varepsilon_\theta(x_t, \varnothing)$.
# With $w = 0$ that is the class model alone; a larger $w$ draws more clearly a 7, and the 7s
# look more alike.

# %%
denoiser.eval()


@torch.no_grad()
def draw(asked: torch.Tensor, guidance: float, generator: torch.Generator, keep_steps: tuple = ()) -> tuple[torch.Tensor, dict]:
    """Images for the digits `asked` (NO_DIGIT: any digit), from noise by ancestral sampling, in
    the model's scale; and the images at the steps in `keep_steps` (the reverse process)."""
    n = len(asked)
    x = torch.randn((n, 1, args.image_size, args.image_size), generator=generator).to(device)
    asked = asked.to(device)
    guided = guidance > 0 and bool((asked != NO_DIGIT).any())
    kept = {}
    for t in reversed(range(args.noise_steps)):
        steps = torch.full((n,), t, device=device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=mixed_precision):
            if guided:  # one batch holds both questions: "this digit" and "no digit"
                both = denoiser(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([asked, torch.full_like(asked, NO_DIGIT)]))
                told, untold = both.float().chunk(2)
                noise = (1 + guidance) * told - guidance * untold
            else:
                noise = denoiser(x, steps, asked).float()
        beta, bar = float(betas[t]), float(alpha_bar[t])
        x = (x - beta / math.sqrt(1 - bar) * noise) / math.sqrt(1 - beta)
        if t > 0:
            sigma = math.sqrt(beta * (1 - float(alpha_bar[t - 1])) / (1 - bar))
            x = x + sigma * torch.randn(x.shape, generator=generator).to(device)
        if t in keep_steps:
            kept[t] = x.clone()
    return x, kept


sampler = torch.Generator().manual_seed(args.seed + 1)
asked = torch.arange(args.samples) % 10  # the same number of each digit
sampling_started = time.perf_counter()
guided_images, _ = draw(asked, args.guidance, sampler)
sampling_seconds = time.perf_counter() - sampling_started
any_digit_images, _ = draw(torch.full((args.samples,), NO_DIGIT), 0.0, sampler)
workshop.log(
    f"drew {args.samples} images asked for a digit (guidance {args.guidance:g}) in {sampling_seconds:.1f} s "
    f"({args.samples / sampling_seconds:.1f} images/s, {args.noise_steps} steps each), and {args.samples} asked for no digit"
)
show(to_digit_scale(guided_images[:6]), [f"asked for {digit}" for digit in asked[:6].tolist()])

# %% [markdown]
# ## The baselines a statistician would try first
# Two older generative models of the same training digits, on their 64 pixels:
#
# - **The mean image plus noise.** For each digit, the average training image plus Gaussian
#   noise with each pixel's own spread. Asked for no digit, it uses the average of all digits.
# - **A Gaussian mixture** (`sklearn.mixture.GaussianMixture`): each digit's images as a mixture
#   of a few Gaussians with full covariances, so pixels that go together (the strokes) stay
#   together. Asked for no digit, one mixture with as many Gaussians as the ten together,
#   fitted to all the training digits without their labels.
#
# Both draw any number of images at once, in a fraction of a second.

# %%
from sklearn.mixture import GaussianMixture

pixels = train_images.reshape(len(train_images), -1).double().numpy()
labels_np = train_labels.numpy()
baseline_rng = np.random.default_rng(args.seed)


def as_images(rows: np.ndarray) -> torch.Tensor:
    """Rows of 64 pixels -> 8 x 8 images, pixels clipped to 0..1 as real ones are."""
    return torch.tensor(np.clip(rows, 0, 1), dtype=torch.float32).reshape(-1, 1, 8, 8)


def mean_plus_noise(rows: np.ndarray, n: int) -> np.ndarray:
    return rows.mean(0) + rows.std(0) * baseline_rng.standard_normal((n, rows.shape[1]))


asked_np = asked.numpy()
counts = np.bincount(asked_np, minlength=10)
mean_images = np.empty((args.samples, 64))
mixture_images = np.empty((args.samples, 64))
for digit in range(10):
    rows = pixels[labels_np == digit]
    mean_images[asked_np == digit] = mean_plus_noise(rows, counts[digit])
    # reg_covar: a floor on every pixel's variance (pixels at the border are always 0 in training)
    mixture = GaussianMixture(args.gmm_components, covariance_type="full", reg_covar=1e-3, random_state=args.seed).fit(rows)
    mixture_images[asked_np == digit] = baseline_rng.permutation(mixture.sample(counts[digit])[0])
any_digit_mixture = GaussianMixture(10 * args.gmm_components, covariance_type="full", reg_covar=1e-3, random_state=args.seed)
any_digit_mixture.fit(pixels)
generated = {
    "diffusion": {"asked": to_digit_scale(guided_images), "any": to_digit_scale(any_digit_images)},
    "gaussian_mixture": {"asked": as_images(mixture_images), "any": as_images(baseline_rng.permutation(any_digit_mixture.sample(args.samples)[0]))},
    "mean_plus_noise": {"asked": as_images(mean_images), "any": as_images(mean_plus_noise(pixels, args.samples))},
}  # fmt: skip
METHOD_NAMES = {"diffusion": f"diffusion model (guidance {args.guidance:g})", "gaussian_mixture": "Gaussian mixture per digit",
                "mean_plus_noise": "mean image + noise"}  # fmt: skip
show(generated["gaussian_mixture"]["asked"][:6], [f"mixture, {digit}" for digit in asked[:6].tolist()])
show(generated["mean_plus_noise"]["asked"][:6], [f"mean + noise, {digit}" for digit in asked[:6].tolist()])

# %% [markdown]
# ## The judge's verdict
# For each method, on its images asked for a digit and on those asked for none:
#
# - **Class accuracy**: the share of images the judge reads as the digit asked for. The
#   judge's own accuracy on real test digits is the ceiling.
# - **Coverage**: asked for no digit, which digits come out? A class counts when at least 2% of
#   the images are read as it (a fair share is 10%). A model that draws only a few kinds of
#   output, however good they look, has *collapsed* onto a few modes of the data.
# - **Frechet distance**: fit a Gaussian to the judge's 64 features of the generated images and
#   another to those of the real test digits, and measure how far apart the two are:
#   $\lVert \mu_g - \mu_r \rVert^2 + \mathrm{tr}\bigl(\Sigma_g + \Sigma_r - 2(\Sigma_g\Sigma_r)^{1/2}\bigr)$.
#   Lower is closer; it sees both quality and variety. This is the idea of the FID, which uses
#   an Inception network's features of large photos; the numbers are not comparable with FIDs.
#   Two sets of real digits are not at 0 either: the validation digits give that floor.
# - **Nearest neighbour**: the pixel distance from each generated image to the closest training
#   digit, against the same distance for real test digits. Much smaller means copying.
#
# Pure noise (the images the sampler starts from) is scored too: the line any model must beat.

# %%
COVERED_SHARE = 0.02
train_rows = train_images.reshape(len(train_images), -1)


def frechet_distance(features: np.ndarray, reference: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two sets of features (rows)."""
    mean_gap = features.mean(0) - reference.mean(0)
    sigma, sigma_ref = np.cov(features, rowvar=False), np.cov(reference, rowvar=False)
    # tr((S S_ref)^1/2) through symmetric matrices only: the eigenvalues of R S R, with R = S_ref^1/2.
    # (scipy.linalg.sqrtm of S S_ref gives the same, but warns when fewer images than features
    # make S singular.)
    values, vectors = np.linalg.eigh(sigma_ref)
    root_ref = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    trace_of_root = np.sqrt(np.linalg.eigvalsh(root_ref @ sigma @ root_ref).clip(min=0)).sum()
    return float(mean_gap @ mean_gap + np.trace(sigma) + np.trace(sigma_ref) - 2 * trace_of_root)


def nearest_training_distance(images: torch.Tensor) -> np.ndarray:
    return torch.cdist(images.reshape(len(images), -1), train_rows).min(1).values.numpy()


test_nearest = nearest_training_distance(test_images)
near_copy_distance = float(np.quantile(test_nearest, 0.05))  # closer than all but 5% of real test digits


def verdict(asked_images: torch.Tensor, asked_digits: np.ndarray, any_images: torch.Tensor) -> dict:
    read, features = judge_reads(asked_images)
    read_any, _ = judge_reads(any_images)
    shares = np.bincount(read_any, minlength=10) / len(read_any)
    nearest = nearest_training_distance(asked_images)
    return {
        "class_accuracy": float((read == asked_digits).mean()),
        "classes_covered": int((shares >= COVERED_SHARE).sum()),
        "class_shares_unasked": {str(digit): round(float(share), 4) for digit, share in enumerate(shares)},
        "rarest_unasked": {"digit": int(shares.argmin()), "share": float(shares.min())},
        "commonest_unasked": {"digit": int(shares.argmax()), "share": float(shares.max())},
        "frechet_distance": frechet_distance(features, test_features),
        "frechet_distance_unasked": frechet_distance(judge_reads(any_images)[1], test_features),
        "nearest_training_median": float(np.median(nearest)),
        "near_copies": float((nearest < near_copy_distance).mean()),
    }


validation_images, validation_labels = split["validation"]
noise_images = to_digit_scale(torch.randn((2 * args.samples, 1, args.image_size, args.image_size), generator=sampler))
results = {method: verdict(images["asked"], asked_np, images["any"]) for method, images in generated.items()}
results["pure_noise"] = verdict(noise_images[: args.samples], asked_np, noise_images[args.samples :])
results["real_digits"] = {  # held-out real digits, scored as if they had been generated
    **verdict(test_images, test_labels.numpy(), validation_images),
    "frechet_distance": frechet_distance(judge_reads(validation_images)[1], test_features),
}
results["real_digits"]["frechet_distance_unasked"] = results["real_digits"]["frechet_distance"]
METHOD_NAMES |= {"pure_noise": "pure noise (reference)", "real_digits": "real held-out digits (reference)"}

header = f"{'method':<38}{'class accuracy':>15}{'classes':>9}{'Frechet':>10}{'nearest':>9}{'copies':>8}"
print(header)
for method, result in results.items():
    print(
        f"{METHOD_NAMES[method]:<38}{result['class_accuracy']:>15.1%}{result['classes_covered']:>9d}"
        f"{result['frechet_distance']:>10.2f}{result['nearest_training_median']:>9.2f}{result['near_copies']:>8.1%}"
    )

# %% [markdown]
# ## Samples, per digit and per method
# Eight images of each digit from each method, asked for that digit, next to real test digits.
# Look before you read the numbers: which look like handwriting, which like a digit under a
# haze of noise?

# %%
import matplotlib.pyplot as plt


def tiled(images: torch.Tensor, rows: int, columns: int) -> np.ndarray:
    """`rows` x `columns` 8 x 8 images as one picture, each framed by a white pixel (10 x 10 a tile)."""
    framed = F.pad(images[: rows * columns, 0], (1, 1, 1, 1))
    return framed.reshape(rows, columns, 10, 10).permute(0, 2, 1, 3).reshape(rows * 10, columns * 10).numpy()


def grid(axes, images: torch.Tensor, rows: int, columns: int, title: str) -> None:
    """`rows` x `columns` 8 x 8 images (pixels 0..1, black ink on white), one row per digit 0-9."""
    axes.imshow(tiled(images, rows, columns), cmap="gray_r", vmin=0, vmax=1)
    axes.set_title(title, fontsize=10)
    axes.set_xticks([])
    axes.set_yticks(np.arange(rows) * 10 + 4.5, [str(row) for row in range(rows)])


per_digit = min(8, args.samples // 10)


def first_of_each_digit(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.cat([images[labels == digit][:per_digit] for digit in range(10)])


figure, axes = plt.subplots(1, 4, figsize=(13, 4.6))
panels = {"real test digits": first_of_each_digit(test_images, test_labels)}
panels |= {METHOD_NAMES[method]: first_of_each_digit(images["asked"], asked) for method, images in generated.items()}
for ax, (title, images) in zip(axes, panels.items()):
    grid(ax, images, 10, per_digit, title)
axes[0].set_ylabel("digit asked for")
workshop.save_figure(figure, args.out / "samples.png")

# %% [markdown]
# ## The reverse process, from noise to digit
# One image of each digit while it is drawn: pure noise on the left, the finished digit on the
# right. The digit's shape appears well before the end; the last steps only sharpen it.

# %%
strip_steps = sorted({round(t) for t in np.linspace(args.noise_steps - 1, 0, 8)}, reverse=True)
strip_generator = torch.Generator().manual_seed(args.seed + 2)
_, kept = draw(torch.arange(10), args.guidance, strip_generator, keep_steps=tuple(strip_steps))
row_per_digit = torch.stack([to_digit_scale(kept[t]) for t in strip_steps], 1).reshape(-1, 1, 8, 8)
figure, axes = plt.subplots(figsize=(1.1 * len(strip_steps) + 1, 11.5))
axes.imshow(tiled(row_per_digit, 10, len(strip_steps)), cmap="gray_r", vmin=0, vmax=1)
axes.set_xticks(np.arange(len(strip_steps)) * 10 + 4.5, [f"{t}" for t in strip_steps])
axes.set_yticks(np.arange(10) * 10 + 4.5, [str(digit) for digit in range(10)])
axes.set(xlabel="steps left: from pure noise (left) to the finished digit (right)", ylabel="digit asked for")
workshop.save_figure(figure, args.out / "reverse_process.png")

# %% [markdown]
# ## Guidance strength
# The same starting noise, drawn with guidance from 0 (the class model alone) up, and for each
# strength the judge's class accuracy and the spread: the mean pixel distance between two
# images of the same digit. Guidance pushes each image towards the most typical look of its
# digit, so the images of a digit grow more alike; pushed too hard, it overshoots, and they
# grow apart again in ways real digits do not (blotches, saturated strokes).

# %%
GUIDANCE_STRENGTHS = sorted({0.0, 0.5, 1.0, 2.0, 4.0, args.guidance})
sweep_count = max(20, args.samples // 100 * 10)  # a tenth of --samples (10 of each digit), and at least 2 of each
sweep_asked = torch.arange(sweep_count) % 10
guidance_sweep = []
sweep_images = {}
for strength in GUIDANCE_STRENGTHS:
    images = to_digit_scale(draw(sweep_asked, strength, torch.Generator().manual_seed(args.seed + 3))[0])
    sweep_images[strength] = images
    read, _ = judge_reads(images)
    rows = images.reshape(len(images), -1)
    spread = np.mean([torch.pdist(rows[sweep_asked == digit]).mean().item() for digit in range(10)])
    guidance_sweep.append({"guidance": strength, "class_accuracy": float((read == sweep_asked.numpy()).mean()), "spread": float(spread)})
    workshop.log(f"guidance {strength:g}: class accuracy {guidance_sweep[-1]['class_accuracy']:.1%}, spread {spread:.2f} ({sweep_count} images)")

figure, axes = plt.subplots(1, 2, figsize=(12, 0.75 * len(GUIDANCE_STRENGTHS) + 1.2), gridspec_kw={"width_ratios": [2.2, 1]})
tiles = tiled(torch.cat([sweep_images[strength][:10] for strength in GUIDANCE_STRENGTHS]), len(GUIDANCE_STRENGTHS), 10)
axes[0].imshow(tiles, cmap="gray_r", vmin=0, vmax=1)
axes[0].set_xticks(np.arange(10) * 10 + 4.5, [str(d) for d in range(10)])
axes[0].set_yticks(np.arange(len(GUIDANCE_STRENGTHS)) * 10 + 4.5, [f"w = {s:g}" for s in GUIDANCE_STRENGTHS])
axes[0].set(xlabel="digit asked for", title="the same starting noise, guided more and more")
strengths = [row["guidance"] for row in guidance_sweep]
axes[1].plot(strengths, [row["class_accuracy"] for row in guidance_sweep], "o-", label="class accuracy (left axis)")
axes[1].set(xlabel="guidance strength w", ylabel="class accuracy", ylim=(0, 1.02))
spread_axes = axes[1].twinx()
spread_axes.plot(strengths, [row["spread"] for row in guidance_sweep], "s--", color="tab:orange", label="spread (right axis)")
spread_axes.set_ylabel("spread within a digit (pixel distance)")
axes[1].legend(handles=axes[1].get_lines() + spread_axes.get_lines(), loc="best")
axes[1].grid(alpha=0.3)
axes[1].set_title(f"{sweep_count} images per strength")
workshop.save_figure(figure, args.out / "guidance.png")

# %% [markdown]
# ## The table, the images for anyone to judge, and the results
# The verdict as a table (`metrics_table.csv`). Every generated image goes into
# `generated_digits.npz`, in the digits' own scale (pixels 0 to 16, as `sklearn.datasets.load_digits`
# gives them), with the digit asked for (-1: none): judge them with a classifier of your own.

# %%
import csv
import io

table = io.StringIO()
writer = csv.writer(table, lineterminator="\n")
writer.writerow(["method", "class_accuracy", "classes_covered", "frechet_distance", "frechet_distance_unasked",
                 "nearest_training_median", "near_copies"])  # fmt: skip
for method, result in results.items():
    writer.writerow([METHOD_NAMES[method]] + [round(result[key], 4) for key in ("class_accuracy", "classes_covered", "frechet_distance",
                    "frechet_distance_unasked", "nearest_training_median", "near_copies")])  # fmt: skip
workshop.atomic_write_bytes(args.out / "metrics_table.csv", table.getvalue().encode())
print(table.getvalue())

arrays = {}
for method, images in generated.items():
    arrays[f"{method}_images"] = np.concatenate([images["asked"], images["any"]])[:, 0] * 16
    arrays[f"{method}_asked"] = np.concatenate([asked_np, np.full(args.samples, -1)])
npz = io.BytesIO()
np.savez_compressed(npz, **arrays)
workshop.atomic_write_bytes(args.out / "generated_digits.npz", npz.getvalue())
workshop.log(f"wrote {args.out / 'generated_digits.npz'}: " + ", ".join(f"{key} {value.shape}" for key, value in arrays.items()))

metrics = {
    "image_size": args.image_size,
    "n_train": len(train_images),
    "n_test": len(test_images),
    "samples": args.samples,
    "guidance": args.guidance,
    "noise_steps": args.noise_steps,
    "train_steps": args.train_steps,
    "batch_size": args.batch_size,
    "learning_rate": args.learning_rate,
    "width": args.width,
    "gmm_components": args.gmm_components,
    "judge_epochs": args.judge_epochs,
    "judge_validation_accuracy": best_validation,
    "judge_test_accuracy": judge_test_accuracy,
    "judge_features_first_test_digit": test_features[0].tolist(),
    "covered_share": COVERED_SHARE,
    "near_copy_distance": near_copy_distance,
    "alpha_bar": [round(float(value), 8) for value in alpha_bar],
    "forward_check": forward_check,
    "loss_history": loss_history,
    "results": results,
    "guidance_sweep": guidance_sweep,
    "denoiser_parameters": sum(weights.numel() for weights in denoiser.parameters()),
    "seed": args.seed,
    "quick": args.quick,
}
workshop.write_metrics(
    args.out,
    metrics,
    started,
    device=device,
    threads=threads,
    mixed_precision=mixed_precision,
    train_images_per_s=round(args.train_steps * args.batch_size / training_seconds, 1),
    sampled_images_per_s=round(args.samples / sampling_seconds, 2),
)
diffusion, mixture = results["diffusion"], results["gaussian_mixture"]
workshop.report_result(
    class_accuracy=diffusion["class_accuracy"],
    classes_covered=diffusion["classes_covered"],
    frechet=diffusion["frechet_distance"],
    frechet_mixture=mixture["frechet_distance"],
    frechet_noise=results["pure_noise"]["frechet_distance"],
)
