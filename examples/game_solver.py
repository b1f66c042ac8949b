"""An exact solver for small board games where k in a row wins: tic-tac-toe, and Connect Four
on small boards. It is the judge of examples/self_play.py, and it is written without
OpenSpiel on purpose: the learner takes the rules from OpenSpiel, the judge from here, so a
mistake in either shows up as a disagreement (tests/test_self_play.py plays both side by side).

"Solved" means proved, not estimated: the solver looks at every way the game can go on (the
search skips only lines that cannot change the answer) and returns the game-theoretic value of
a position for the player to move: +1 (a win, whatever the opponent does), 0 (a draw with best
play on both sides) or -1 (a loss against a perfect opponent).

Two independent methods, which must agree:
- `minimax_value`: plain minimax, every position looked at once (a memo keeps each answer);
- `Solver.value`: negamax with alpha-beta pruning and a transposition table, the fast one.

It lives in its own module, not in the lesson script, so that its tests can import it and check
it against known results without training anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple


# --8<-- [start:rules]
@dataclass(frozen=True)
class LineGame:
    """A board of `rows` x `columns` cells; whoever first has `in_row` pieces in a line (across,
    down or diagonal) wins; a full board without such a line is a draw. With `gravity` a move
    names a column and the piece drops to its lowest empty cell (Connect Four); without, a move
    names any empty cell (tic-tac-toe). Cell number `row * columns + column`, row 0 at the bottom:
    a set of cells is one integer with a bit per cell (a bitboard)."""

    rows: int
    columns: int
    in_row: int
    gravity: bool

    @classmethod
    def from_openspiel(cls, game_string: str) -> LineGame:
        """The same game as OpenSpiel's `tic_tac_toe` or `connect_four(rows=..,columns=..,x_in_row=..)`."""
        name, _, params = game_string.partition("(")
        values = dict(re.findall(r"(\w+)\s*=\s*(\w+)", params))
        if name == "tic_tac_toe":
            return cls(3, 3, 3, gravity=False)
        if name == "connect_four":
            return cls(int(values.get("rows", 6)), int(values.get("columns", 7)), int(values.get("x_in_row", 4)), gravity=True)
        raise ValueError(f"the solver knows tic_tac_toe and connect_four, not {name}")

    @cached_property
    def lines_through(self) -> list[list[int]]:
        """For each cell, the winning lines through it, each as a bitboard of `in_row` cells."""
        lines = []
        for row in range(self.rows):
            for column in range(self.columns):
                for d_row, d_column in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    end_row, end_column = row + d_row * (self.in_row - 1), column + d_column * (self.in_row - 1)
                    if 0 <= end_row < self.rows and 0 <= end_column < self.columns:
                        cells = [(row + d_row * i) * self.columns + column + d_column * i for i in range(self.in_row)]
                        lines.append(sum(1 << cell for cell in cells))
        return [[line for line in lines if line >> cell & 1] for cell in range(self.rows * self.columns)]

    @cached_property
    def move_order(self) -> list[int]:
        """Moves to try first in a search: the central ones, which lie on the most lines."""
        moves = range(self.columns) if self.gravity else range(self.rows * self.columns)
        return sorted(moves, key=lambda move: -len(self.lines_through[self.cell_of_move(move, 0)]))

    def cell_of_move(self, move: int, occupied: int) -> int | None:
        """The cell a move fills (None: not a legal move here). Tic-tac-toe's move is its cell;
        OpenSpiel numbers those from the top row, this board from the bottom one."""
        if not self.gravity:
            row, column = divmod(move, self.columns)
            cell = (self.rows - 1 - row) * self.columns + column
            return None if occupied >> cell & 1 else cell
        free = self.column_cells[move] & ~occupied
        return (free & -free).bit_length() - 1 if free else None  # the lowest free cell of the column

    @cached_property
    def column_cells(self) -> list[int]:
        return [sum(1 << (row * self.columns + column) for row in range(self.rows)) for column in range(self.columns)]

    def wins(self, pieces: int, cell: int) -> bool:
        """Does the piece just placed on `cell` complete a line of the player's `pieces`?"""
        return any(pieces & line == line for line in self.lines_through[cell])


class Position(NamedTuple):
    """Whose pieces are where, from the side of the player to move: `mine` and `theirs`. (A
    NamedTuple: the searches make millions of these, and a tuple is the quickest to make.)"""

    game: LineGame
    mine: int = 0
    theirs: int = 0

    @classmethod
    def after(cls, game: LineGame, moves: list[int]) -> Position:
        """The position after a move sequence from the empty board (OpenSpiel's action numbers)."""
        position = cls(game)
        for move in moves:
            position, won = position.play(move)
            if won:
                raise ValueError(f"the game is over after {moves}")
        return position

    def legal_moves(self) -> list[int]:
        occupied = self.mine | self.theirs
        return [move for move in self.game.move_order if self.game.cell_of_move(move, occupied) is not None]

    def play(self, move: int) -> tuple[Position, bool]:
        """The position after `move`, seen from the opponent's side, and whether the move won."""
        cell = self.game.cell_of_move(move, self.mine | self.theirs)
        mine = self.mine | 1 << cell
        return Position(self.game, self.theirs, mine), self.game.wins(mine, cell)

    @property
    def key(self) -> int:
        """One integer per position, for the memo and the transposition table."""
        return self.mine | self.theirs << (self.game.rows * self.game.columns)
