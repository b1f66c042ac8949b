"""Solving Burgers' equation with a physics-informed neural network (PINN)

A neural network can learn the solution of a partial differential equation without being shown
a single solution value inside the domain: it is trained so that the equation itself holds.
This is the classic benchmark of Raissi, Perdikaris & Karniadakis (J. Comput. Phys. 378, 2019),
the viscous Burgers' equation

    u_t + u u_x = nu u_xx,   x in [-1, 1], t in [0, 1],   nu = 0.01 / pi,
    u(0, x) = -sin(pi x),    u(t, -1) = u(t, 1) = 0,

whose solution steepens into a near-shock at x = 0. The network u(x, t) is a small tanh MLP; its
loss is the mean squared PDE residual at random "collocation" points, with the derivatives taken
by automatic differentiation, plus the misfit to the initial and boundary data (unless those are
built into the network, our default). A few hundred Adam steps warm it up, then L-BFGS finishes
the job. We check the result against the exact solution, which we compute ourselves (Cole-Hopf
transform plus quadrature), on the paper's 256 x 100 grid. The paper reports a relative L2 error
of 6.7e-4.
"""

# %% [markdown]
# ## The options
# The defaults are the full run that the page's numbers come from. `--quick` is a small problem
# for tests that runs in seconds: a smaller network, fewer points, fewer steps. Both stop after a
# number of steps, never after a wall time, so a busy machine gives the same result as an idle
# one, only later.

# %%
import io
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm

import workshop

parser = workshop.make_parser(
    "Solve Burgers' equation with a physics-informed neural network and check it against the exact solution.",
    default_out="results/burgers_pinn",
)
parser.add_argument("--layers", type=workshop.at_least(1), default=8, help="hidden layers of the network")
parser.add_argument("--width", type=workshop.at_least(1), default=20, help="units in each hidden layer")
parser.add_argument("--points", type=workshop.at_least(1), default=10_000, help="collocation points, where the equation must hold")
parser.add_argument("--adam-steps", type=workshop.at_least(0), default=300, help="Adam warm-up steps")
parser.add_argument("--lbfgs-steps", type=workshop.at_least(0), default=8_000,
                    help="L-BFGS steps after the warm-up, at most: a stalled L-BFGS ends the run earlier")
parser.add_argument("--constraint", choices=["hard", "soft"], default="hard",
                    help="hard: build u(0, x) and u(t, +-1) into the network; soft: fit them as a loss term, as the paper does")
parser.add_argument("--data-points", type=workshop.at_least(1), default=100,
                    help="initial and boundary points the soft constraint fits, at most 456; the paper uses 100")
parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="precision of the network and the points; float64 is slower")
parser.add_argument("--log-every", type=workshop.at_least(1), default=50, help="steps between progress lines")
args = workshop.parse_args(
    parser, quick_defaults={"layers": 4, "width": 16, "points": 500, "adam_steps": 50, "lbfgs_steps": 100}
)

# The paper draws its data points from 256 initial points and 100 on each boundary.
INITIAL_POINTS, BOUNDARY_POINTS = 256, 100
if args.data_points > INITIAL_POINTS + 2 * BOUNDARY_POINTS:
    workshop.refuse(
        f"--data-points {args.data_points} is more than the {INITIAL_POINTS + 2 * BOUNDARY_POINTS} initial and "
        "boundary points there are to choose from; give at most that many"
    )
started = time.perf_counter()
workshop.log(
    f"PINN: {args.layers} x {args.width} tanh, {args.points} collocation points, {args.constraint} constraint, "
    f"{args.dtype}; {args.adam_steps} Adam + at most {args.lbfgs_steps} L-BFGS steps"
)

# %% [markdown]
# ## Threads, device and seed
# PyTorch runs its arithmetic on a team of threads that spin while they wait for each other: one
# thread more than the job's cores, or a core shared with another busy process, and they spin
# against each other. So the thread count comes from the allocation (`--cpus-per-task`), never
# from the number of cores the node has. The GPU is used if there is one. The seed fixes the
# collocation points and the network's first weights: same seed, same run.

