"""A program that learns a board game by playing itself, judged against a perfect player.

This is AlphaZero's recipe, small enough to run on a few CPU cores: a neural network looks at a
board and answers two questions, "which moves look good?" (the policy) and "who is winning?"
(the value). A tree search uses those answers to look a few moves ahead and picks better moves
than the network alone. The program plays games against itself with that search, and the network
learns to predict what the search chose and who won. Repeat, and both get better.

The game is Connect Four on a small board (4 rows x 5 columns, four in a row wins), with the
rules from DeepMind's OpenSpiel library. The board is small enough for an exact solver
(examples/game_solver.py) to know the best moves of every position, so the learner is judged
against the truth: how often it plays a move that keeps the game's solved value, and how its
games end against the perfect player, against OpenSpiel's own tree-search player, and against
random moves.

Run it: `python3 examples/self_play.py` (`--quick` for a short run, `--help` for the options).
"""

# %% [markdown]
# ## The options
# The game is an OpenSpiel game string: `connect_four(rows=4,columns=5)` by default, the full
# `connect_four` (6 x 7), `tic_tac_toe`, or games the solver cannot judge, such as `chess` or
# `go(board_size=9)` (then only the matches against other players are played). `--quick` plays
# three in a row on 3 x 4, with fewer games and simulations. A mistake stops the run here, before any work.

# %%
import argparse
import time

import workshop

parser = workshop.make_parser(
    "Learn a board game from OpenSpiel by self-play (a policy-value network guided by tree search), "
    "judged against an exact solver, OpenSpiel's MCTS player and random play.",
    default_out="results/self_play",
)
parser.add_argument("--game", default="connect_four(rows=4,columns=5)", help="an OpenSpiel game string")
parser.add_argument("--width", type=workshop.at_least(1), default=256, help="units in each hidden layer of the network")
parser.add_argument("--layers", type=workshop.at_least(1), default=3, help="hidden layers of the network")
parser.add_argument("--simulations", type=workshop.at_least(1), default=96, help="tree-search simulations per move")
parser.add_argument("--games", type=workshop.at_least(1), default=256, help="self-play games per iteration")
parser.add_argument("--iterations", type=workshop.at_least(1), default=32, help="rounds of self-play then training")
parser.add_argument("--train-steps", type=workshop.at_least(1), default=1000, help="training steps per iteration")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=128, help="positions per training step")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=2e-3, help="Adam's step size")
parser.add_argument("--positions", type=workshop.at_least(1), default=1000, help="fixed positions the solver judges the moves on")
parser.add_argument("--checkpoints", type=workshop.at_least(1), default=4, help="points during training where matches rate the agent")
parser.add_argument("--bot-simulations", type=workshop.at_least(1), nargs="+", metavar="N", default=[10, 50, 200],
                    help="budgets (simulations per move) of OpenSpiel's MCTS players, which use random rollouts")
parser.add_argument("--match-games", type=workshop.at_least(2), default=10, help="games per pairing in the rating matches, half as first player")
parser.add_argument("--minimax", action=argparse.BooleanOptionalAction, default=True,
                    help="also solve every position by plain minimax, the solver's second method, and from it the best chances "
                    "of winning against random play (about 4 minutes for 4 x 5)")
parser.add_argument("--random-games", type=workshop.at_least(2), default=200, help="games against random play at the end")
args = workshop.parse_args(parser, quick_defaults={
    "game": "connect_four(rows=3,columns=4,x_in_row=3)", "simulations": 12, "games": 16, "iterations": 3, "train_steps": 50,
    "positions": 150, "checkpoints": 1, "bot_simulations": [5, 20], "match_games": 2, "random_games": 10, "minimax": False,
})  # fmt: skip
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## The game, from OpenSpiel
# `pyspiel.load_game` turns the game string into the rules: the legal moves of a position, what a
# move does, when the game is over and who won. The network sees a position as OpenSpiel's
# *observation tensor*: for Connect Four, three planes of 0 and 1 (empty cells, my pieces, the
# opponent's pieces), from the side of the player to move.

# %%
import os

import pyspiel

import game_solver

if args.game.partition("(")[0] not in pyspiel.registered_names():
    workshop.refuse(f"--game {args.game}: OpenSpiel has no such game; try connect_four(rows=4,columns=5), tic_tac_toe or chess")
saved_stderr = os.dup(2)  # OpenSpiel's C++ code prints its complaints itself: hide them, say it in one line
try:
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        game = pyspiel.load_game(args.game)
except pyspiel.SpielError as error:
    game = error
finally:
    os.dup2(saved_stderr, 2)
if isinstance(game, pyspiel.SpielError):
    workshop.refuse(f"--game {args.game}: OpenSpiel cannot load it ({str(game).splitlines()[0][:160]})")
