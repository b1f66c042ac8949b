"""Benchmark: self-play on Connect Four (examples/self_play.py), full and quick, judged by its
exact solver (examples/game_solver.py).

All runs happen in a scratch copy of the repository (`make results` writes what the site
shows). Targets (issue 11), on the solved 4 x 5 board: the full run takes at most 20 minutes on
this 2-core machine; network plus search plays an optimal move in at least 95% of the fixed
positions and the network alone in at least 80%; the agent wins at least 99% of its games
against random play and never loses a game against the perfect player that the solved value
says it can draw or win; the quick run takes at most 15 s, imports included. Also here, not in
the tests: the solved value of the 4 x 5 board by plain minimax over every position, the
second, independent method, next to alpha-beta's (the minimax takes about a minute). Beside the
wins against random play, two exact references from the full run's solver: how often a perfect
player wins against random play, and the most any player can.
"""

import time

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "self_play"
FULL_TARGET_S = 20 * 60
QUICK_TARGET_S = 15
SEARCH_TARGET, NETWORK_TARGET, RANDOM_TARGET = 0.95, 0.80, 0.99
BOARD = "connect_four(rows=4,columns=5)"


def solved_both_ways() -> tuple[int, int, float, float]:
    """The empty 4 x 5 board's value by alpha-beta with a table and by plain minimax, and their times."""
    import sys

    sys.path.insert(0, "examples")
    from game_solver import LineGame, Position, Solver, minimax_value

    rules = LineGame.from_openspiel(BOARD)
    started = time.perf_counter()
    alpha_beta = Solver(rules).value(Position(rules))
    alpha_beta_s = time.perf_counter() - started
    started = time.perf_counter()
    plain = minimax_value(Position(rules))
    return alpha_beta, plain, alpha_beta_s, time.perf_counter() - started


def rows() -> list[Row]:
    with FullRuns() as runs:
        full_run = runs.script("self_play")
        quick_run = runs.script("self_play", "--quick", out="results/self_play_quick")
    full, quick = full_run.metrics, quick_run.metrics
    alpha_beta, plain, alpha_beta_s, plain_s = solved_both_ways()
    lost = sum(game["result"] < game["allowed"] for game in full["perfect_games"])
    threads = full["run"]["threads"]
    return [
        Row(SECTION, f"solved value of {BOARD}: alpha-beta ({alpha_beta_s:.1f} s) = plain minimax ({plain_s:.0f} s)", f"{alpha_beta} = {plain}", "equal", alpha_beta == plain),
        Row(SECTION, f"full run: network + search, optimal moves ({full['positions']} positions)", f"{full['optimal_rate_search']:.1%}", f">= {SEARCH_TARGET:.0%}", full["optimal_rate_search"] >= SEARCH_TARGET),
        Row(SECTION, "full run: network alone, optimal moves", f"{full['optimal_rate_network']:.1%}", f">= {NETWORK_TARGET:.0%}", full["optimal_rate_network"] >= NETWORK_TARGET),
        Row(SECTION, "untrained network + search, optimal moves (reference)", f"{full['optimal_rate_untrained_search']:.1%}"),
        Row(SECTION, "random legal moves, optimal moves (reference)", f"{full['random_move_rate']:.1%}"),
        Row(SECTION, f"full run: wins against random play ({len(full['history'])} iterations)", f"{full['random_win_rate']:.1%}", f">= {RANDOM_TARGET:.0%}", full["random_win_rate"] >= RANDOM_TARGET),
        Row(SECTION, "a perfect player's wins against random play (reference, exact)", f"{full['random_win_rate_limits']['perfect_player']:.1%}"),
        Row(SECTION, "the best possible wins against random play (limit, exact)", f"{full['random_win_rate_limits']['best_possible']:.1%}"),
        Row(SECTION, f"full run: games against the perfect player lost beyond the solved value (of {len(full['perfect_games'])})", str(lost), "0", lost == 0),
        Row(SECTION, f"full run: wall time ({threads} thread{'s' if threads != 1 else ''})", f"{full_run.wall_s:.0f} s", f"<= {FULL_TARGET_S} s", full_run.wall_s <= FULL_TARGET_S),
        Row(SECTION, "quick run: network + search gain over untrained", f"{quick['optimal_rate_search'] - quick['optimal_rate_untrained_search']:+.1%}"),
        Row(SECTION, "quick run: wall time", f"{quick_run.wall_s:.1f} s", f"<= {QUICK_TARGET_S} s", quick_run.wall_s <= QUICK_TARGET_S),
    ]