# %%
threads = workshop.use_allocated_threads()  # no data loader here: every thread computes
device = workshop.pick_device()
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# %% [markdown]
# ## The training points: a Latin hypercube
# The network learns where the equation is checked: at `--points` collocation points in the
# domain x in [-1, 1], t in [0, 1]. A Latin hypercube sample splits each axis into as many equal
# strips as there are points and puts exactly one point in each strip of each axis, so the
# points cover the domain more evenly than independent uniform draws.


# %%
def latin_hypercube(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points in [-1, 1] x [0, 1], columns x and t."""
    unit = np.stack([(rng.permutation(n) + rng.random(n)) / n for _ in range(2)], axis=1)
    return unit * np.array([2.0, 1.0]) - np.array([1.0, 0.0])


collocation = torch.tensor(latin_hypercube(args.points, rng))
workshop.log(f"collocation points: {tuple(collocation.shape)}, columns x and t; the first three:")
print(collocation[:3].numpy().round(4))

# %% [markdown]
# With `--constraint soft` the network must also learn the initial and boundary conditions
# from data: `--data-points` values drawn, as in the paper, from 256 points at t = 0 and 100 on
# each boundary. With the default hard constraint it satisfies them by construction (next cell)
# and needs no data at all.


# %%
def initial_and_boundary_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n of the paper's initial (t = 0) and boundary (x = +-1) points, and u there."""
    x0 = np.linspace(-1.0, 1.0, INITIAL_POINTS)
    t_boundary = np.linspace(0.0, 1.0, BOUNDARY_POINTS)
    points = np.concatenate(
        [
            np.stack([x0, np.zeros_like(x0)], axis=1),
            np.stack([-np.ones_like(t_boundary), t_boundary], axis=1),
            np.stack([np.ones_like(t_boundary), t_boundary], axis=1),
        ]
    )
    values = np.concatenate([-np.sin(math.pi * x0), np.zeros(2 * BOUNDARY_POINTS)])
    chosen = rng.choice(len(points), size=n, replace=False)
    return points[chosen], values[chosen, None]


data = None
if args.constraint == "soft":
    data = tuple(torch.tensor(array) for array in initial_and_boundary_data(args.data_points, rng))
    workshop.log(f"initial and boundary data: {len(data[0])} points, u from {data[1].min():.3f} to {data[1].max():.3f}")
else:
    workshop.log("initial and boundary data: none (the hard constraint builds them into the network)")

# %% [markdown]
# ## The network
# A plain multilayer perceptron from (x, t) to one number, with tanh activations: smooth, so
# that its second derivative, which the equation needs, exists and is not zero. Its weights
# start from a Glorot (Xavier) normal draw, as in the paper.


# %%
def make_network(layers: int, width: int) -> torch.nn.Sequential:
    sizes = [2] + [width] * layers + [1]
    modules = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        linear = torch.nn.Linear(fan_in, fan_out)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        modules += [linear, torch.nn.Tanh()]
    return torch.nn.Sequential(*modules[:-1])  # no tanh after the last layer: u may be any number


network = make_network(args.layers, args.width)
print(network)
workshop.log(f"weights: {sum(p.numel() for p in network.parameters()):,}")

# %% [markdown]
# ## The physics: residual and loss
# The residual u_t + u u_x - nu u_xx is zero where the network solves the equation. Its
# derivatives are taken with respect to the network's *inputs* by `torch.autograd.grad`, with
# `create_graph=True` so that the loss built from them can itself be differentiated with respect
# to the weights. The hard constraint writes u = -sin(pi x) + t (1 - x^2) N(x, t): at t = 0 and at
# x = +-1 it is right whatever the network N says.

# %%
NU = 0.01 / math.pi  # the viscosity of the benchmark


class BurgersPINN(torch.nn.Module):
    """u(x, t) from the network, the points where the equation must hold, and the loss.

    The points are buffers, so `.to(device, dtype)` moves and converts them with the weights.
    """

    def __init__(self, network: torch.nn.Module, constraint: str, collocation: torch.Tensor, data=None):
        super().__init__()
        self.network = network
        self.hard = constraint == "hard"
        self.register_buffer("collocation", collocation)
        self.register_buffer("data_points", None if data is None else data[0])
        self.register_buffer("data_values", None if data is None else data[1])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x, t = points[:, :1], points[:, 1:]
        out = self.network(torch.cat([x, 2 * t - 1], dim=1))  # both inputs in [-1, 1]
        if self.hard:
            return -torch.sin(math.pi * x) + t * (1 - x**2) * out
        return out

    def residual(self, points: torch.Tensor) -> torch.Tensor:
        points = points.detach().requires_grad_()
        u = self(points)
        u_x, u_t = torch.autograd.grad(u.sum(), points, create_graph=True)[0].unbind(dim=1)
        u_xx = torch.autograd.grad(u_x.sum(), points, create_graph=True)[0][:, 0]
        return u_t + u[:, 0] * u_x - NU * u_xx

    def loss(self) -> torch.Tensor:
        """Mean squared residual, plus the data misfit at the initial and boundary points (soft only)."""
        loss = self.residual(self.collocation).square().mean()
        if self.data_points is not None:
            loss = loss + (self(self.data_points) - self.data_values).square().mean()
        return loss


model = BurgersPINN(network, args.constraint, collocation, data).to(device=device, dtype=getattr(torch, args.dtype))
workshop.log(f"loss of the untrained network: {model.loss().item():.4g}")

# %% [markdown]
# ## The yardstick: the exact solution
# A loss near zero does not prove the network right, so we measure it against the exact
# solution on the paper's grid: 256 values of x from -1 to 1, and t = 0, 0.01, ..., 0.99. The
# Cole-Hopf transform u = -2 nu (log phi)_x turns Burgers' equation into the heat equation,
# solved by a Gaussian average; with eta = sqrt(4 nu t) z,
#
#     u(t, x) = - int sin(pi (x - eta)) w dz / int w dz,   w = exp(-z^2 - cos(pi (x - eta)) / (2 pi nu)).
#
# The exponent spans about 100, so each integral is a trapezoid sum with the largest exponent
# subtracted first (the log-sum-exp trick). The integrand is smooth and decays like a Gaussian,
# so the trapezoid rule converges faster than any power of the node spacing: on this grid 301
# nodes already agree with 4001 to 1e-14, and `--quick` takes those (the full run takes 1201).


# %%
def exact_solution(x: np.ndarray, t: np.ndarray, nodes: int = 1201, nu: float = NU) -> np.ndarray:
    """u(t, x) on the grid t x x: an array of shape (len(t), len(x)), row i at time t[i]."""
    x = np.asarray(x, dtype=np.float64)
    # Beyond |z| = half_width the weight is e^-40 below its peak wherever the peak is.
    half_width = math.sqrt(1 / (math.pi * nu) + 40)
    z = np.linspace(-half_width, half_width, nodes)
    u = np.empty((len(t), len(x)))
    for row, time_value in enumerate(np.asarray(t, dtype=np.float64)):
        shifted = x[:, None] - math.sqrt(4 * nu * time_value) * z[None, :]
        exponent = -z**2 - np.cos(math.pi * shifted) / (2 * math.pi * nu)
        weight = np.exp(exponent - exponent.max(axis=1, keepdims=True))
        u[row] = -(np.sin(math.pi * shifted) * weight).sum(axis=1) / weight.sum(axis=1)
    return u


x_grid = np.linspace(-1.0, 1.0, 256)
t_grid = np.arange(100) / 100
u_exact = exact_solution(x_grid, t_grid, nodes=301 if args.quick else 1201)  # row i is at time t_grid[i]
centre = len(x_grid) // 2
workshop.log(
    f"exact solution: {u_exact.shape} (t, x); at t = {t_grid[-1]:.2f} u drops from {u_exact[-1, centre - 1]:.3f} "
    f"to {u_exact[-1, centre]:.3f} between x = {x_grid[centre - 1]:.4f} and {x_grid[centre]:.4f}: the near-shock"
)

# %% [markdown]
# The score is the relative L2 error over all 25,600 grid points, ||u_net - u|| / ||u||. The
# untrained network, which already has the initial and boundary conditions if they are hard,
# is the baseline every trained network must beat.

# %%
grid = torch.tensor(np.stack(np.meshgrid(x_grid, t_grid), axis=-1).reshape(-1, 2), device=device)


def predict(model: BurgersPINN, points: torch.Tensor) -> np.ndarray:
    """The network's u at `points`, as float64 NumPy, whatever the model's precision."""
    with torch.no_grad():
        return model(points.to(model.collocation.dtype))[:, 0].double().cpu().numpy()


def relative_error() -> float:
    u = predict(model, grid).reshape(u_exact.shape)
    return float(np.linalg.norm(u - u_exact) / np.linalg.norm(u_exact))


untrained_error = relative_error()
workshop.log(f"untrained network: relative L2 error {untrained_error:.4g}")

# %% [markdown]
# ## Training: Adam, then L-BFGS
# Adam's first steps are robust from a random start. Then L-BFGS, a quasi-Newton method with a
# strong-Wolfe line search, converges much faster than a first-order method on this small
# problem where every step sees all the points. Each call of `lbfgs.step` runs one block of
# `--log-every` iterations, and L-BFGS keeps its memory of the curvature from one call to the
# next. When a block ends early, no step along L-BFGS's direction lowers the loss any more: it
# has stalled, and training ends there.

# %%
adam = torch.optim.Adam(model.parameters(), lr=1e-3)
lbfgs = torch.optim.LBFGS(
    model.parameters(),
    lr=1.0,
    history_size=50,
    tolerance_grad=0.0,  # never stop on a small gradient: the run is capped by its step count
    tolerance_change=0.0,
    line_search_fn="strong_wolfe",
)


def adam_steps(steps: int) -> int:
    for _ in range(steps):
        adam.zero_grad()
        model.loss().backward()
        adam.step()
    return steps


def lbfgs_steps(steps: int) -> int:
    """`steps` L-BFGS iterations, or fewer if it stalls; returns how many it made."""

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    # Room for every line search (at most 25 evaluations each), so that only a stall ends a block early.
    lbfgs.param_groups[0].update(max_iter=steps, max_eval=25 * steps)
    state = lbfgs.state[lbfgs.param_groups[0]["params"][0]]
    before = state.get("n_iter", 0)
    lbfgs.step(closure)
    return state["n_iter"] - before


progress = workshop.Progress(total=args.adam_steps + args.lbfgs_steps, unit="steps", label="step")
history = [{"step": 0, "time_s": 0.0, "loss": model.loss().item(), "rel_l2_error": untrained_error, "phase": "start"}]
step, elapsed = 0, 0.0  # training time only: the error checks in between are not counted
for phase, steps, run_steps in (("adam", args.adam_steps, adam_steps), ("lbfgs", args.lbfgs_steps, lbfgs_steps)):
    done = 0
    while done < steps:
        block_start = time.perf_counter()
        block = min(args.log_every, steps - done)
        made = run_steps(block)
        done, step = done + made, step + made
        elapsed += time.perf_counter() - block_start
        loss, error = model.loss().item(), relative_error()
        history.append({"step": step, "time_s": round(elapsed, 3), "loss": loss, "rel_l2_error": error, "phase": phase})
        progress.step(step, items=made, loss=loss, rel_l2_error=error)
        if made < block:
            workshop.log(f"L-BFGS stalled at step {step}: no step lowers the loss any more; training ends here")
            break

# %% [markdown]
# ## Evaluation: against the exact solution, the untrained network and the paper

# %%
PAPER_REL_L2_ERROR = 6.7e-4  # Raissi et al. 2019: 8 hidden layers of 20, 10,000 points, soft constraint

u_pred = predict(model, grid).reshape(u_exact.shape)
rel_l2_error = float(np.linalg.norm(u_pred - u_exact) / np.linalg.norm(u_exact))
train_time_s = round(history[-1]["time_s"], 2)
workshop.log(
    f"relative L2 error {rel_l2_error:.3g} after {step} steps in {train_time_s:.0f} s of training; "
    f"untrained network {untrained_error:.3g}; the paper {PAPER_REL_L2_ERROR:g}"
)

# %% [markdown]
# ## Figures
# The prediction over the whole domain, and three time slices against the exact solution (the
# slices of the paper's Figure 1).

# %%
SLICE_TIMES = (0.25, 0.50, 0.75)

figure, axes = plt.subplots(figsize=(8, 3.2))
image = axes.imshow(u_pred.T, extent=[t_grid[0], t_grid[-1], -1, 1], origin="lower", aspect="auto", cmap="RdBu_r")
for time_value in SLICE_TIMES:
    axes.axvline(time_value, color="k", linewidth=0.8, linestyle="--")
figure.colorbar(image, ax=axes, label="u(t, x)")
axes.set(xlabel="t", ylabel="x", title="PINN prediction of u(t, x); dashed: the times of the slice plot")
workshop.save_figure(figure, args.out / "solution.png")

figure, axes = plt.subplots(1, len(SLICE_TIMES), figsize=(10, 3.2), sharey=True)
for ax, time_value in zip(axes, SLICE_TIMES):
    row = int(np.argmin(np.abs(t_grid - time_value)))
    ax.plot(x_grid, u_exact[row], color="tab:blue", linewidth=3, label="exact")
    ax.plot(x_grid, u_pred[row], color="tab:red", linestyle="--", linewidth=1.5, label="PINN")
    ax.set(xlabel="x", title=f"t = {t_grid[row]:.2f}")
axes[0].set_ylabel("u(t, x)")
axes[0].legend()
workshop.save_figure(figure, args.out / "slices.png")

# %% [markdown]
# Where the error is (on a log scale), and how the loss and the error fell during training.

# %%
pointwise_error = np.abs(u_pred - u_exact)
figure, axes = plt.subplots(figsize=(8, 3.2))
image = axes.imshow(
    pointwise_error.T.clip(min=1e-8),
    extent=[t_grid[0], t_grid[-1], -1, 1],
    origin="lower",
    aspect="auto",
    cmap="viridis",
    norm=LogNorm(vmin=1e-6, vmax=max(pointwise_error.max(), 1e-5)),
)
figure.colorbar(image, ax=axes, label="|PINN - exact|")
axes.set(xlabel="t", ylabel="x", title="Pointwise error")
workshop.save_figure(figure, args.out / "error.png")

times = [row["time_s"] for row in history]
figure, axes = plt.subplots(figsize=(7, 3.6))
axes.semilogy(times, [row["loss"] for row in history], label="loss")
axes.semilogy(times, [row["rel_l2_error"] for row in history], label="relative L2 error vs exact")
axes.axhline(PAPER_REL_L2_ERROR, color="gray", linestyle=":", label=f"paper's error {PAPER_REL_L2_ERROR:g}")
adam_end = [row["time_s"] for row in history if row["phase"] == "adam"]
if adam_end and history[-1]["phase"] == "lbfgs":
    axes.axvline(adam_end[-1], color="k", linewidth=0.8, linestyle="--")
    axes.annotate(" Adam → L-BFGS", (adam_end[-1], 0.98), xycoords=("data", "axes fraction"), fontsize=8, va="top")
axes.set(xlabel="training time (s)", title="Loss and error during training")
axes.legend(fontsize=8)
workshop.save_figure(figure, args.out / "training.png")

# %% [markdown]
# ## Results
# The prediction on the grid (`prediction.npz`: x, t, and u with row i at time t[i]), to compare
# with your own solver, and `metrics.json` with the numbers, the settings and the history.

# %%
buffer = io.BytesIO()
np.savez(buffer, x=x_grid, t=t_grid, u=u_pred)
workshop.atomic_write_bytes(args.out / "prediction.npz", buffer.getvalue())
workshop.log(f"wrote {args.out / 'prediction.npz'}")

settings = {
    "layers": args.layers,
    "width": args.width,
    "points": args.points,
    "adam_steps": args.adam_steps,
    "lbfgs_steps": args.lbfgs_steps,
    "constraint": args.constraint,
    "dtype": args.dtype,
    "seed": args.seed,
}
if args.constraint == "soft":
    settings["data_points"] = args.data_points
reached = [row["time_s"] for row in history if row["rel_l2_error"] <= 1e-3]
metrics = {
    "rel_l2_error": rel_l2_error,
    "untrained_rel_l2_error": untrained_error,
    "paper_rel_l2_error": PAPER_REL_L2_ERROR,
    "train_time_s": train_time_s,
    "time_to_error_1e-3_s": reached[0] if reached else None,
    "steps": step,
    "settings": settings,
    "history": history,
}
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
workshop.report_result(rel_l2_error=rel_l2_error, steps=step, train_time_s=train_time_s)
