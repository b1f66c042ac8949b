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
the job.

We check the result against the exact solution, which we compute ourselves (Cole-Hopf transform
plus quadrature), on the paper's 256 x 100 grid. The paper reports a relative L2 error of 6.7e-4.
"""

# %% [markdown]
# ## Imports
# torch for the network, NumPy for the exact solution, matplotlib for the figures;
# `workshop` holds the small chores every example of this workshop shares.

# %%
import io
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm

import workshop

NU = 0.01 / math.pi  # the viscosity of the benchmark
PAPER_REL_L2_ERROR = 6.7e-4  # Raissi et al. 2019, their 9-layer network with 10,000 points
SLICE_TIMES = (0.25, 0.50, 0.75)  # the slices of the paper's Figure 1

# Full run / --quick: the defaults of the options below. Both are capped by iteration counts, not
# by wall time, so they give the same result on a fast laptop and on a busy node. A run also ends
# when L-BFGS stalls (no step lowers the loss any more), unless --float64-steps asks float64 to
# take over from there.
FULL = {"layers": 8, "width": 20, "points": 10_000, "adam_steps": 300, "lbfgs_steps": 8_000, "float64_steps": 0}
QUICK = {"layers": 8, "width": 20, "points": 4_000, "adam_steps": 200, "lbfgs_steps": 1_000, "float64_steps": 0}


def main() -> None:
    parser = workshop.make_parser(__doc__.split("\n\n")[0], default_out="results/burgers_pinn")
    for name, help_text in [
        ("layers", "number of hidden layers of the network"),
        ("width", "units in each hidden layer"),
        ("points", "collocation points where the PDE residual is enforced"),
        ("adam-steps", "Adam warm-up steps"),
        ("lbfgs-steps", "L-BFGS iterations after the warm-up"),
        ("float64-steps", "L-BFGS iterations at the end in float64, or more if float32 stalls before (with --dtype float32)"),
    ]:
        key = name.replace("-", "_")
        quick = f"; {QUICK[key]} with --quick" if QUICK[key] != FULL[key] else ""
        parser.add_argument(
            f"--{name}",
            type=workshop.non_negative_int if name.endswith("steps") else workshop.positive_int,
            help=f"{help_text} (default: {FULL[key]}{quick})",
        )
    parser.add_argument(
        "--data-points",
        type=workshop.positive_int,
        default=100,
        help="initial and boundary points in the data misfit; --constraint soft only (default: 100, as in the paper)",
    )
    parser.add_argument(
        "--constraint",
        choices=["hard", "soft"],
        default="hard",
        help="hard: build u(0,x) and u(t,+-1) into the network, u = -sin(pi x) + t (1 - x^2) N(x, t); "
        "soft: fit them as a loss term, as the paper does (default: hard)",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="floating-point precision (default: float32)"
    )
    parser.add_argument(
        "--log-every", type=workshop.positive_int, default=50, help="steps between progress lines (default: 50)"
    )
    args = workshop.parse_args(parser)
    settings = FULL | (QUICK if args.quick else {})
    settings |= {key: getattr(args, key) for key in FULL if getattr(args, key) is not None}
    if settings["float64_steps"] > settings["lbfgs_steps"]:
        raise workshop.UsageError(
            f"--float64-steps {settings['float64_steps']} is more than the {settings['lbfgs_steps']} L-BFGS steps; "
            "make it at most --lbfgs-steps"
        )
    if args.dtype == "float64":
        settings["float64_steps"] = settings["lbfgs_steps"]  # every step is in float64 anyway
    settings |= {"constraint": args.constraint, "dtype": args.dtype, "seed": args.seed}
    if args.constraint == "soft":
        settings["data_points"] = args.data_points
    started = time.perf_counter()

    # The yardstick: the exact solution on the paper's grid, x: 256 points from -1 to 1,
    # t = 0, 0.01, ..., 0.99; row i of u_exact is at time t_grid[i].
    x_grid = np.linspace(-1.0, 1.0, 256)
    t_grid = np.arange(100) / 100
    u_exact = exact_solution(x_grid, t_grid)

    # Threads from the allocation, the GPU if there is one, the seed, and the points where the
    # equation must hold.
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()
    workshop.seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    collocation = torch.tensor(latin_hypercube(settings["points"], rng))  # columns x, t
    data = None  # with the hard constraint the network satisfies the conditions by construction
    if args.constraint == "soft":
        data = tuple(torch.tensor(array) for array in initial_and_boundary_data(args.data_points, rng))
    network = make_network(settings["layers"], settings["width"])
    model = BurgersPINN(network, args.constraint, collocation, data).to(device=device, dtype=getattr(torch, args.dtype))
    grid = torch.tensor(np.stack(np.meshgrid(x_grid, t_grid), axis=-1).reshape(-1, 2), device=device)

    def relative_error() -> float:
        u = predict(model, grid).reshape(u_exact.shape)
        return float(np.linalg.norm(u - u_exact) / np.linalg.norm(u_exact))

    workshop.log(
        f"PINN: {settings['layers']} x {settings['width']} tanh, {settings['points']} collocation points, "
        f"{args.constraint} constraint, {args.dtype}; {settings['adam_steps']} Adam + {settings['lbfgs_steps']} "
        f"L-BFGS steps, the last {settings['float64_steps']} in float64"
    )

    # Adam warm-up, then L-BFGS; one progress line per block of steps.
    history = train(model, relative_error, settings, args.log_every)

    # The results: metrics, the prediction on the grid, the figures.
    u_pred = predict(model, grid).reshape(u_exact.shape)
    error = float(np.linalg.norm(u_pred - u_exact) / np.linalg.norm(u_exact))
    reached = [row["time_s"] for row in history if row["rel_l2_error"] <= 1e-3]
    metrics = {
        "rel_l2_error": error,
        "untrained_rel_l2_error": history[0]["rel_l2_error"],
        "paper_rel_l2_error": PAPER_REL_L2_ERROR,
        "train_time_s": round(history[-1]["time_s"], 2),
        "time_to_error_1e-3_s": reached[0] if reached else None,
        "steps": history[-1]["step"],
        "settings": settings,
        "history": history,
    }
    save_prediction(args.out / "prediction.npz", x_grid, t_grid, u_pred)
    plot_solution(args.out / "solution.png", x_grid, t_grid, u_pred)
    plot_slices(args.out / "slices.png", x_grid, t_grid, u_pred, u_exact)
    plot_error(args.out / "error.png", x_grid, t_grid, np.abs(u_pred - u_exact))
    plot_training(args.out / "training.png", history)
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device=str(device), threads=threads))
    workshop.report_result(rel_l2_error=error, steps=metrics["steps"], train_time_s=metrics["train_time_s"])


# %% [markdown]
# ## The exact solution by the Cole-Hopf transform
# The substitution u = -2 nu (log phi)_x turns Burgers' equation into the heat equation
# phi_t = nu phi_xx, solved by a Gaussian convolution. Back-substituting gives, with
# eta = sqrt(4 nu t) z,
#
#     u(t, x) = - int sin(pi (x - eta)) w dz / int w dz,
#     w = exp(-z^2 - cos(pi (x - eta)) / (2 pi nu)).
#
# The exponent spans about 100 (e^100 overflows nothing in float64, but the terms cancel
# badly), so each integral is a trapezoid sum with the largest exponent subtracted first, the
# log-sum-exp trick. The integrand is smooth and decays like a Gaussian, so the trapezoid rule
# converges faster than any power of the node spacing.


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


# %% [markdown]
# ## Collocation points by Latin hypercube sampling
# Split each axis into n equal strata and put exactly one point in each stratum of each axis:
# the points cover the domain more evenly than independent uniform draws.


# %%
def latin_hypercube(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points in [-1, 1] x [0, 1], columns x and t."""
    unit = np.stack([(rng.permutation(n) + rng.random(n)) / n for _ in range(2)], axis=1)
    return unit * np.array([2.0, 1.0]) - np.array([1.0, 0.0])


