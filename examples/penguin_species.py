"""Penguin species with scikit-learn

Can a model tell a penguin's species (Adelie, Chinstrap or Gentoo) from its bill, flippers,
weight, sex and island? This example answers that the honest way:

- the gaps in the data are counted and handled in the open, not silently dropped;
- a quarter of the penguins is set aside (stratified, fixed seed) and never looked at until
  the very end: the held-out test set;
- two kinds of model, a linear one (logistic regression) and a tree ensemble (random forest),
  are compared by cross-validation on the training part only, and the better one is chosen;
- both are then scored once on the held-out set, next to the reference any model must beat:
  always guessing the most common species.

Data: the Palmer penguins (Gorman, Williams and Fraser, 2014), from the `palmerpenguins`
package (no download).
"""

# %%
import time

import matplotlib

matplotlib.use("Agg")  # write figures to files; a batch job has no screen
import matplotlib.pyplot as plt
import numpy as np
from palmerpenguins import load_penguins
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

import workshop

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORIES = ["island", "sex"]
TARGET = "species"
TEST_FRACTION = 0.25  # of the penguins, held out for the final test


# %% [markdown]
# ## The whole run
# `main()` reads the command line first, so a mistake there stops the run before any work;
# then data, split, cross-validation, the held-out test and the results, in that order.


# %%
def main() -> None:
    parser = workshop.make_parser(
        "Tell penguin species apart from their measurements: logistic regression against a random forest, "
        "chosen by cross-validation, scored on held-out penguins.",
        default_out="results/penguin_species",
    )
    parser.add_argument(
        "--folds",
        type=workshop.positive_int,
        help="cross-validation folds, 2 or more (default: 5; 3 with --quick)",
    )
    parser.add_argument(
        "--trees",
        type=workshop.positive_int,
        help="trees in the random forest (default: 300; 30 with --quick)",
    )
    args = workshop.parse_args(parser)
    folds = args.folds or (3 if args.quick else 5)
    trees = args.trees or (30 if args.quick else 300)
    # The solver's iteration cap: quick mode stays short however the data behave.
    max_iterations = 100 if args.quick else 1000
    if folds < 2:
        parser.error(f"--folds {folds}: cross-validation needs 2 folds or more")

    started = time.perf_counter()
    workshop.seed_everything(args.seed)
    threads = workshop.cpus_from_allocation()
    # NumPy's BLAS and scikit-learn's OpenMP would otherwise start one thread per core of
    # the whole node; limit them to what the job was given.
    threadpool_limits(threads)
    workshop.log(f"threads: {threads} (the random forest's n_jobs, and the numeric libraries)")

    # The data, and its gaps: count what is missing before deciding what to do about it.
    penguins = load_penguins()
    missing = count_missing(penguins)
    penguins, dropped = drop_unmeasured(penguins)
    sex_missing = int(penguins["sex"].isna().sum())
    workshop.log(
        f"sex: {sex_missing} of the remaining {len(penguins)} penguins have none recorded; "
        "the pipeline fills it with the most common sex of the training part"
    )
    # Hold out a test set, then compare two models by cross-validation on the rest.
    # `stratify` keeps the species' shares the same in both parts; the test part is not
    # looked at again until the end.
    features, species = penguins[MEASUREMENTS + CATEGORIES], penguins[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(
        features, species, test_size=TEST_FRACTION, stratify=species, random_state=args.seed
    )
    workshop.log(f"split: {len(x_train)} penguins to train on, {len(x_test)} held out for the final test")
    rarest = int(y_train.value_counts().min())
    if folds > rarest:
        raise workshop.UsageError(
            f"--folds {folds} is more than the {rarest} penguins of the rarest species in the training part; "
            f"choose {rarest} or fewer"
        )
    plot_features(penguins, args.out / "features.png")

    models = {
        "logistic_regression": make_pipeline(preprocessing(), LogisticRegression(max_iter=max_iterations)),
        "random_forest": make_pipeline(
            preprocessing(), RandomForestClassifier(n_estimators=trees, random_state=args.seed, n_jobs=threads)
        ),
    }
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=args.seed)
    cv_accuracy = {name: cross_validate(model, x_train, y_train, splitter, name) for name, model in models.items()}
    # Ties go to the first, simpler model.
    chosen = max(models, key=lambda name: np.mean(cv_accuracy[name]))
    workshop.log(f"chosen by cross-validation: {chosen}")

    # The held-out test, once, next to the majority-class baseline.
    test_accuracy, predictions = {}, {}
    for name, model in models.items():
        model.fit(x_train, y_train)
        predictions[name] = model.predict(x_test)
        test_accuracy[name] = accuracy_score(y_test, predictions[name])
        workshop.log(f"held-out accuracy, {name}: {test_accuracy[name]:.4f}")
    # The reference: always answer the species most common in the training part.
    baseline = DummyClassifier(strategy="most_frequent").fit(x_train, y_train)
    baseline_accuracy = accuracy_score(y_test, baseline.predict(x_test))
    workshop.log(f"held-out accuracy, majority-class baseline (always {y_train.mode()[0]}): {baseline_accuracy:.4f}")
    plot_confusion(y_test, predictions[chosen], chosen, test_accuracy[chosen], args.out / "confusion_matrix.png")

    metrics = {
        "chosen_model": chosen,
        "test_accuracy": test_accuracy[chosen],
        "baseline_accuracy": baseline_accuracy,
        "test_accuracy_by_model": test_accuracy,
        "cv_accuracy_mean": {name: float(np.mean(scores)) for name, scores in cv_accuracy.items()},
        "cv_accuracy_std": {name: float(np.std(scores)) for name, scores in cv_accuracy.items()},
        "cv_accuracy_folds": cv_accuracy,
        "folds": folds,
        "trees": trees,
        "n_penguins": len(penguins) + dropped,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "missing_values": missing,
        "rows_dropped_no_measurements": dropped,
        "sex_imputed": sex_missing,
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device="cpu", threads=threads))
    workshop.report_result(
        model=chosen, test_accuracy=test_accuracy[chosen], baseline=baseline_accuracy, n_test=len(x_test)
    )