# --8<-- [end:rules]


# --8<-- [start:minimax]
def minimax_value(position: Position, memo: dict[int, int] | None = None) -> int:
    """Plain minimax in negamax form: my value is the best of minus my opponent's values after
    each of my moves. No pruning: every reachable position is looked at (once, thanks to `memo`)."""
    memo = {} if memo is None else memo
    if position.key not in memo:
        moves = position.legal_moves()
        best = -1 if moves else 0  # no move left: the board is full, a draw
        for move in moves:
            child, won = position.play(move)
            best = max(best, 1 if won else -minimax_value(child, memo))
        memo[position.key] = best
    return memo[position.key]
# --8<-- [end:minimax]


# --8<-- [start:alphabeta]
EXACT, LOWER, UPPER = 0, 1, 2  # what a transposition-table entry knows: the value, or a bound on it


class Solver:
    """Negamax with alpha-beta pruning and a transposition table. `value(position)` is exact.

    Alpha-beta: while looking at my moves, `alpha` is what I am already sure of and `beta` what
    my opponent is already sure to hold me to. Once one move reaches `beta` the other moves
    cannot matter (the opponent would not allow this position): they are skipped. The
    transposition table remembers each position's answer, or the bound a cut-off proved, because
    the same position is reached by many move orders."""

    def __init__(self, game: LineGame):
        self.game = game
        self.table: dict[int, tuple[int, int]] = {}
        self.exact: dict[int, int] = {}  # the answers of value(): asked again, answered at once
        self.positions_searched = 0

    def value(self, position: Position) -> int:
        if position.key not in self.exact:
            self.exact[position.key] = self.search(position, -1, 1)  # values are -1, 0 or +1: this window is exact
        return self.exact[position.key]

    def search(self, position: Position, alpha: int, beta: int) -> int:
        self.positions_searched += 1
        entry = self.table.get(position.key)
        if entry is not None:
            value, kind = entry
            if kind == EXACT or (kind == LOWER and value >= beta) or (kind == UPPER and value <= alpha):
                return value
        moves = position.legal_moves()
        if not moves:
            return 0  # a full board: a draw
        children = []
        for move in moves:  # a move that wins at once ends the search of this position
            child, won = position.play(move)
            if won:
                self.table[position.key] = (1, EXACT)
                return 1
            children.append((move, child))
        # Where the opponent could win at once, I must block: one such cell leaves one move worth
        # searching; two or more, and I cannot block them all.
        their_turn = Position(self.game, position.theirs, position.mine)  # the same board, were it their move
        threats = [move for move, _ in children if their_turn.play(move)[1]]
        if len(threats) >= 2:
            self.table[position.key] = (-1, EXACT)
            return -1
        children = [child for move, child in children if not threats or move == threats[0]]
        alpha_at_start, best = alpha, -1
        for child in children:
            best = max(best, -self.search(child, -beta, -alpha))
            alpha = max(alpha, best)
            if alpha >= beta:
                break
        kind = LOWER if best >= beta else UPPER if best <= alpha_at_start else EXACT
        self.table[position.key] = (best, kind)
        return best

    def move_values(self, position: Position) -> dict[int, int]:
        """The value of each legal move for the player who makes it."""
        values = {}
        for move in position.legal_moves():
            child, won = position.play(move)
            values[move] = 1 if won else -self.value(child)
        return values

    def optimal_moves(self, position: Position) -> list[int]:
        """The moves that keep the position's value: a perfect player plays one of these."""
        values = self.move_values(position)
        best = max(values.values())
        return sorted(move for move, value in values.items() if value == best)
# --8<-- [end:alphabeta]


# --8<-- [start:against_random]
def win_chances_against_random(position: Position, values: dict[int, int], my_move: bool = True, memo: dict | None = None) -> tuple[float, float]:
    """Two exact limits for games against a player who picks any legal move at random: my chance
    to win from `position`, where I am to move (`my_move=False`: the random player is),
    - as a perfect player, who picks at random among the moves that keep the solved value;
    - as the best player there can be against random play, who picks the move with the highest
      chance to win (expectimax: the best of my moves, the average of the random player's).
    `values`: every reachable position's solved value, the memo that `minimax_value` filled. A
    draw counts as not won. Every reachable position is looked at once; `memo` keeps the answer for
    each (use one memo per `my_move` of the first position: it decides whose move each one is)."""
    memo = {} if memo is None else memo

    def chances(position: Position, my_move: bool) -> tuple[float, float]:
        if position.key not in memo:
            moves = position.legal_moves()
            results = []  # per move: its value for me (perfect play), my chances of winning after it
            for move in moves:
                child, won = position.play(move)
                if won:
                    results.append((1, (1.0, 1.0) if my_move else (0.0, 0.0)))
                else:
                    results.append((-values[child.key], chances(child, not my_move)))
            if not results:
                memo[position.key] = (0.0, 0.0)  # a full board: a draw
            elif my_move:
                best_value = max(value for value, _ in results)
                kept = [perfect for value, (perfect, _) in results if value == best_value]
                memo[position.key] = (sum(kept) / len(kept), max(best for _, (_, best) in results))
            else:  # the random player: every move as likely as any other
                memo[position.key] = (
                    sum(perfect for _, (perfect, _) in results) / len(results),
                    sum(best for _, (_, best) in results) / len(results),
                )
        return memo[position.key]

    return chances(position, my_move)
# --8<-- [end:against_random]
