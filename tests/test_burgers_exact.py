"""The exact Burgers' solution that examples/burgers_pinn.py measures its network against (Cole-Hopf
transform plus a trapezoid rule in log-sum-exp form) is itself right: the quadrature has
converged, the solution has the symmetries of the problem, and the steepest slope matches the
value Basdevant et al. (1986) published with several independent methods.
"""

import ast
import math

import numpy as np
import pytest

from conftest import REPO

SCRIPT = REPO / "examples" / "burgers_pinn.py"
X = np.linspace(-1.0, 1.0, 256)  # the paper's grid
T = np.arange(100) / 100


def load_exact_solution():
    """exact_solution() from the script. The script is a lesson of top-level cells, so importing it
    would run the whole example: take only the function and the viscosity it defaults to."""
    tree = ast.parse(SCRIPT.read_text())
    wanted = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name == "exact_solution")
        or (isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == ["NU"])
    ]
    assert len(wanted) == 2, "examples/burgers_pinn.py should define NU and exact_solution() at its top level"
    namespace = {"math": math, "np": np}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(SCRIPT), "exec"), namespace)
    return namespace["exact_solution"]


exact_solution = load_exact_solution()


@pytest.fixture(scope="module")
def reference():
    return exact_solution(X, T)


def test_exact_solution_has_converged_two_quadrature_resolutions_agree_to_1e_8(reference):
    coarse = exact_solution(X, T, nodes=601)
    fine = exact_solution(X, T, nodes=4001)
    assert np.abs(coarse - fine).max() < 1e-8, "601 and 4001 quadrature nodes disagree by more than 1e-8"
    assert np.abs(reference - fine).max() < 1e-8, "the default quadrature disagrees with 4001 nodes by more than 1e-8"


def test_exact_solution_starts_from_minus_sine(reference):
    assert np.abs(reference[0] + np.sin(math.pi * X)).max() < 1e-12, "at t = 0 the solution is not -sin(pi x)"


def test_exact_solution_is_odd_in_x_and_zero_at_both_boundaries(reference):
    # The grid is symmetric: column j is at -x of column 255 - j.
    assert np.abs(reference + reference[:, ::-1]).max() < 1e-12, "the solution is not odd in x"
    assert np.abs(reference[:, [0, -1]]).max() < 1e-12, "the solution is not zero at x = -1 and x = 1"


def test_exact_solution_steepest_slope_matches_basdevant_et_al():
    # Basdevant et al., Computers & Fluids 14 (1986): the steepest slope, at x = 0, is
    # -152.00516 at t = 1.6037/pi. A central difference over +-1e-6 is accurate to ~1e-7 here.
    h = 1e-6
    u = exact_solution(np.array([-h, h]), np.array([1.6037 / math.pi]))[0]
    slope = (u[1] - u[0]) / (2 * h)
    assert slope == pytest.approx(-152.00516, abs=5e-3), f"the slope at x = 0, t = 1.6037/pi is {slope}, not -152.00516"


def test_exact_solution_slope_at_the_centre_is_steepest_near_t_1_6037_over_pi():
    h = 1e-6
    times = 1.6037 / math.pi + np.array([-0.02, 0.0, 0.02])
    u = exact_solution(np.array([-h, h]), times)
    slopes = (u[:, 1] - u[:, 0]) / (2 * h)
    assert slopes[1] < slopes[0] and slopes[1] < slopes[2], f"the slope at x = 0 is not steepest at t = 1.6037/pi: {slopes}"