def initial_and_boundary_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points drawn, as in the paper, from 256 initial points (t = 0) and 100 on each boundary."""
    x0 = np.linspace(-1.0, 1.0, 256)
    t_boundary = np.linspace(0.0, 1.0, 100)
    points = np.concatenate(
        [
            np.stack([x0, np.zeros_like(x0)], axis=1),
            np.stack([-np.ones_like(t_boundary), t_boundary], axis=1),
            np.stack([np.ones_like(t_boundary), t_boundary], axis=1),
        ]
    )
    values = np.concatenate([-np.sin(math.pi * x0), np.zeros(2 * len(t_boundary))])
    chosen = rng.choice(len(points), size=min(n, len(points)), replace=False)
    return points[chosen], values[chosen, None]


# %% [markdown]
# ## The network and the PDE residual
# The residual u_t + u u_x - nu u_xx needs first and second derivatives of the network's output
# with respect to its inputs: `torch.autograd.grad` with `create_graph=True`, so that the loss
# built from them can itself be differentiated with respect to the weights.


# %%
def make_network(layers: int, width: int) -> torch.nn.Sequential:
    """A tanh MLP from (x, t) to one number, with Glorot-normal weights as in the paper."""
    sizes = [2] + [width] * layers + [1]
    modules = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        linear = torch.nn.Linear(fan_in, fan_out)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        modules += [linear, torch.nn.Tanh()]
    return torch.nn.Sequential(*modules[:-1])  # no tanh after the last layer


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
            # -sin(pi x) at t = 0 and 0 at x = +-1, whatever the network says.
            return -torch.sin(math.pi * x) + t * (1 - x**2) * out
        return out

    def residual(self, points: torch.Tensor) -> torch.Tensor:
        """u_t + u u_x - nu u_xx at each point: zero where the network solves the equation."""
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


def predict(model: BurgersPINN, points: torch.Tensor) -> np.ndarray:
    """The network's u at `points`, as float64 NumPy, whatever the model's precision."""
    with torch.no_grad():
        return model(points.to(model.collocation.dtype))[:, 0].double().cpu().numpy()


# %% [markdown]
# ## The training loop
# Adam's first steps are robust from a random start; then L-BFGS, a quasi-Newton method with a
# strong-Wolfe line search, converges much faster than a first-order method on this small,
# full-batch problem. Each L-BFGS call runs one block of iterations and
# keeps its curvature memory between calls.


# %%
def train(model: BurgersPINN, relative_error, settings: dict, log_every: int) -> list[dict]:
    """Run the phases; return the history: step, training time, loss and error after each block."""
    phases = [
        ("adam", settings["adam_steps"]),
        ("lbfgs", settings["lbfgs_steps"] - settings["float64_steps"]),
        ("lbfgs-float64", settings["float64_steps"]),
    ]
    progress = workshop.Progress(total=sum(steps for _, steps in phases), unit="steps", label="step")
    history = [{"step": 0, "time_s": 0.0, "loss": model.loss().item(), "rel_l2_error": relative_error(), "phase": "start"}]
    workshop.log(f"untrained network: loss {history[0]['loss']:.4g}  rel_l2_error {history[0]['rel_l2_error']:.4g}")
    step, elapsed = 0, 0.0  # training time only: the error checks in between are not counted
    handed_on = 0  # L-BFGS steps that a stalled float32 phase leaves to the float64 phase
    for phase, steps in phases:
        steps += handed_on
        if steps == 0:
            continue
        if phase == "lbfgs-float64" and model.collocation.dtype != torch.float64:
            model.double()  # the same weights and points, in float64 from here on
            workshop.log(f"switching to float64 for the last {steps} L-BFGS steps")
        optimizer = make_optimizer(phase, model)
        done = 0
        while done < steps:
            block_start = time.perf_counter()
            block = min(log_every, steps - done)
            made = adam_steps(optimizer, model, block) if phase == "adam" else lbfgs_steps(optimizer, model, block)
            done, step = done + made, step + made
            elapsed += time.perf_counter() - block_start
            loss, error = model.loss().item(), relative_error()
            history.append({"step": step, "time_s": round(elapsed, 3), "loss": loss, "rel_l2_error": error, "phase": phase})
            progress.step(step, items=made, loss=loss, rel_l2_error=error)
            if made < block:
                # L-BFGS found no step that lowers the loss: at this precision it is stuck for good.
                handed_on = steps - done if phase == "lbfgs" and settings["float64_steps"] else 0
                workshop.log(
                    f"L-BFGS stalled at step {step} in {str(model.collocation.dtype).removeprefix('torch.')}; "
                    + ("float64 takes over now" if handed_on else "training ends here")
                )
                break
        if done < steps and not handed_on:
            break
    return history


def make_optimizer(phase: str, model: BurgersPINN) -> torch.optim.Optimizer:
    if phase == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    return torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        history_size=50,
        tolerance_grad=0.0,  # never stop early: the run is capped by its iteration count
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )


def adam_steps(adam: torch.optim.Adam, model: BurgersPINN, steps: int) -> int:
    for _ in range(steps):
        adam.zero_grad()
        model.loss().backward()
        adam.step()
    return steps


def lbfgs_steps(lbfgs: torch.optim.LBFGS, model: BurgersPINN, steps: int) -> int:
    """`steps` L-BFGS iterations, or fewer if it stalls: no step along its direction lowers the loss."""

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    # Room for every line search (at most 25 evaluations each), so that only a stall ends a block early.
    lbfgs.param_groups[0].update(max_iter=steps, max_eval=25 * steps)
    state = lbfgs.state[lbfgs.param_groups[0]["params"][0]]  # L-BFGS keeps its memory across calls
    before = state.get("n_iter", 0)
    lbfgs.step(closure)
    return state["n_iter"] - before


# %% [markdown]
# ## Saving the prediction and drawing the figures


# %%
def save_prediction(path: Path, x: np.ndarray, t: np.ndarray, u: np.ndarray) -> None:
    """prediction.npz: x (256,), t (100,), u (100, 256) with row i at time t[i]."""
    buffer = io.BytesIO()
    np.savez(buffer, x=x, t=t, u=u)
    workshop.atomic_write_bytes(path, buffer.getvalue())
    workshop.log(f"wrote {path}")


def plot_solution(path: Path, x: np.ndarray, t: np.ndarray, u: np.ndarray) -> None:
    figure, axes = plt.subplots(figsize=(8, 3.2))
    image = axes.imshow(u.T, extent=[t[0], t[-1], x[0], x[-1]], origin="lower", aspect="auto", cmap="RdBu_r")
    for time_value in SLICE_TIMES:
        axes.axvline(time_value, color="k", linewidth=0.8, linestyle="--")
    figure.colorbar(image, ax=axes, label="u(t, x)")
    axes.set(xlabel="t", ylabel="x", title="PINN prediction of u(t, x); dashed: the times of the slice plot")
    workshop.save_figure(figure, path)


def plot_slices(path: Path, x: np.ndarray, t: np.ndarray, u: np.ndarray, u_exact: np.ndarray) -> None:
    figure, axes = plt.subplots(1, len(SLICE_TIMES), figsize=(10, 3.2), sharey=True)
    for ax, time_value in zip(axes, SLICE_TIMES):
        row = int(np.argmin(np.abs(t - time_value)))
        ax.plot(x, u_exact[row], color="tab:blue", linewidth=3, label="exact")
        ax.plot(x, u[row], color="tab:red", linestyle="--", linewidth=1.5, label="PINN")
        ax.set(xlabel="x", title=f"t = {t[row]:.2f}")
    axes[0].set_ylabel("u(t, x)")
    axes[0].legend()
    workshop.save_figure(figure, path)


def plot_error(path: Path, x: np.ndarray, t: np.ndarray, error: np.ndarray) -> None:
    figure, axes = plt.subplots(figsize=(8, 3.2))
    image = axes.imshow(
        error.T.clip(min=1e-8),
        extent=[t[0], t[-1], x[0], x[-1]],
        origin="lower",
        aspect="auto",
        cmap="viridis",
        norm=LogNorm(vmin=1e-6, vmax=max(error.max(), 1e-5)),
    )
    figure.colorbar(image, ax=axes, label="|PINN - exact|")
    axes.set(xlabel="t", ylabel="x", title="Pointwise error")
    workshop.save_figure(figure, path)


def plot_training(path: Path, history: list[dict]) -> None:
    times = [row["time_s"] for row in history]
    figure, axes = plt.subplots(figsize=(7, 3.6))
    switches = {"lbfgs": " Adam → L-BFGS", "lbfgs-float64": " float32 → float64"}
    axes.semilogy(times, [row["loss"] for row in history], label="loss")
    axes.semilogy(times, [row["rel_l2_error"] for row in history], label="relative L2 error vs exact")
    axes.axhline(PAPER_REL_L2_ERROR, color="gray", linestyle=":", label=f"paper's error {PAPER_REL_L2_ERROR:g}")
    for before, after in zip(history[1:], history[2:]):
        if before["phase"] != after["phase"]:  # a new phase starts: mark it
            axes.axvline(before["time_s"], color="k", linewidth=0.8, linestyle="--")
            axes.annotate(switches[after["phase"]], (before["time_s"], 0.98), xycoords=("data", "axes fraction"), fontsize=8, va="top")
    axes.set(xlabel="training time (s)", title="Loss and error during training")
    axes.legend(fontsize=8)
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