info = game.get_type()
if game.num_players() != 2 or info.utility != pyspiel.GameType.Utility.ZERO_SUM or info.chance_mode != pyspiel.GameType.ChanceMode.DETERMINISTIC:
    workshop.refuse(f"--game {args.game}: self-play here needs a two-player, zero-sum game without chance, such as connect_four")
parameters = game.get_parameters()
if "x_in_row" in parameters and parameters["x_in_row"] > max(parameters["rows"], parameters["columns"]):
    workshop.refuse(
        f"--game {args.game}: no line of {parameters['x_in_row']} fits on {parameters['rows']} rows x {parameters['columns']} columns, "
        "so nobody can win; make the board larger or x_in_row smaller"
    )
if "egocentric_obs_tensor" in parameters:  # the network sees "my pieces" and "theirs", whoever moves
    game = pyspiel.load_game(game.get_type().short_name, {**parameters, "egocentric_obs_tensor": True})
try:
    rules = game_solver.LineGame.from_openspiel(args.game)
except ValueError:
    rules = None
    workshop.log(f"the solver knows only tic-tac-toe and Connect Four: {args.game} is judged by matches alone")
LARGEST_SOLVED_BOARD = 25  # cells: 4 x 5 takes seconds here; every extra cell multiplies the work
if rules is not None and rules.rows * rules.columns > LARGEST_SOLVED_BOARD:
    workshop.log(f"{rules.rows} x {rules.columns} is too large for this solver (at most {LARGEST_SOLVED_BOARD} cells): judged by matches alone")
    rules = None