# %% [markdown]
# ## Helpers
# Missing values: count them per column, drop only the penguins with no measurements at all.


# %%
def count_missing(penguins) -> dict[str, int]:
    """Log and return how many values each column lacks."""
    missing = {column: int(count) for column, count in penguins.isna().sum().items()}
    gaps = ", ".join(f"{column} {count}" for column, count in missing.items() if count) or "none"
    workshop.log(f"data: {len(penguins)} penguins; missing values per column: {gaps}")
    return missing


def drop_unmeasured(penguins):
    """Drop the penguins with none of the four measurements: there is nothing to learn from them."""
    unmeasured = penguins[MEASUREMENTS].isna().all(axis=1)
    workshop.log(
        f"dropped {int(unmeasured.sum())} penguins with no measurements at all "
        f"(rows {', '.join(map(str, penguins.index[unmeasured]))}); {int((~unmeasured).sum())} remain"
    )
    return penguins[~unmeasured], int(unmeasured.sum())


def preprocessing() -> ColumnTransformer:
    """Fill gaps, scale measurements, one-hot encode categories, fitted on training data only.

    Inside a pipeline, each cross-validation fold fits the imputers and the scaler on its own
    training folds: the fold it is scored on never leaks into them.
    """
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("measurements", numeric, MEASUREMENTS), ("categories", categorical, CATEGORIES)])


def cross_validate(model, features, species, splitter, name: str) -> list[float]:
    """Fit a fresh copy of `model` on all folds but one and score it on that one, for each fold."""
    progress = workshop.Progress(total=splitter.get_n_splits(), unit="penguins", label=f"{name} fold")
    scores = []
    for fold, (fit_rows, score_rows) in enumerate(splitter.split(features, species), start=1):
        fitted = clone(model).fit(features.iloc[fit_rows], species.iloc[fit_rows])
        scores.append(float(fitted.score(features.iloc[score_rows], species.iloc[score_rows])))
        progress.step(fold, items=len(fit_rows), accuracy=scores[-1])
    workshop.log(f"cross-validation, {name}: accuracy {np.mean(scores):.4f} +/- {np.std(scores):.4f}")
    return scores


# %% [markdown]
# ## Figures


# %%
def plot_features(penguins, path) -> None:
    """Two views of the measurements, one colour per species."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    views = [("bill_length_mm", "bill_depth_mm"), ("flipper_length_mm", "body_mass_g")]
    for ax, (x, y) in zip(axes, views):
        for name, group in penguins.groupby(TARGET):
            ax.scatter(group[x], group[y], s=18, alpha=0.75, label=name)
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(axis_label(y))
        ax.grid(alpha=0.3)
    axes[0].legend(title="species")
    figure.suptitle(f"{len(penguins)} penguins: bills tell all three species apart, body size only Gentoo")
    workshop.save_figure(figure, path)


def axis_label(column: str) -> str:
    """'bill_length_mm' -> 'bill length (mm)'."""
    name, unit = column.rsplit("_", 1)
    return f"{name.replace('_', ' ')} ({unit})"


def plot_confusion(truth, predicted, model: str, accuracy: float, path) -> None:
    """Which species the chosen model took for which, on the held-out penguins."""
    figure, ax = plt.subplots(figsize=(5.5, 4.5))
    ConfusionMatrixDisplay.from_predictions(truth, predicted, ax=ax, cmap="Blues", colorbar=False)
    ax.set_title(f"held-out set, {model.replace('_', ' ')}: {accuracy:.1%} correct")
    ax.set_xlabel("predicted species")
    ax.set_ylabel("true species")
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
