"""Penguin species with scikit-learn

Can a model tell a penguin's species (Adelie, Chinstrap or Gentoo) from its bill, flippers,
weight, sex and island? This example answers that the honest way: the gaps in the data are
handled in the open; a quarter of the penguins is set aside and not looked at until the end;
two kinds of model are compared by cross-validation on the rest; and the chosen one is scored
once on the held-out penguins, next to the score of always guessing the most common species.

Data: the Palmer penguins (Gorman, Williams and Fraser, 2014), from the `palmerpenguins`
package (no download).
"""

# %% [markdown]
# ## The options
# Every option has a default, so the notebook runs as it is. `--quick` (the tests' short run)
# uses fewer folds and trees; an option you give yourself always wins. A mistake on the command
# line stops the run here, before any work.

# %%
import time

import workshop

parser = workshop.make_parser(
    "Tell penguin species apart from their measurements: logistic regression against a random forest, "
    "chosen by cross-validation, scored on held-out penguins.",
    default_out="results/penguin_species",
)
parser.add_argument("--folds", type=workshop.at_least(2), default=5, help="cross-validation folds")
parser.add_argument("--trees", type=workshop.at_least(1), default=300, help="trees in the random forest")
args = workshop.parse_args(parser, quick_defaults={"folds": 3, "trees": 30})
started = time.perf_counter()
workshop.log(f"options: --folds {args.folds} --trees {args.trees} --seed {args.seed} --out {args.out}")

# %% [markdown]
# ## The data, and its gaps
# One row per penguin: four measurements, the island, the sex, the year, and the species we
# want to predict. Count what is missing before deciding what to do about it.

# %%
from palmerpenguins import load_penguins

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORIES = ["island", "sex"]

penguins = load_penguins()
print(penguins.head().to_string())
missing = {column: int(count) for column, count in penguins.isna().sum().items()}
gaps = ", ".join(f"{column} {count}" for column, count in missing.items() if count)
workshop.log(f"data: {len(penguins)} penguins; missing values per column: {gaps}")

# %% [markdown]
# A penguin with none of the four measurements gives a model nothing to learn from: drop it,
# and say which. A missing sex is a smaller gap: those penguins stay, and the model below fills
# their sex in from the training penguins, in the open.

# %%
unmeasured = penguins[MEASUREMENTS].isna().all(axis=1)
measured = penguins[~unmeasured]
workshop.log(
    f"dropped {int(unmeasured.sum())} penguins with no measurements at all "
    f"(rows {', '.join(map(str, penguins.index[unmeasured]))}); {len(measured)} remain"
)
sex_missing = int(measured["sex"].isna().sum())
workshop.log(f"sex: {sex_missing} of the remaining {len(measured)} penguins have none recorded; the model fills it in")

# %% [markdown]
# ## A held-out test set, first
# A quarter of the penguins is set aside now and used once, at the very end. `stratify` keeps
# each species' share the same in both parts; the seed makes every run hold out the same
# penguins. Cross-validation splits the training part into folds, so each fold needs penguins
# of every species: the rarest species limits `--folds`.

# %%
from sklearn.model_selection import train_test_split

features, species = measured[MEASUREMENTS + CATEGORIES], measured["species"]
x_train, x_test, y_train, y_test = train_test_split(features, species, test_size=0.25, stratify=species, random_state=args.seed)
workshop.log(f"split: {len(x_train)} penguins to train on, {len(x_test)} held out for the final test")
print(y_train.value_counts().to_string())
rarest = int(y_train.value_counts().min())
if args.folds > rarest:
    workshop.refuse(
        f"--folds {args.folds} is more than the {rarest} penguins of the rarest species in the training part; "
        f"choose {rarest} or fewer"
    )

# %% [markdown]
# ## Look at the training penguins
# Only at the training part: a pattern spotted in the test penguins would leak into our choices.

# %%
import matplotlib.pyplot as plt


def axis_label(column: str) -> str:
    """'bill_length_mm' -> 'bill length (mm)'."""
    name, unit = column.rsplit("_", 1)
    return f"{name.replace('_', ' ')} ({unit})"


figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, (x, y) in zip(axes, [("bill_length_mm", "bill_depth_mm"), ("flipper_length_mm", "body_mass_g")]):
    for name, group in x_train.groupby(y_train):
        ax.scatter(group[x], group[y], s=18, alpha=0.75, label=name)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.grid(alpha=0.3)
axes[0].legend(title="species")
figure.suptitle(f"{len(x_train)} training penguins: bills tell all three species apart, body size only Gentoo")
workshop.save_figure(figure, args.out / "features.png")

# %% [markdown]
# ## The preparation, inside the model
# Measurements: a gap gets the median, then each is scaled to mean 0 and spread 1 (grams would
# otherwise outweigh millimetres). Categories: a gap gets the most common value, then one-hot
# encoding turns each into columns of 0 and 1. In a pipeline this preparation is fitted with the
# model, on the model's training data only: in cross-validation, the fold being scored never
# leaks into the medians, the scaling or the most common sex.

# %%
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

preparation = ColumnTransformer(
    [
        ("measurements", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), MEASUREMENTS),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), CATEGORIES),
    ]
)
print(preparation)

