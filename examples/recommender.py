"""A recommender system, judged against the best its data allows

Which film will this person like? A recommender learns it from ratings: who rated what, and how
much they liked it. This example builds one with matrix factorisation in PyTorch, and judges it
honestly. The default data are made up on purpose, with a known truth: every user and film has
hidden tastes, and each rating is the true score plus noise of a known size. So the page can
show the **noise floor**, the error of a predictor that knows the true scores, which no model
can beat. The model is scored on held-out ratings next to three simple baselines and next to a
well-kept library (scikit-surprise); its top-10 lists are scored against "recommend the most
popular films"; and the run measures how much the recommendations favour popular films.

With `--data ratings.csv` the same script learns a MovieLens ratings file of your own.
Run it: `python3 examples/recommender.py` (`--quick` for a short run, `--help` for the options).
"""

# %% [markdown]
# ## The options
# Every option has a default, so the notebook runs as it is. `--quick` (the tests' short run)
# makes a smaller set and trains fewer epochs; an option you give yourself always wins. A
# mistake on the command line stops the run here, before any work.

# %%
import time
from pathlib import Path

import workshop

parser = workshop.make_parser(
    "Learn to recommend from ratings with matrix factorisation in PyTorch, scored on held-out ratings against "
    "baselines, a library and the noise floor.",
    default_out="results/recommender",
)
parser.add_argument("--data", type=Path, help="a MovieLens ratings.csv (userId,movieId,rating,timestamp) to learn instead (default: none, a generated set with a known truth)")
parser.add_argument("--users", type=workshop.at_least(20), default=2000, help="generated set: users")
parser.add_argument("--items", type=workshop.at_least(20), default=1000, help="generated set: films")
parser.add_argument("--ratings-per-user", type=workshop.at_least(2), default=80, help="generated set: the median user's number of ratings")
parser.add_argument("--scale", type=workshop.at_least(1), default=1, help="generated set: this many times the ratings, with scale x the users and sqrt(scale) x the films; the GPU job uses 100")
parser.add_argument("--noise", type=workshop.positive_float, default=0.8, help="generated set: standard deviation of the noise added to each true score")
parser.add_argument("--factors", type=workshop.at_least(1), default=4, help="length of each user's and film's embedding; the default was chosen on the generated set's validation ratings, whose truth has 3 genres; for real ratings try 16 to 64 and keep what validates best")
parser.add_argument("--weight-decay", type=workshop.positive_float, default=0.05, help="L2 penalty on the embeddings and biases of each rating's user and film")
parser.add_argument("--epochs", type=workshop.at_least(1), default=60, help="most passes over the training ratings; early stopping usually ends sooner")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=4096, help="ratings per training step")
parser.add_argument("--learning-rate", type=workshop.positive_float, default=0.01, help="Adam's step size")
parser.add_argument("--patience", type=workshop.at_least(1), default=3, help="stop after this many epochs without a better validation error")
args = workshop.parse_args(parser, quick_defaults={"users": 400, "items": 300, "ratings_per_user": 60, "epochs": 8, "batch_size": 1024})
started = time.perf_counter()
workshop.log("options: " + ", ".join(f"{name}={value}" for name, value in vars(args).items()))

# %% [markdown]
# ## Bring your own ratings: MovieLens's `ratings.csv`
# With `--data`, the ratings come from a file in MovieLens's format: a header
# `userId,movieId,rating,timestamp`, then one rating per line. The file is checked before any
# work: a broken line stops the run with one message that names the line. (MovieLens cannot be
# downloaded here; on Puma, copy it in and point `--data` at it.)

# %%
import numpy as np
import pandas as pd

MOVIELENS_COLUMNS = ["userId", "movieId", "rating", "timestamp"]