state = game.new_initial_state()
for _ in range(3):  # three moves in, to see how the game prints a position
    state.apply_action(state.legal_actions()[len(state.legal_actions()) // 2])
print(state)
workshop.log(
    f"game: {game}; {game.num_distinct_actions()} possible moves; observation {game.observation_tensor_shape()}; "
    f"at most {game.max_game_length()} moves per game"
)

# %% [markdown]
# ## The judge: a fixed set of positions, solved exactly
# The positions come from random games, cut off at a random move, with a fixed seed (2026),
# whatever `--seed` says: every run is judged on the same positions. A position where every
# legal move keeps the solved value tests nothing, so only positions with at least one move that
# throws the value away are kept. The solver (negamax with alpha-beta pruning and a
# transposition table, shown on the page) then lists the optimal moves of each. Picking a legal
# move at random hits an optimal one in the share below: the baseline.

# %%
import numpy as np

positions, optimal, solved_value, solver = [], [], None, None
minimax_value = minimax_positions = solve_seconds = solve_positions = against_random = None
if rules is not None:
    solver = game_solver.Solver(rules)
    solve_started = time.perf_counter()
    solved_value = solver.value(game_solver.Position(rules))
    solve_seconds, solve_positions = time.perf_counter() - solve_started, solver.positions_searched
    workshop.log(f"solved: the empty board is a {['loss', 'draw', 'win'][solved_value + 1]} for the first player ({solve_seconds:.1f} s, {solver.positions_searched:,} positions searched)")
    if args.minimax:  # the second, independent method: no pruning, every reachable position once
        memo = {}
        minimax_value = game_solver.minimax_value(game_solver.Position(rules), memo)
        minimax_positions = len(memo)
        workshop.log(f"plain minimax over all {minimax_positions:,} positions agrees: {minimax_value == solved_value} (value {minimax_value:+d})")
        # Two limits for the matches against random play below, half of them as first player:
        # how often a perfect player wins (any move that keeps the solved value), and how often
        # the best player against random play can win (the move with the most chances).
        as_first, as_second = (game_solver.win_chances_against_random(game_solver.Position(rules), memo, my_move) for my_move in (True, False))
        against_random = {"perfect_player": (as_first[0] + as_second[0]) / 2, "best_possible": (as_first[1] + as_second[1]) / 2}
        workshop.log(
            f"against random play a perfect player wins {against_random['perfect_player']:.1%} of games, "
            f"the best possible player {against_random['best_possible']:.1%} (as first and as second player: "
            f"{as_first[0]:.1%} and {as_second[0]:.1%}; {as_first[1]:.1%} and {as_second[1]:.1%})"
        )
    position_rng, seen = np.random.default_rng(2026), set()
    for _ in range(200 * args.positions):
        if len(positions) == args.positions:
            break
        state = game.new_initial_state()
        for _ in range(position_rng.integers(0, game.max_game_length() - 1)):
            state.apply_action(position_rng.choice(state.legal_actions()))
            if state.is_terminal():
                break
        if state.is_terminal() or tuple(state.history()) in seen:
            continue
        seen.add(tuple(state.history()))
        best = solver.optimal_moves(game_solver.Position.after(rules, state.history()))
        if len(best) < len(state.legal_actions()):
            positions.append(state)
            optimal.append(best)
    if len(positions) < args.positions:
        workshop.refuse(f"--positions {args.positions}: only {len(positions)} distinct positions with a wrong move were found; ask for fewer")
    random_move_rate = float(np.mean([len(best) / len(state.legal_actions()) for state, best in zip(positions, optimal)]))
    workshop.log(
        f"judge: {len(positions)} positions, {solver.positions_searched:,} positions searched in all; "
        f"a random legal move is optimal in {random_move_rate:.1%} of them"
    )

# %% [markdown]
# ## The network: a policy and a value
# One small network with two heads. The policy head gives a score (a logit) to every move; a
# softmax over the legal moves turns them into probabilities. The value head gives one number
# between -1 (I lose) and +1 (I win), for the player to move. The network runs on the GPU when
# the job has one; self-play runs on the CPUs (see below).

# %%
import torch
from torch import nn

threads = workshop.use_allocated_threads()
device = workshop.pick_device()
workers = workshop.cpus_from_allocation()


class PolicyValueNet(nn.Module):
    """Fully connected layers on the flattened observation, then the two heads. (Convolutions
    suit boards better, but on a CPU they cost several times more per position, and self-play
    asks the network about hundreds of thousands of positions.)"""

    def __init__(self, inputs: int, moves: int, width: int, layers: int):
        super().__init__()
        body = [nn.Flatten(), nn.Linear(inputs, width), nn.ReLU()]
        for _ in range(layers - 1):
            body += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.policy = nn.Linear(width, moves)
        self.value = nn.Sequential(nn.Linear(width, 1), nn.Tanh())

    def forward(self, boards):
        features = self.body(boards)
        return self.policy(features), self.value(features).squeeze(1)


def make_network(seed: int) -> PolicyValueNet:
    torch.manual_seed(seed)
    return PolicyValueNet(int(np.prod(game.observation_tensor_shape())), game.num_distinct_actions(), args.width, args.layers)


network = make_network(args.seed).to(device)
untrained = make_network(args.seed).to(device)  # the same starting weights, kept as the baseline
print(network)
workshop.log(f"network: {sum(p.numel() for p in network.parameters()):,} weights")

# %% [markdown]
# ## Monte Carlo tree search, guided by the network
# Each simulation walks down the tree from the current position. At every position it takes the
# move with the best *upper confidence* score: its average result so far (Q) plus a bonus that
# is large for moves the network likes (prior P) and that few simulations have tried yet (N).
# When it reaches a position nobody has looked at, the network gives that position's policy and
# value; the value is passed back up the path, with its sign flipped at each step because the
# players take turns. After all simulations, the move tried most often is the search's choice,
# and the share of visits per move is its policy. Many trees are searched at once, so that the
# network looks at all their new positions in one batch.

# %%
import math

C_PUCT = 1.5  # how much the prior and the count of visits weigh against the results so far


class Node:
    """A position in the search tree, with the statistics of each legal move from it. (Python
    lists, not NumPy arrays: for a handful of moves they are several times faster.)"""

    def __init__(self, state):
        self.state = state
        self.terminal = state.is_terminal()
        self.moves = [] if self.terminal else state.legal_actions()
        self.prior = None  # the network's probabilities of the moves, once it has looked
        self.visits = [0] * len(self.moves)
        self.value_sum = [0.0] * len(self.moves)  # results for the player to move here
        self.total = 0
        self.children = {}

    def choose(self) -> int:
        """The move with the best average result (Q) plus bonus, by its index."""
        scale = C_PUCT * math.sqrt(self.total + 1)
        scores = [
            (total / visits if visits else 0.0) + scale * prior / (1 + visits)
            for total, visits, prior in zip(self.value_sum, self.visits, self.prior)
        ]
        return scores.index(max(scores))


@torch.no_grad()
def look(net, states):
    """The network's move probabilities (over each state's legal moves) and values."""
    parameter = next(net.parameters())
    boards = np.array([state.observation_tensor(state.current_player()) for state in states], dtype=np.float32)
    logits, values = net(torch.from_numpy(boards).to(parameter.device))
    logits, values = logits.cpu().numpy(), values.cpu().numpy()
    priors = []
    for state, scores in zip(states, logits):
        legal = scores[state.legal_actions()]
        weights = np.exp(legal - legal.max())
        priors.append(weights / weights.sum())
    return priors, values


def search(net, roots, simulations, rng=None):
    """Run `simulations` simulations in each root's tree. With `rng` (self-play), Dirichlet
    noise on the root priors makes the program try moves its network does not like yet."""
    fresh = [root for root in roots if root.prior is None and not root.terminal]
    if fresh:
        for root, prior in zip(fresh, look(net, [root.state for root in fresh])[0]):
            root.prior = prior.tolist()
    if rng is not None:
        for root in roots:
            if not root.terminal:
                root.prior = (0.75 * np.array(root.prior) + 0.25 * rng.dirichlet([1.0] * len(root.moves))).tolist()
    for _ in range(simulations):
        paths, leaves = [], []
        for root in roots:
            if root.terminal:
                continue
            node, path = root, []
            while node.prior is not None and not node.terminal:
                index = node.choose()
                path.append((node, index))
                move = node.moves[index]
                if move not in node.children:
                    child = node.state.clone()
                    child.apply_action(move)
                    node.children[move] = Node(child)
                node = node.children[move]
            paths.append(path)
            leaves.append(node)
        unseen = [leaf for leaf in leaves if not leaf.terminal]
        values = {}
        if unseen:
            priors, estimates = look(net, [leaf.state for leaf in unseen])
            for leaf, prior, estimate in zip(unseen, priors, estimates):
                leaf.prior, values[id(leaf)] = prior.tolist(), float(estimate)
        for path, leaf in zip(paths, leaves):
            mover = path[-1][0].state.current_player()
            # the result for the player who moved into the leaf
            value = leaf.state.returns()[mover] if leaf.terminal else -values[id(leaf)]
            for node, index in reversed(path):
                node.visits[index] += 1
                node.total += 1
                node.value_sum[index] += value
                value = -value
    return roots


state = game.new_initial_state()
root = search(network, [Node(state)], args.simulations)[0]
workshop.log(f"untrained search from the empty board: visits per move {dict(zip(root.moves, root.visits))}")

# %% [markdown]
# ## Self-play
# Games of the program against itself. At every move the search runs from the current
# position; the position, the search's policy, the search's value of the position and (once the
# game is over) the result for the player who was to move become one training example. In its
# first 20 moves (on the 4 x 5 board: all of them) the program samples its move in proportion to
# the search's visits rather than playing the most visited one. The games then differ, and they
# reach the odd positions a perfect opponent or a random one can lead to, not only the few that
# best play walks through; the example still records the visit shares, so the network learns
# what the search preferred, not the dice. The games of an iteration are split among worker
# processes, one per CPU the job was given: tree search is Python code that runs on one core,
# so the CPUs are what make self-play fast.

# %%
import multiprocessing

EXPLORING_MOVES = 20  # moves at the start of each game chosen in proportion to the visits
SEARCHED_VALUE_WEIGHT = 0.5  # the value target: this much of the search's value, the rest the game's result


def self_play(weights, games, seed):
    """Play `games` games with a CPU copy of the network; returns (boards, policies, results)."""
    torch.set_num_threads(1)  # one worker, one core
    net = make_network(0)
    net.load_state_dict(weights)
    rng = np.random.default_rng(seed)
    states = [game.new_initial_state() for _ in range(games)]
    records = [[] for _ in range(games)]
    while any(not state.is_terminal() for state in states):
        playing = [number for number, state in enumerate(states) if not state.is_terminal()]
        roots = search(net, [Node(states[number].clone()) for number in playing], args.simulations, rng)
        for number, root in zip(playing, roots):
            state = states[number]
            policy = np.zeros(game.num_distinct_actions(), dtype=np.float32)
            visits = np.array(root.visits)
            policy[root.moves] = visits / visits.sum()
            searched_value = sum(root.value_sum) / root.total  # the search's estimate, for the player to move
            records[number].append((state.observation_tensor(state.current_player()), policy, state.current_player(), searched_value))
            if len(state.history()) < EXPLORING_MOVES:
                move = rng.choice(root.moves, p=visits / visits.sum())
            else:
                move = root.moves[rng.choice(np.flatnonzero(visits == visits.max()))]
            state.apply_action(int(move))
    examples = [
        (board, policy, (1 - SEARCHED_VALUE_WEIGHT) * state.returns()[player] + SEARCHED_VALUE_WEIGHT * searched_value)
        for state, record in zip(states, records)
        for board, policy, player, searched_value in record
    ]
    boards, policies, results = zip(*examples)
    return np.array(boards, dtype=np.float32), np.array(policies), np.array(results, dtype=np.float32)


# Fork copies this process, with the functions above, into each worker. Each worker computes on
# one thread (self_play sets it), never in the thread pool it inherits from this process.
pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
workshop.log(f"self-play: {workers} worker process{'es' if workers > 1 else ''} (one per CPU of the allocation)")


speed = {"simulations": 0, "seconds": 0.0}  # self-play's pace, for the cost of larger games below


def play_iteration(iteration: int):
    weights = {name: tensor.cpu() for name, tensor in network.state_dict().items()}
    shares = [len(part) for part in np.array_split(range(args.games), workers) if len(part)]
    jobs = [(weights, share, (args.seed, iteration, worker)) for worker, share in enumerate(shares)]
    playing_started = time.perf_counter()
    parts = pool.starmap(self_play, jobs) if pool else [self_play(*job) for job in jobs]
    boards, policies, results = (np.concatenate(arrays) for arrays in zip(*parts))
    speed["seconds"] += time.perf_counter() - playing_started
    speed["simulations"] += len(boards) * args.simulations
    if rules is not None and rules.gravity:  # Connect Four in a mirror is Connect Four: twice the examples
        mirrored = boards.reshape(len(boards), *game.observation_tensor_shape())[..., ::-1].reshape(len(boards), -1)
        boards, policies, results = np.concatenate([boards, mirrored]), np.concatenate([policies, policies[:, ::-1]]), np.concatenate([results, results])
    return boards, policies, results


boards, policies, results = self_play({name: tensor.cpu() for name, tensor in network.state_dict().items()}, 1, args.seed)
workshop.log(
    f"one game of the untrained network against itself: {len(boards)} moves; the search's policy at the first move "
    f"{[round(float(share), 2) for share in policies[0]]}; result for the first player {results[0]:+.0f}"
)

# %% [markdown]
# ## How the judge scores a player
# On each fixed position the network alone plays its most probable legal move, and the network
# with search plays its most visited move; a move counts as optimal when the solver lists it.
# The untrained network, which has seen no game, is the baseline to beat.

# %%


def network_moves(net, states):
    return [state.legal_actions()[int(np.argmax(prior))] for state, prior in zip(states, look(net, states)[0])]


def search_moves(net, states, simulations):
    roots = search(net, [Node(state.clone()) for state in states], simulations)
    return [root.moves[root.visits.index(max(root.visits))] for root in roots]


def optimal_rate(moves) -> float:
    return float(np.mean([move in best for move, best in zip(moves, optimal)]))


before = {}
if rules is not None:
    before = {"network": optimal_rate(network_moves(untrained, positions)), "search": optimal_rate(search_moves(untrained, positions, args.simulations))}
    workshop.log(f"untrained: optimal moves {before['network']:.1%} (network alone), {before['search']:.1%} (with search); random moves {random_move_rate:.1%}")

# %% [markdown]
# ## Training
# Each iteration plays `--games` games of self-play with the current network, adds their
# positions to a replay buffer that keeps the last few iterations, and trains the network on
# random batches from it. The loss has two parts, one per head: the cross-entropy between the
# search's policy and the network's, and the squared error between a value target and the
# network's value. The target is the average of the game's result and the search's value of the
# position: with sampled moves, one careless move late in a game can turn a won position into a
# lost result, and the search's value, an average over all its simulations, is the steadier half.
# At a few checkpoints a copy of the network is kept for the rating matches.

# %%
import collections
import copy

import torch.nn.functional as F

BUFFER_ITERATIONS = 6  # the replay buffer holds the examples of this many recent iterations
buffer = collections.deque(maxlen=BUFFER_ITERATIONS)
optimizer = torch.optim.Adam(network.parameters(), lr=args.learning_rate, weight_decay=1e-4)
# The step size shrinks along a cosine to a tenth of --learning-rate: large steps while the games
# change fast, small ones at the end, when the network polishes what it knows.
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.iterations * args.train_steps, eta_min=args.learning_rate / 10)
checkpoint_at = sorted({round(args.iterations * part / args.checkpoints) for part in range(args.checkpoints + 1)})
checkpoints = {0: copy.deepcopy(untrained)}
history = []
progress = workshop.Progress(total=args.iterations, unit="games", label="iteration")
for iteration in range(1, args.iterations + 1):
    buffer.append(play_iteration(iteration))
    boards, policies, results = (torch.from_numpy(np.concatenate(arrays)).to(device) for arrays in zip(*buffer))
    network.train()
    losses = []
    for _ in range(args.train_steps):
        batch = torch.randint(len(boards), (args.batch_size,), device=device)
        logits, values = network(boards[batch])
        policy_loss = -(policies[batch] * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        value_loss = F.mse_loss(values, results[batch])
        optimizer.zero_grad()
        (policy_loss + value_loss).backward()
        optimizer.step()
        schedule.step()
        losses.append((policy_loss.item(), value_loss.item()))
    network.eval()
    row = {"iteration": iteration, "policy_loss": float(np.mean(losses, axis=0)[0]), "value_loss": float(np.mean(losses, axis=0)[1]), "buffer": len(boards)}
    if rules is not None:
        row["optimal_network"] = optimal_rate(network_moves(network, positions))
        if iteration in checkpoint_at:
            row["optimal_search"] = optimal_rate(search_moves(network, positions, args.simulations))
    if iteration in checkpoint_at:
        checkpoints[iteration] = copy.deepcopy(network)
    history.append(row)
    progress.step(iteration, items=args.games, **{key: value for key, value in row.items() if key != "iteration"})

# %% [markdown]
# ## The players
# A player is a function from a position to a move. The agent is the trained network with its
# search (no noise, most visited move). The perfect player asks the solver for the optimal moves
# and picks one at random. OpenSpiel's `MCTSBot` is the classic tree search without a network:
# it estimates a position by playing random moves to the end (random rollouts), with a budget of
# simulations per move. The random player picks any legal move.

# %%
from open_spiel.python.algorithms import mcts


def agent(net):
    return lambda state: search_moves(net, [state], args.simulations)[0]


def perfect_player(rng):
    return lambda state: int(rng.choice(solver.optimal_moves(game_solver.Position.after(rules, state.history()))))


def mcts_player(budget, seed):
    rollouts = mcts.RandomRolloutEvaluator(n_rollouts=1, random_state=np.random.RandomState(seed))
    bot = mcts.MCTSBot(game, uct_c=2.0, max_simulations=budget, evaluator=rollouts, random_state=np.random.RandomState(seed))
    return bot.step


def random_player(rng):
    return lambda state: int(rng.choice(state.legal_actions()))


def play(first, second):
    """One game; returns the moves and the result for the first player (+1, 0 or -1)."""
    state = game.new_initial_state()
    while not state.is_terminal():
        state.apply_action((first, second)[state.current_player()](state))
    return state.history(), state.returns()[0]


def match(net, opponent, games):
    """`games` games of the agent with network `net` against `opponent`, the agent first in every
    other one; the results for the agent. All the games are played at once, so that one batched
    search makes the agent's moves in all of them, as in self-play."""
    states, seats = [game.new_initial_state() for _ in range(games)], [number % 2 for number in range(games)]
    while not all(state.is_terminal() for state in states):
        waiting = [state for state, seat in zip(states, seats) if not state.is_terminal() and state.current_player() == seat]
        for state, move in zip(waiting, search_moves(net, waiting, args.simulations)):
            state.apply_action(move)
        for state, seat in zip(states, seats):
            if not state.is_terminal() and state.current_player() != seat:
                state.apply_action(opponent(state))
    return [state.returns()[seat] for state, seat in zip(states, seats)]


# %% [markdown]
# ## Against random play
# Beating random play as often as possible asks for more than perfect play. On a board that is a
# draw with best play, a perfect player holds every move that keeps the draw equally good, yet
# some of them leave a weak opponent more ways to go wrong. The solver's two limits (above, with
# --minimax) say how often a perfect player wins against random play and how often the best
# player against random play can. Self-play meets only itself: nothing in its loss asks for the
# second.

# %%
random_results = match(network, random_player(np.random.default_rng(args.seed)), args.random_games)
random_win_rate = float(np.mean(np.array(random_results) == 1))
workshop.log(f"against random play: {random_win_rate:.1%} won, {np.mean(np.array(random_results) == -1):.1%} lost of {len(random_results)} games")

# %% [markdown]
# ## Against the perfect player
# The solved value says what best play on both sides gives. As first player the agent can get
# that value, and no more; as second player, minus it. A perfect player never throws a result
# away, so any game that ends worse than the solved value allows is a mistake of the agent.

# %%
perfect_games = []
if rules is not None:
    perfect_rng, final = np.random.default_rng(args.seed), agent(network)
    for number in range(args.match_games):
        agent_first = number % 2 == 0
        moves, first_result = play(final, perfect_player(perfect_rng)) if agent_first else play(perfect_player(perfect_rng), final)
        result = first_result if agent_first else 0.0 - first_result
        allowed = solved_value if agent_first else -solved_value
        perfect_games.append({"agent_first": agent_first, "moves": moves, "result": result, "allowed": allowed})
    lost_allowed = sum(game_record["result"] < game_record["allowed"] for game_record in perfect_games)
    workshop.log(
        f"against the perfect player: results {[game_record['result'] for game_record in perfect_games]}; "
        f"{lost_allowed} of {len(perfect_games)} games ended worse than the solved value allows"
    )

# %% [markdown]
# ## A rating over training: Elo
# Every checkpoint plays OpenSpiel's MCTS player at each budget and the random player. An Elo
# rating turns all those results into one number per player: a difference of 400 points means
# the stronger player scores 10 to 1. The ratings are fitted by maximum likelihood, with the
# random player at 0 and one imagined draw against it for every player (so that a player who won
# every game gets a large rating rather than an infinite one).

# %%
from scipy.optimize import minimize

opponents = {f"mcts_{budget}": mcts_player(budget, args.seed + budget) for budget in args.bot_simulations}
opponents["random"] = random_player(np.random.default_rng(args.seed + 1))
pairings = []  # (player, opponent, score of player: 1 win, 0.5 draw, 0 loss)
for iteration, checkpoint in checkpoints.items():
    for name, opponent in opponents.items():
        for result in match(checkpoint, opponent, args.match_games):
            pairings.append((f"iteration_{iteration}", name, (result + 1) / 2))
players = sorted({name for pairing in pairings for name in pairing[:2]})
index = {name: number for number, name in enumerate(players)}
pairing_rows = np.array([(index[a], index[b], score) for a, b, score in pairings] + [(index[p], index["random"], 0.5) for p in players if p != "random"])


def negative_log_likelihood(free):
    ratings = np.insert(free, index["random"], 0.0)
    expected = 1 / (1 + 10 ** ((ratings[pairing_rows[:, 1].astype(int)] - ratings[pairing_rows[:, 0].astype(int)]) / 400))
    expected = np.clip(expected, 1e-9, 1 - 1e-9)
    return -np.sum(pairing_rows[:, 2] * np.log(expected) + (1 - pairing_rows[:, 2]) * np.log(1 - expected))


fitted = minimize(negative_log_likelihood, np.zeros(len(players) - 1), method="L-BFGS-B").x
elo = dict(zip(players, np.insert(fitted, index["random"], 0.0).round(0).tolist()))
win_rate_vs_mcts = {
    name: float(np.mean([score == 1 for player, opponent, score in pairings if player == f"iteration_{args.iterations}" and opponent == name]))
    for name in opponents
    if name.startswith("mcts")
}
workshop.log(f"Elo: {elo}")
workshop.log(f"final agent's win rate: {win_rate_vs_mcts}")

# %% [markdown]
# ## The judge's verdict, and positions.jsonl
# The optimal-move rate of the trained network, alone and with its search, next to the
# untrained one and random moves. Every judged position goes into `positions.jsonl`: its moves
# from the empty board, the moves both players chose, and the solver's optimal moves, so anyone
# with another solver can check these numbers.

# %%
import json

after = {}
if rules is not None:
    chosen_by_network, chosen_by_search = network_moves(network, positions), search_moves(network, positions, args.simulations)
    after = {"network": optimal_rate(chosen_by_network), "search": optimal_rate(chosen_by_search)}
    lines = [
        json.dumps({"game": args.game, "moves": state.history(), "network_move": a, "search_move": b, "optimal_moves": best})
        for state, a, b, best in zip(positions, chosen_by_network, chosen_by_search, optimal)
    ]
    workshop.atomic_write_bytes(args.out / "positions.jsonl", ("\n".join(lines) + "\n").encode())
    print(f"{'player':<28}{'optimal moves':>14}")
    for label, rate in [("random moves", random_move_rate), ("untrained network", before["network"]), ("untrained network + search", before["search"]),
                        ("trained network", after["network"]), ("trained network + search", after["search"])]:  # fmt: skip
        print(f"{label:<28}{rate:>14.1%}")

# %% [markdown]
# ## Figures: learning, and its rating
# Left: the share of optimal moves after each iteration. Right: the Elo rating of each
# checkpoint, with the MCTS players' ratings as horizontal lines.

# %%
import matplotlib.pyplot as plt

figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
if rules is not None:
    left.plot([0] + [row["iteration"] for row in history], [before["network"]] + [row["optimal_network"] for row in history], marker=".", label="network alone")
    searched = [(0, before["search"])] + [(row["iteration"], row["optimal_search"]) for row in history if "optimal_search" in row]
    left.plot(*zip(*searched), marker="o", label=f"network + search ({args.simulations} simulations)")
    left.axhline(random_move_rate, color="grey", linestyle="--", label="random moves")
    left.set_ylim(0, 1)
    left.legend(loc="lower right")
left.set_xlabel("iteration")
left.set_ylabel(f"optimal moves ({len(positions)} fixed positions)")
left.set_title("moves that keep the solved value")
right.plot(list(checkpoints), [elo[f"iteration_{iteration}"] for iteration in checkpoints], marker="o", color="black", label="agent")
for name in opponents:
    right.axhline(elo[name], linestyle=":", color="tab:red" if name.startswith("mcts") else "grey")
    right.annotate(name.replace("_", " "), (0, elo[name]), textcoords="offset points", xytext=(2, 2), fontsize=8)
right.set_xlabel("iteration")
right.set_ylabel("Elo (random player = 0)")
right.set_title(f"rating over training ({args.match_games} games per pairing)")
workshop.save_figure(figure, args.out / "training.png")

# %% [markdown]
# ## What the network sees in one position
# One of the fixed positions: above each column the network's probability for that move, the
# solver's optimal moves in green; the title gives the network's value next to the solved one.

# %%
from matplotlib.patches import Circle

COLOURS = ("#d62728", "#f5c400")  # first player red, second player yellow


def draw_board(ax, moves, numbers=False):
    """The board after `moves`; with `numbers`, each piece shows when it was played."""
    ax.set_facecolor("#1f4e9c")
    occupied, pieces = 0, {}
    for order, move in enumerate(moves):
        cell = rules.cell_of_move(move, occupied)
        occupied |= 1 << cell
        pieces[cell] = order
    for cell in range(rules.rows * rules.columns):
        row, column = divmod(cell, rules.columns)
        order = pieces.get(cell)
        ax.add_patch(Circle((column, row), 0.4, color="white" if order is None else COLOURS[order % 2]))
        if numbers and order is not None:
            ax.text(column, row, str(order + 1), ha="center", va="center", fontsize=11)
    ax.set_xlim(-0.5, rules.columns - 0.5)
    ax.set_ylim(-0.5, rules.rows - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(rules.columns))
    ax.set_yticks([])


if rules is not None and rules.gravity:
    shown = next(
        (number for number, (state, best) in enumerate(zip(positions, optimal)) if len(best) == 1 and len(state.history()) >= 4), 0
    )
    state = positions[shown]
    (prior,), (value,) = look(network, [state])
    probability = np.zeros(rules.columns)
    probability[state.legal_actions()] = prior
    exact = solver.value(game_solver.Position.after(rules, state.history()))
    figure, (bars, board) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2.2]})
    bars.bar(range(rules.columns), probability, color=["tab:green" if column in optimal[shown] else "tab:grey" for column in range(rules.columns)])
    bars.set_ylim(0, 1)
    bars.set_ylabel("network's\nprobability")
    bars.set_title(
        f"{'red' if state.current_player() == 0 else 'yellow'} to move: network value {value:+.2f}, "
        f"solved value {exact:+d}\n(green: the solver's optimal moves)",
        fontsize=10,
    )
    draw_board(board, state.history())
    board.set_xlabel("column")
    workshop.save_figure(figure, args.out / "policy_value.png")