# %% [markdown]
# ## Threads: as many as the job was given
# NumPy's linear algebra (BLAS) and scikit-learn's compiled loops (OpenMP) start one thread per
# core they can see. Where that is more than the job asked for (a node that does not pin jobs to
# their cores, a Jupyter session on a shared machine), the threads queue for the few cores the
# job has, and slow it down. So the number comes from the allocation, `SLURM_CPUS_PER_TASK`:
# threadpoolctl caps those libraries, and the random forest grows that many trees at a time.

# %%
from threadpoolctl import threadpool_limits

threads = workshop.cpus_from_allocation()
threadpool_limits(limits=threads)
workshop.log(f"threads: {threads} (BLAS and OpenMP capped by threadpoolctl; the random forest's n_jobs)")

# %% [markdown]
# ## Two models
# A linear model (logistic regression) and a tree ensemble (a random forest), each behind its
# own fresh copy of the preparation (`clone`).

# %%
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

models = {
    "logistic_regression": make_pipeline(clone(preparation), LogisticRegression(max_iter=1000)),
    "random_forest": make_pipeline(
        clone(preparation), RandomForestClassifier(n_estimators=args.trees, n_jobs=threads, random_state=args.seed)
    ),
}
for name, model in models.items():
    workshop.log(f"{name}: {model.steps[-1][1]}")

# %% [markdown]
# ## Cross-validation on the training part
# `cross_validate` fits a fresh copy of a model on all folds but one and scores it on that one,
# once per fold, so every training penguin is scored once by a model that did not see it.
# `StratifiedKFold` keeps the species' shares in every fold. The better mean picks the model;
# a tie goes to the first, simpler one.

# %%
import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_validate

folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
progress = workshop.Progress(total=len(models), unit="fits", label="cross-validation")
cv_accuracy, cv_penguins_scored = {}, {}
for step, (name, model) in enumerate(models.items(), start=1):
    result = cross_validate(model, x_train, y_train, cv=folds, scoring="accuracy", return_indices=True)
    cv_accuracy[name] = result["test_score"]
    cv_penguins_scored[name] = sum(len(rows) for rows in result["indices"]["test"])
    workshop.log(f"{name}: accuracy per fold {' '.join(f'{score:.3f}' for score in cv_accuracy[name])}")
    progress.step(step, items=args.folds, model=name, cv_accuracy=float(np.mean(cv_accuracy[name])))
chosen = max(models, key=lambda name: np.mean(cv_accuracy[name]))
workshop.log(f"chosen by cross-validation: {chosen}")

# %% [markdown]
# ## The held-out test, once, next to a baseline
# Both models are fitted on the whole training part and scored on the held-out penguins. The
# reference any model must beat: always answer the species most common in the training part
# (`DummyClassifier`), which needs no measurement at all.

# %%
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score

test_accuracy, predictions = {}, {}
for name, model in models.items():
    predictions[name] = model.fit(x_train, y_train).predict(x_test)
    test_accuracy[name] = accuracy_score(y_test, predictions[name])
    workshop.log(f"held-out accuracy, {name}: {test_accuracy[name]:.4f}")
baseline = DummyClassifier(strategy="most_frequent").fit(x_train, y_train)
baseline_accuracy = accuracy_score(y_test, baseline.predict(x_test))
workshop.log(f"held-out accuracy, majority-class baseline (always {y_train.mode()[0]}): {baseline_accuracy:.4f}")

# %% [markdown]
# ## Which penguins were mistaken for which
# The confusion matrix of the chosen model: the diagonal holds the right answers.

# %%
from sklearn.metrics import ConfusionMatrixDisplay

figure, ax = plt.subplots(figsize=(5.5, 4.5))
ConfusionMatrixDisplay.from_predictions(y_test, predictions[chosen], ax=ax, cmap="Blues", colorbar=False)
ax.set_title(f"held-out set, {chosen.replace('_', ' ')}: {test_accuracy[chosen]:.1%} correct")
ax.set_xlabel("predicted species")
ax.set_ylabel("true species")
workshop.save_figure(figure, args.out / "confusion_matrix.png")

# %% [markdown]
# ## The results
# `metrics.json` holds the numbers the page shows, and where and how the run ran.

# %%
metrics = {
    "chosen_model": chosen,
    "test_accuracy": test_accuracy[chosen],
    "baseline_accuracy": baseline_accuracy,
    "test_accuracy_by_model": test_accuracy,
    "cv_accuracy_mean": {name: float(np.mean(scores)) for name, scores in cv_accuracy.items()},
    "cv_accuracy_std": {name: float(np.std(scores)) for name, scores in cv_accuracy.items()},
    "cv_accuracy_folds": {name: scores.tolist() for name, scores in cv_accuracy.items()},
    "cv_penguins_scored": cv_penguins_scored,
    "folds": args.folds,
    "trees": args.trees,
    "n_penguins": len(penguins),
    "n_train": len(x_train),
    "n_test": len(x_test),
    "missing_values": missing,
    "rows_dropped_no_measurements": int(unmeasured.sum()),
    "sex_imputed": sex_missing,
}
workshop.write_metrics(args.out, metrics, started, device="cpu", threads=threads)
workshop.report_result(model=chosen, test_accuracy=test_accuracy[chosen], baseline=baseline_accuracy, n_test=len(x_test))