def read_movielens(path: Path) -> pd.DataFrame:
    """user, item (0, 1, 2, ...), rating and the file's own ids; refuses a malformed file in one line."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError) as error:
        workshop.refuse(f"cannot read --data {path}: {getattr(error, 'strerror', None) or error}")
    except pd.errors.EmptyDataError:
        workshop.refuse(f"--data {path} is empty; expected a header {','.join(MOVIELENS_COLUMNS)} and one rating per line")
    except pd.errors.ParserError as error:
        workshop.refuse(f"--data {path}: {str(error).strip()} (each line holds {','.join(MOVIELENS_COLUMNS)})")
    if list(table.columns) != MOVIELENS_COLUMNS:
        workshop.refuse(f"--data {path}: the header is {','.join(table.columns)}; expected {','.join(MOVIELENS_COLUMNS)}")
    for column in ("userId", "movieId", "rating"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ~np.isfinite(values) if column == "rating" else values.isna() | (values % 1 != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            kind = "a number" if column == "rating" else "a whole number"
            workshop.refuse(f"--data {path}: line {row + 2}: {column} {table[column].iloc[row]!r} is not {kind}")
        table[column] = values
    repeated = table.duplicated(["userId", "movieId"])
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        workshop.refuse(f"--data {path}: line {row + 2}: user {table.userId.iloc[row]} rates movie {table.movieId.iloc[row]} a second time")
    if table.userId.nunique() < 20 or table.movieId.nunique() < 20:
        workshop.refuse(f"--data {path}: {table.userId.nunique()} users and {table.movieId.nunique()} movies; at least 20 of each are needed")
    return pd.DataFrame({
        "user": pd.factorize(table.userId, sort=True)[0], "item": pd.factorize(table.movieId, sort=True)[0],
        "rating": table.rating.astype("float32"), "user_id": table.userId.astype("int64"), "item_id": table.movieId.astype("int64"),
    })  # fmt: skip


if args.data is not None:
    ratings = read_movielens(args.data)
    data_name, truth = f"{args.data.name} ({args.data})", None
    workshop.log(f"data: {len(ratings)} ratings from {args.data}: {ratings.user.nunique()} users, {ratings.item.nunique()} movies")

# %% [markdown]
# ## Or: ratings made up with a known truth
# Each user has a taste for each of three genres, and each film belongs to one genre (its
# **true latent group**). A film's true score for a user is the overall mean, plus the user's
# bias (some people rate everything high), plus the film's bias (some films are better), plus
# the user's taste for the film's genre. The rating is the true score plus Gaussian noise of
# standard deviation `--noise`. Three things make these ratings behave like real ones:
# - film popularity follows a power law: a few films get most of the ratings;
# - people rate what they expect to like more often than what they don't (missing not at
#   random): the chance to rate grows with the true score;
# - a few users rate a lot, most rate a little (a log-normal number of ratings per user, its
#   median `--ratings-per-user`).

# %%
GENRES = 3  # the true number of hidden factors
MEAN_RATING, USER_BIAS_SD, ITEM_BIAS_SD, TASTE_SD = 2.8, 0.35, 0.45, 0.5
POPULARITY_EXPONENT = 0.9  # the k-th most popular film is chosen about k^-0.9 times as often as the first
CHOOSE_WHAT_YOU_LIKE = 3.5  # each extra point of true score makes rating a film e^3.5 (33) times as likely


def generate_ratings(users: int, items: int, median_ratings_per_user: int, noise: float, seed: int):
    """The ratings table (user, item, rating, true_score), and the truth behind it."""
    rng = np.random.default_rng(seed)
    item_group = rng.integers(GENRES, size=items)
    item_factors = np.eye(GENRES)[item_group] + 0.3 * rng.standard_normal((items, GENRES))
    user_factors = TASTE_SD * rng.standard_normal((users, GENRES))
    user_bias, item_bias = USER_BIAS_SD * rng.standard_normal(users), ITEM_BIAS_SD * rng.standard_normal(items)
    log_popularity = -POPULARITY_EXPONENT * np.log(1 + rng.permutation(items))
    activity = np.clip(np.round(median_ratings_per_user * rng.lognormal(0, 1, users)), 2, items // 2).astype(int)
    chunks = []
    for first in range(0, users, 2048):  # a block of users at a time: users x items may not fit in memory
        block = np.arange(first, min(first + 2048, users))
        true_score = MEAN_RATING + user_bias[block, None] + item_bias[None, :] + user_factors[block] @ item_factors.T
        # Each user rates `activity` films, drawn without replacement with probability proportional
        # to popularity x exp(CHOOSE_WHAT_YOU_LIKE x true score): the Gumbel top-k trick.
        keys = log_popularity + CHOOSE_WHAT_YOU_LIKE * true_score + rng.gumbel(size=true_score.shape)
        most = activity[block].max()
        top = np.argpartition(-keys, most - 1, axis=1)[:, :most]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        taken = np.arange(most) < activity[block, None]
        user, item = np.broadcast_to(block[:, None], top.shape)[taken], top[taken]
        chunks.append(pd.DataFrame({"user": user, "item": item, "true_score": true_score[user - first, item]}))
    table = pd.concat(chunks, ignore_index=True)
    table["rating"] = table.true_score + noise * rng.standard_normal(len(table))
    table["user_id"], table["item_id"] = table.user, table.item
    truth = {"item_group": item_group, "user_bias": user_bias, "item_bias": item_bias, "user_factors": user_factors, "item_factors": item_factors}
    return table[["user", "item", "rating", "true_score", "user_id", "item_id"]].astype({"rating": "float32", "true_score": "float32"}), truth


if args.data is None:
    users, items = args.users * args.scale, round(args.items * args.scale**0.5)
    ratings, truth = generate_ratings(users, items, args.ratings_per_user, args.noise, args.seed)
    data_name = f"generated: {users} users, {items} films, noise {args.noise}"
    workshop.log(f"data: {len(ratings)} generated ratings: {users} users, {items} films, noise sd {args.noise}")
print(ratings.head().to_string())

# %% [markdown]
# ## Look at the data
# How many ratings each film got, from the most rated to the least (on log axes a power law is
# a straight line; it bends down at the end, where a finite catalogue runs out of films), how
# many ratings each user gave, and the ratings themselves.

# %%
import matplotlib.pyplot as plt

n_users, n_items = int(ratings.user.max()) + 1, int(ratings.item.max()) + 1
ratings_per_item = np.bincount(ratings.item, minlength=n_items)
ratings_per_user = np.bincount(ratings.user, minlength=n_users)
top_percent = max(1, n_items // 100)  # the most popular 1% of the catalogue
share_top_percent_ratings = np.sort(ratings_per_item)[::-1][:top_percent].sum() / len(ratings)
skew = {  # the share of all ratings that the most rated 10% of films, and the most active 10% of users, hold
    "top_10pct_films_share": float(np.sort(ratings_per_item)[::-1][: max(1, n_items // 10)].sum() / len(ratings)),
    "top_10pct_users_share": float(np.sort(ratings_per_user)[::-1][: max(1, n_users // 10)].sum() / len(ratings)),
}
workshop.log(
    f"the most rated 1% of films ({top_percent}) hold {share_top_percent_ratings:.1%} of the ratings; "
    f"the most rated 10% of films hold {skew['top_10pct_films_share']:.1%}, the most active 10% of users gave {skew['top_10pct_users_share']:.1%}; "
    f"users gave {np.median(ratings_per_user):.0f} ratings (median), {ratings_per_user.min()} to {ratings_per_user.max()}"
)
figure, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
axes[0].loglog(np.arange(1, n_items + 1), np.sort(ratings_per_item)[::-1])
axes[0].set(xlabel="film, from most to least rated", ylabel="ratings", title="popularity: skewed towards a few films")
axes[1].hist(ratings_per_user, bins=np.logspace(0, np.log10(ratings_per_user.max() + 1), 30))
axes[1].set(xscale="log", xlabel="ratings given by a user", ylabel="users", title="user activity: skewed")
axes[2].hist(ratings.rating, bins=40)
axes[2].set(xlabel="rating (true score + noise, not cut to a scale)", ylabel="ratings", title="the ratings")
figure.suptitle(data_name)
workshop.save_figure(figure, args.out / "data.png")

# %% [markdown]
# ## The noise floor
# On made-up data we know each rating's true score. Predicting the true score leaves only the
# noise: its error, the root-mean-square error (RMSE) of the true score against the rating, is
# the noise's standard deviation. No model can do better on average: this is the floor. For a
# real data set nobody knows it.

# %%
known_truth = "true_score" in ratings


def rmse(predicted, actual) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)) ** 2)))


if known_truth:
    workshop.log(f"noise floor over all ratings: RMSE {rmse(ratings.true_score, ratings.rating):.4f} (noise sd {args.noise})")

# %% [markdown]
# ## Split: training, validation, test
# Each rating goes at random to training (80%), validation (10%, to stop training at the best
# epoch) or test (10%, scored once at the end). One rating of each user always stays in
# training, so the model has met every user it is tested on. (A stricter test holds out each
# user's latest ratings by their timestamp: see "What to try next".)

# %%
rng = np.random.default_rng(args.seed)
draw = rng.random(len(ratings))
part = np.where(draw < 0.1, "test", np.where(draw < 0.2, "validation", "train"))
one_per_user = pd.Series(np.arange(len(ratings))).groupby(ratings.user.to_numpy()).sample(1, random_state=args.seed).to_numpy()
part[one_per_user] = "train"
train, validation, test = (ratings[part == name].reset_index(drop=True) for name in ("train", "validation", "test"))
workshop.log(f"split: {len(train)} ratings to train on, {len(validation)} to validate, {len(test)} held out for the test")

# %% [markdown]
# ## Three baselines
# Each answers with less than a model: the **global mean** of the training ratings, each
# film's **mean rating** (the global mean for a film never rated in training), and **user plus
# film biases**: the mean plus how much higher this user rates than average plus how much
# higher this film is rated. The biases are fitted by a few rounds of least squares, shrunk
# towards 0 by a strength chosen on the validation ratings.

# %%
global_mean = float(train.rating.mean())
item_sum = np.bincount(train.item, weights=train.rating, minlength=n_items)
item_count = np.bincount(train.item, minlength=n_items)
item_mean = np.where(item_count > 0, item_sum / np.maximum(item_count, 1), global_mean)


def fit_biases(shrink: float, rounds: int = 10):
    """User and film biases by alternating least squares, each shrunk towards 0 by `shrink`."""
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    residual = train.rating.to_numpy() - global_mean
    for _ in range(rounds):
        user_bias = np.bincount(train.user, residual - item_bias[train.item], n_users) / (np.bincount(train.user, minlength=n_users) + shrink)
        item_bias = np.bincount(train.item, residual - user_bias[train.user], n_items) / (item_count + shrink)
    return user_bias, item_bias


def predict_biases(biases, table):
    return global_mean + biases[0][table.user] + biases[1][table.item]


shrinks = (1, 3, 10, 30)
validation_rmse_by_shrink = {shrink: rmse(predict_biases(fit_biases(shrink), validation), validation.rating) for shrink in shrinks}
best_shrink = min(validation_rmse_by_shrink, key=validation_rmse_by_shrink.get)
biases = fit_biases(best_shrink)
workshop.log(f"biases: shrink {best_shrink} chosen on validation (RMSE by shrink: {validation_rmse_by_shrink})")
predictions = test[["user_id", "item_id", "rating"] + (["true_score"] if known_truth else [])].rename(columns={"user_id": "user", "item_id": "item"})
predictions["global_mean"] = global_mean
predictions["item_mean"] = item_mean[test.item]
predictions["biases"] = predict_biases(biases, test)
print(predictions.head().to_string())

# %% [markdown]
# ## The model: matrix factorisation
# Each user and each film gets a bias and an embedding, a vector of `--factors` numbers
# learned from the ratings. The prediction is the global mean plus both biases plus the dot
# product of the two embeddings: it is high when the user's tastes match the film's traits.
# Nobody tells the model what the traits are (genres, say): it finds whatever explains the
# ratings.

# %%
import torch
from torch import nn

torch.manual_seed(args.seed)
threads = workshop.use_allocated_threads()
device = workshop.pick_device()


class MatrixFactorisation(nn.Module):
    def __init__(self, users: int, items: int, factors: int, global_mean: float):
        super().__init__()
        self.user_embedding, self.item_embedding = nn.Embedding(users, factors), nn.Embedding(items, factors)
        self.user_bias, self.item_bias = nn.Embedding(users, 1), nn.Embedding(items, 1)
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=0.1)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.register_buffer("global_mean", torch.tensor(global_mean))

    def forward(self, users, items):
        user_vector, item_vector = self.user_embedding(users), self.item_embedding(items)
        score = self.global_mean + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0]
        return score + (user_vector * item_vector).sum(dim=1)

    def penalty(self, users, items):
        """Weight decay on the rows this batch used: the L2 norm of its users' and films' parameters."""
        rows = (self.user_embedding(users), self.item_embedding(items), self.user_bias(users), self.item_bias(items))
        return sum(row.pow(2).sum(dim=1) for row in rows).mean()


model = MatrixFactorisation(n_users, n_items, args.factors, global_mean).to(device)
print(model)
parameters = sum(p.numel() for p in model.parameters())
workshop.log(f"parameters: {parameters:,} ({n_users} users + {n_items} films) x ({args.factors} factors + 1 bias)")

# %% [markdown]
# ## Training: mini-batches over ratings, early stopping
# Each epoch shuffles the training ratings and goes through them `--batch-size` at a time: the
# loss is the squared error of the predictions plus `--weight-decay` times the squared size of
# the embeddings and biases the batch used. The penalty pulls every user and film towards "no
# opinion" unless its ratings say otherwise, so a film with one rating cannot get an extreme
# embedding. After each epoch the validation RMSE decides: the best epoch's weights are kept,
# and training stops after `--patience` epochs without an improvement of at least 0.0005.

# %%
import copy


def as_tensors(table):
    return tuple(torch.tensor(table[column].to_numpy(), device=device) for column in ("user", "item", "rating"))


@torch.no_grad()
def predict(model, users, items, batch: int = 65536):
    return torch.cat([model(users[i : i + batch], items[i : i + batch]) for i in range(0, len(users), batch)])


def train_matrix_factorisation(weight_decay: float, label: str):
    """A fresh model trained with this weight decay; returns the best epoch's model and the history."""
    torch.manual_seed(args.seed)
    model = MatrixFactorisation(n_users, n_items, args.factors, global_mean).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    (users, items, targets), (val_users, val_items, val_targets) = as_tensors(train), as_tensors(validation)
    history, best, best_state, waited = [], float("inf"), None, 0
    progress = workshop.Progress(total=args.epochs, unit="ratings", label=f"{label} epoch")
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        order, squared_error = torch.randperm(len(users), device=device), 0.0
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            error = model(users[batch], items[batch]) - targets[batch]
            loss = error.pow(2).mean() + weight_decay * model.penalty(users[batch], items[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            squared_error += float(error.detach().pow(2).sum())
        seconds = time.perf_counter() - epoch_started  # float() above waited for the GPU's last step
        model.eval()
        validation_rmse = float((predict(model, val_users, val_items) - val_targets).pow(2).mean().sqrt())
        history.append({"epoch": epoch, "train_rmse": (squared_error / len(users)) ** 0.5, "validation_rmse": validation_rmse, "seconds": seconds})
        progress.step(epoch, items=len(users), train_rmse=history[-1]["train_rmse"], validation_rmse=validation_rmse)
        if validation_rmse < best - 0.0005:  # better by a margin: a creeping improvement is not worth more epochs
            best, best_state, waited = validation_rmse, copy.deepcopy(model.state_dict()), 0
        elif (waited := waited + 1) >= args.patience:
            workshop.log(f"{label}: no better validation RMSE for {args.patience} epochs; stopping")
            break
    model.load_state_dict(best_state)
    return model, history


model, history = train_matrix_factorisation(args.weight_decay, "mf")
best_epoch = min(history, key=lambda row: row["validation_rmse"])["epoch"]
training_seconds = sum(row["seconds"] for row in history)
ratings_per_second = len(train) * len(history) / training_seconds
workshop.log(f"best epoch {best_epoch} of {len(history)}; {ratings_per_second:,.0f} training ratings/s on {device}")
test_users, test_items, _ = as_tensors(test)
predictions["matrix_factorisation"] = predict(model, test_users, test_items).cpu().numpy()

# %% [markdown]
# ## Learning curves
# The training error keeps falling; the validation error stops falling when the model starts
# to learn the noise of its training ratings. The dashed line is the noise floor.

# %%
noise_floor = rmse(test.true_score, test.rating) if known_truth else None
figure, ax = plt.subplots(figsize=(6.5, 4))
ax.plot([row["epoch"] for row in history], [row["train_rmse"] for row in history], label="training ratings")
ax.plot([row["epoch"] for row in history], [row["validation_rmse"] for row in history], label="validation ratings")
ax.axvline(best_epoch, color="grey", lw=0.8, label=f"best epoch ({best_epoch})")
if known_truth:
    ax.axhline(noise_floor, color="black", ls="--", label=f"noise floor ({noise_floor:.3f})")
ax.set(xlabel="epoch", ylabel="RMSE", title="matrix factorisation: learning curves")
ax.legend()
workshop.save_figure(figure, args.out / "learning_curves.png")

# %% [markdown]
# ## A well-kept library on the same split: scikit-surprise
# [scikit-surprise](https://surpriselib.com) is a library for rating prediction; its `SVD` is
# the same model (biases plus embeddings, trained by stochastic gradient descent with an L2
# penalty, Simon Funk's method). It gets the same training ratings and the same number of
# factors, and keeps its other defaults (20 epochs, learning rate 0.005, penalty 0.02). It is
# here to show that our few lines of PyTorch are not fooling themselves.

# %%
import surprise

reader = surprise.Reader(rating_scale=(float(train.rating.min()), float(train.rating.max())))
trainset = surprise.Dataset.load_from_df(train[["user", "item", "rating"]], reader).build_full_trainset()
library_started = time.perf_counter()
library_model = surprise.SVD(n_factors=args.factors, random_state=args.seed).fit(trainset)
library_seconds = time.perf_counter() - library_started
library_predictions = library_model.test(list(zip(test.user, test.item, test.rating)))
predictions["surprise_svd"] = [prediction.est for prediction in library_predictions]
workshop.log(f"scikit-surprise {surprise.__version__} SVD: {library_seconds:.1f} s to train")

# %% [markdown]
# ## Held-out RMSE, every model, next to the floor
# All of them on the same held-out test ratings, which no model saw.

# %%
MODELS = ["global_mean", "item_mean", "biases", "matrix_factorisation", "surprise_svd"]
test_rmse = {name: rmse(predictions[name], predictions.rating) for name in MODELS}
for name, value in test_rmse.items():
    above = f" ({value / noise_floor - 1:+.1%} above the floor)" if known_truth else ""
    workshop.log(f"held-out RMSE {name:<22} {value:.4f}{above}")
if known_truth:
    workshop.log(f"held-out RMSE {'noise floor (true score)':<22} {noise_floor:.4f}")

# %% [markdown]
# ## Cold start: users with few ratings
# A user who rated three films gives the model little to go on. The held-out error by how many
# training ratings the user has shows where the model's knowledge runs out: with few ratings
# matrix factorisation falls back to little more than the biases.

# %%
BUCKETS = [(1, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None)]
user_train_ratings = np.bincount(train.user, minlength=n_users)[test.user]
by_activity = []
for low, high in BUCKETS:
    rows = (user_train_ratings >= low) & (user_train_ratings <= (high or np.inf))
    if rows.any():
        label = f"{low}-{high}" if high else f"{low}+"
        row = {"bucket": label, "test_ratings": int(rows.sum())}
        row |= {name: rmse(predictions[name][rows], predictions.rating[rows]) for name in ("biases", "matrix_factorisation", "surprise_svd")}
        if known_truth:
            row["noise_floor"] = rmse(predictions.true_score[rows], predictions.rating[rows])
        by_activity.append(row)
print(pd.DataFrame(by_activity).to_string(index=False))
figure, ax = plt.subplots(figsize=(7, 4))
for name in ["biases", "matrix_factorisation", "surprise_svd"] + (["noise_floor"] if known_truth else []):
    ax.plot([f"{row['bucket']}\n({row['test_ratings']})" for row in by_activity], [row[name] for row in by_activity],
            marker="o", ls="--" if name == "noise_floor" else "-", label=name.replace("_", " "))  # fmt: skip
ax.set(xlabel="the user's ratings in training (held-out ratings in the group)", ylabel="held-out RMSE", title="cold start: error by user activity")
ax.legend()
workshop.save_figure(figure, args.out / "rmse_by_activity.png")

# %% [markdown]
# ## Recommending: top-10 lists against "the most popular films"
# A recommender shows a short list, so the question changes: are the films a user liked among
# the ten we would show? For each user, every film they have not rated in training or
# validation is scored, and the ten best form the list. A held-out rating of 4 or more is a film
# they **liked**. Recall@10 is the share of those films in the list (out of at most 10);
# NDCG@10 also rewards putting them near the top. The baseline shows everyone the most rated
# films they have not rated yet. On made-up data a third list shows what a perfect rating
# model would do: the films with the highest true scores.

# %%
LIKED, TOP = 4.0, 10
seen = pd.concat([train, validation]).sort_values("user", kind="stable")
seen_users, seen_items = seen.user.to_numpy(), seen.item.to_numpy()
liked = test[test.rating >= LIKED]


def top_lists(score_rows) -> np.ndarray:
    """Each user's top-10 films not yet seen; `score_rows(users)` scores every film for those users."""
    lists = []
    for first in range(0, n_users, 1024):
        users = torch.arange(first, min(first + 1024, n_users), device=device)
        scores = score_rows(users)
        low, high = np.searchsorted(seen_users, [first, first + len(users)])  # this block's seen films
        scores[torch.tensor(seen_users[low:high] - first, device=device), torch.tensor(seen_items[low:high], device=device)] = -torch.inf
        lists.append(scores.topk(TOP, dim=1).indices.cpu().numpy())
    return np.concatenate(lists)


def ranking_quality(lists: np.ndarray) -> dict:
    """Mean recall@10 and NDCG@10 over the users with at least one liked held-out film."""
    hits = np.zeros_like(lists, dtype=bool)
    liked_sets = liked.groupby("user").item.apply(set)
    for user, films in liked_sets.items():
        hits[user] = [film in films for film in lists[user]]
    users = liked_sets.index.to_numpy()
    relevant = np.minimum(liked_sets.apply(len).to_numpy(), TOP)
    discount = 1 / np.log2(np.arange(TOP) + 2)
    ideal = np.cumsum(discount)[relevant - 1]
    return {"recall_at_10": float(np.mean(hits[users].sum(axis=1) / relevant)),
            "ndcg_at_10": float(np.mean((hits[users] * discount).sum(axis=1) / ideal)), "users": len(users)}  # fmt: skip


def score_model(model):
    return lambda users: model.user_embedding(users) @ model.item_embedding.weight.T + model.user_bias(users) + model.item_bias.weight.T


popularity = torch.as_tensor(item_count, dtype=torch.float32, device=device)
with torch.no_grad():
    lists = {"matrix_factorisation": top_lists(score_model(model)), "popularity": top_lists(lambda users: popularity.repeat(len(users), 1))}
if truth is not None:  # the reference: rank by the true score, what a perfect rating model would do
    true = {name: torch.tensor(values, dtype=torch.float32, device=device) for name, values in truth.items() if name != "item_group"}
    lists["true_score"] = top_lists(lambda users: true["user_bias"][users, None] + true["item_bias"] + true["user_factors"][users] @ true["item_factors"].T)
ranking = {name: ranking_quality(top) for name, top in lists.items()}
for name, quality in ranking.items():
    workshop.log(f"{name:<22} recall@10 {quality['recall_at_10']:.4f}  NDCG@10 {quality['ndcg_at_10']:.4f}  ({quality['users']} users)")

# %% [markdown]
# ## Bias made visible: who gets recommended?
# A trained model learns the biases of its data. Here the data favour popular films twice:
# they get more ratings, and the people who rate them chose them because they expected to like
# them. How many of the model's recommendations go to the most popular 1% of the films,
# compared with their 1% share of the catalogue? The weight decay matters: it decides how much
# a film with few ratings may stand out, so the run retrains the model at other strengths.

# %%
popular_films = np.argsort(-item_count, kind="stable")[:top_percent]


def share_to_popular(lists: np.ndarray) -> float:
    return float(np.isin(lists, popular_films).mean())


recommended = np.bincount(lists["matrix_factorisation"].ravel(), minlength=n_items)
# The full run tries five strengths, from a tenth to ten times --weight-decay; --quick two.
weight_decays = sorted({args.weight_decay * factor for factor in ((0.1, 1) if args.quick else (0.1, 0.3, 1, 3, 10))})
by_weight_decay = []
for weight_decay in weight_decays:
    swept = model if weight_decay == args.weight_decay else train_matrix_factorisation(weight_decay, f"wd {weight_decay:g}")[0]
    with torch.no_grad():
        swept_lists = top_lists(score_model(swept))
        swept_rmse = rmse(predict(swept, test_users, test_items).cpu().numpy(), test.rating)
    by_weight_decay.append({"weight_decay": weight_decay, "share_top_1pct": share_to_popular(swept_lists), "test_rmse": swept_rmse,
                            "recall_at_10": ranking_quality(swept_lists)["recall_at_10"]})  # fmt: skip
print(pd.DataFrame(by_weight_decay).to_string(index=False))
bias = {
    "catalogue_share_top_1pct": top_percent / n_items,
    "ratings_share_top_1pct": float(share_top_percent_ratings),
    "recommendations_share_top_1pct": share_to_popular(lists["matrix_factorisation"]),
    "popularity_baseline_share_top_1pct": share_to_popular(lists["popularity"]),
    "films_never_recommended": int((recommended == 0).sum()),
    "share_at_weakest_weight_decay": by_weight_decay[0]["share_top_1pct"],
    "share_at_strongest_weight_decay": by_weight_decay[-1]["share_top_1pct"],
}
workshop.log(
    f"the most popular 1% of films: {bias['catalogue_share_top_1pct']:.1%} of the catalogue, {bias['ratings_share_top_1pct']:.1%} of the ratings, "
    f"{bias['recommendations_share_top_1pct']:.1%} of the recommendations"
)
figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
axes[0].scatter(item_count + 1, recommended + 1, s=6, alpha=0.5)
axes[0].set(xscale="log", yscale="log", xlabel="ratings in training + 1", ylabel="times in a top-10 list + 1", title="popular films are recommended more")
axes[1].plot([row["weight_decay"] for row in by_weight_decay], [row["share_top_1pct"] for row in by_weight_decay], marker="o", label="recommendations")
axes[1].axhline(bias["ratings_share_top_1pct"], color="grey", ls=":", label="ratings")
axes[1].axhline(bias["catalogue_share_top_1pct"], color="black", ls="--", label="catalogue")
axes[1].set(xscale="log", xlabel="weight decay", ylabel="share going to the top 1% films", title="the share depends on the weight decay")
axes[1].legend(loc="center right")
workshop.save_figure(figure, args.out / "popularity_vs_recommended.png")

# %% [markdown]
# ## What the embeddings learned
# The films' embeddings, projected onto their two main directions (PCA), coloured by the true
# genre the generator gave each film (for your own data: by popularity). The model was never
# told the genres; if they form separate clouds, it found them in the ratings alone. Films
# with fewer than 5 training ratings are left out: they have little to learn from.

# %%
embeddings = model.item_embedding.weight.detach().cpu().numpy()[item_count >= 5]
centred = embeddings - embeddings.mean(axis=0)
projection = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
figure, ax = plt.subplots(figsize=(6, 5))
if truth is not None:
    for group in range(GENRES):
        members = truth["item_group"][item_count >= 5] == group
        ax.scatter(projection[members, 0], projection[members, 1], s=8, alpha=0.6, label=f"genre {group}")
    ax.legend(title="true group", markerscale=2)
else:
    points = ax.scatter(projection[:, 0], projection[:, 1], s=8, c=np.log10(item_count[item_count >= 5]), cmap="viridis")
    figure.colorbar(points, label="log10 ratings in training")
ax.set(xlabel="first principal direction", ylabel="second principal direction", title="film embeddings, in two dimensions")
workshop.save_figure(figure, args.out / "item_embeddings.png")

# %% [markdown]
# ## Memory and speed at scale
# Training keeps four numbers per parameter in memory: the weight, its gradient and Adam's two
# running averages, 4 bytes each. The tables grow with users and films. The ratings sit on the
# device too, 20 bytes each (two 8-byte ids, a 4-byte rating). The arithmetic for this set,
# and for one 32 GB V100S:

# %%
bytes_per_row = (args.factors + 1) * 4 * 4
memory = {
    "parameters": parameters,
    "bytes_per_user_or_film": bytes_per_row,
    "training_bytes_mb": parameters * 16 / 1e6,
    "training_mb_at_scale_100": (100 * n_users + round(10 * n_items)) * bytes_per_row / 1e6,  # the GPU job's set
    "ratings_mb_at_scale_100": 100 * len(ratings) * 20 / 1e6,
    "millions_of_rows_in_32_gb": 32e9 / bytes_per_row / 1e6,
    "millions_of_rows_in_32_gb_at_128_factors": 32e9 / (129 * 16) / 1e6,
}
workshop.log(
    f"memory: {parameters:,} parameters x 16 bytes = {parameters * 16 / 1e6:.1f} MB to train; "
    f"a 32 GB GPU holds the tables of at most {memory['millions_of_rows_in_32_gb']:.0f} million users and films at {args.factors} factors"
)

# %% [markdown]
# ## The results
# `metrics.json` holds the numbers the page shows; `predictions.csv` holds every held-out
# rating with each model's prediction (and, for made-up data, the true score), so anyone can
# recompute the RMSEs and the noise floor without this code.

# %%
workshop.atomic_write_bytes(args.out / "predictions.csv", predictions.to_csv(index=False, float_format="%.5g").encode())
workshop.log(f"wrote {args.out / 'predictions.csv'}")
metrics = {
    "data": data_name,
    "known_truth": known_truth,
    "users": n_users, "items": n_items, "ratings": len(ratings),
    "train_ratings": len(train), "validation_ratings": len(validation), "test_ratings": len(test),
    "noise": args.noise if known_truth else None,
    "noise_floor": noise_floor,
    "test_rmse": test_rmse,
    "mf_above_noise_floor": test_rmse["matrix_factorisation"] / noise_floor - 1 if known_truth else None,
    "biases_above_noise_floor": test_rmse["biases"] / noise_floor - 1 if known_truth else None,
    "surprise_above_noise_floor": test_rmse["surprise_svd"] / noise_floor - 1 if known_truth else None,
    "skew": skew,
    "bias_shrink": best_shrink,
    "ranking": ranking,
    "bias": bias,
    "by_weight_decay": by_weight_decay,
    "by_activity": by_activity,
    "history": [{key: value for key, value in row.items() if key != "seconds"} for row in history],
    "best_epoch": best_epoch,
    "epochs": args.epochs, "factors": args.factors, "weight_decay": args.weight_decay, "batch_size": args.batch_size, "scale": args.scale,
    "memory": memory,
    "library": {"name": "scikit-surprise", "version": surprise.__version__, "model": "SVD"},
    "timing": {"training_seconds": training_seconds, "ratings_per_second": ratings_per_second, "library_train_seconds": library_seconds},
}  # fmt: skip
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
workshop.report_result(
    mf_rmse=test_rmse["matrix_factorisation"], biases_rmse=test_rmse["biases"], noise_floor=noise_floor if known_truth else "unknown",
    recall_at_10=ranking["matrix_factorisation"]["recall_at_10"], popularity_recall_at_10=ranking["popularity"]["recall_at_10"],
)  # fmt: skip