# %% [markdown]
# ## One game against the perfect player, move by move
# The first two games of the match: the agent as first player (red), then as second (yellow).
# The numbers are the order of the moves.

# %%
if rules is not None and rules.gravity:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, record in zip(axes, perfect_games[:2]):
        draw_board(ax, record["moves"], numbers=True)
        outcome = {1: "won", 0: "drew", -1: "lost"}[record["result"]]
        ax.set_title(f"agent {'first (red)' if record['agent_first'] else 'second (yellow)'}: {outcome}\n(the solved value allows: {'win' if record['allowed'] > 0 else 'draw' if record['allowed'] == 0 else 'loss'})")
    workshop.save_figure(figure, args.out / "game.png")

# %% [markdown]
# ## How far is chess?
# The same script plays `--game chess` or `--game "go(board_size=9)"`: only the rules and the
# size of the observation change. What changes the cost is the number of games. AlphaZero's
# chess (Silver et al., Science 2018) played 44 million games of self-play with 800 simulations
# per move; take 100 moves per game (our assumption). At this run's pace per core (a chess
# position costs more to look at than a small Connect Four one, so this is a lower bound):

# %%
simulations_per_core_second = speed["simulations"] / speed["seconds"] / workers
chess_simulations = 44e6 * 100 * 800
chess_core_hours = chess_simulations / simulations_per_core_second / 3600
workshop.log(
    f"self-play pace: {simulations_per_core_second:,.0f} simulations per second per core; AlphaZero's chess self-play "
    f"({chess_simulations:.1e} simulations) would take at least {chess_core_hours:,.0f} core-hours at that pace"
)

# %% [markdown]
# ## The results
# `metrics.json` holds the numbers the page shows.

# %%
metrics = {
    "game": args.game,
    "solved_value": solved_value,
    "minimax_value": minimax_value,
    "minimax_positions": minimax_positions,
    "solve_seconds": solve_seconds,
    "solver_positions_searched": solve_positions,
    "perfect_games_played": len(perfect_games),
    "perfect_games_lost_beyond_value": sum(record["result"] < record["allowed"] for record in perfect_games),
    "positions": len(positions),
    "random_move_rate": random_move_rate if rules is not None else None,
    "optimal_rate_untrained_network": before.get("network"),
    "optimal_rate_untrained_search": before.get("search"),
    "optimal_rate_network": after.get("network"),
    "optimal_rate_search": after.get("search"),
    "random_win_rate": random_win_rate,
    "random_win_rate_limits": against_random,
    "win_rate_vs_mcts": win_rate_vs_mcts,
    "elo": elo,
    "perfect_games": perfect_games,
    "history": history,
    "iterations": args.iterations,
    "simulations": args.simulations,
    "games": args.games,
    "workers": workers,
    "simulations_per_core_second": simulations_per_core_second,
    "chess_core_hours": chess_core_hours,
}
if pool:
    pool.close()
    pool.join()
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
workshop.report_result(optimal_search=after.get("search", float("nan")), optimal_network=after.get("network", float("nan")), random_win_rate=random_win_rate)
