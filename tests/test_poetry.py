"""examples/poetry.py: the n-gram baseline is a proper probability model; the split keeps every
poem on one side; the copying statistics count what they say; a short run of the Transformer
beats character frequencies; the written files let anyone check the numbers; and the CPU job
trains on whatever file POEMS names. The run's contract (options, refusals, same seed) is
checked for every example in test_example_contract.py."""

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_example, skip_or_fail
from example_contracts import BY_NAME

SCRIPT = REPO / "examples" / "poetry.py"
CPU_JOB_FILE = REPO / "slurm" / "poetry.sbatch"
OTHER_POEMS = Path("/usr/share/games/fortunes/love")  # another file of the fortunes package, also %-separated


def definitions_from_the_script(names: set[str], namespace: dict) -> dict:
    """The named top-level functions, classes and constants of the script, run in `namespace`.
    The script is a lesson of top-level cells: importing it would run the whole example."""
    wanted = [
        node
        for node in ast.parse(SCRIPT.read_text()).body
        if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names)
        or (isinstance(node, ast.Assign) and {getattr(target, "id", None) for target in node.targets} & names)
    ]
    found = {getattr(node, "name", None) or node.targets[0].id for node in wanted}
    assert found == names, f"examples/poetry.py no longer defines {sorted(names - found)} at its top level"
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(SCRIPT), "exec"), namespace)
    return namespace


def kneser_ney_for(text: str, max_order: int):
    """The script's KneserNey, trained on `text`, with its alphabet: code 0 for unknown, as there."""
    alphabet = ["?", *sorted(set(text))]
    namespace = definitions_from_the_script(
        {"ngram_numbers", "look_up", "Counts", "KneserNey"}, {"np": np, "dataclass": dataclass, "V": len(alphabet)}
    )
    code_of = {character: code for code, character in enumerate(alphabet)}
    model = namespace["KneserNey"](np.array([code_of[character] for character in text]), max_order)
    return model, code_of, len(alphabet)


@pytest.mark.parametrize("context", ["the c", "at", "", "zqx", "mat on th"], ids=repr)
def test_kneser_ney_probabilities_sum_to_one_over_the_alphabet(context):
    # Seen contexts, the start of a text (no context), and a context never seen in training.
    model, code_of, alphabet_size = kneser_ney_for("the cat sat on the mat. the rat ate the hat.\n" * 3, max_order=4)
    before = [code_of.get(character, 0) for character in context]
    for order in range(1, 5):
        probabilities = [
            model.probabilities(np.array([*before, code]), order, start=len(before))[0] for code in range(alphabet_size)
        ]
        assert min(probabilities) > 0, f"order {order}, context {context!r}: a character got probability 0"
        total = sum(probabilities)
        assert total == pytest.approx(1, abs=1e-9), f"order {order}, context {context!r}: the probabilities sum to {total}"


def test_kneser_ney_prefers_what_followed_the_context_in_training():
    model, code_of, _ = kneser_ney_for("the cat sat on the mat. the rat ate the hat.\n" * 3, max_order=3)
    after_th = {
        character: model.probabilities(np.array([code_of["t"], code_of["h"], code]), 3, start=2)[0]
        for character, code in code_of.items()
    }
    best = max(after_th, key=after_th.get)
    assert best == "e", f"after 'th' the 3-gram model likes {best!r} best, not 'e'"


def test_copying_statistics_on_a_hand_made_case():
    namespace = definitions_from_the_script({"COPY_NGRAM", "longest_copied_run", "share_copied"}, {})
    longest_copied_run, share_copied = namespace["longest_copied_run"], namespace["share_copied"]
    training = "the sea was calm that night, and the moon was out\n"
    assert longest_copied_run("so calm that night, my dear", training) == len(" calm that night, ")
    assert longest_copied_run("xyz", training) == 0, "no character of 'xyz' is in the training text"
    assert longest_copied_run(training, training) == len(training), "a copy of the training text is copied all along"
    # "the moon was bright" has 12 8-grams: the 6 from "the moon" to "oon was " are in training, the rest not.
    training_ngrams = {training[i : i + 8] for i in range(len(training) - 7)}
    assert share_copied("the moon was bright", training_ngrams) == pytest.approx(6 / 12)


def test_the_split_puts_every_poem_on_exactly_one_side_and_leaves_none_out(quick_run):
    run = quick_run("poetry")
    split = json.loads((run.out / "split.json").read_text())
    sides = {part: set(split[part]) for part in ("train", "validation", "test")}
    for first, second in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not sides[first] & sides[second], f"poems {sorted(sides[first] & sides[second])} are in both {first} and {second}"
    # Rebuilt from the source file alone, as a reviewer would: entries between lines holding only %.
    entries = re.split(r"^%\n", Path(split["source"]).read_text(), flags=re.MULTILINE)
    non_empty = {number for number, entry in enumerate(entries) if entry.strip()}
    assert set().union(*sides.values()) == non_empty, "the three parts together are not all the poems of the file"
    assert len(sides["test"]) == len(sides["validation"]) == len(non_empty) // 10, "test and validation should hold a tenth each"


def test_a_short_run_beats_the_unigram_model_on_every_seed(quick_run, tmp_path):
    # Quick mode trains a tiny model for 60 steps of 8 windows: seed 0 and seed 1 scored 4.08 and
    # 4.03 bits per character on the test poems, against 4.72 for character frequencies and 6.57
    # for uniform.
    for seed, metrics in ((0, quick_run("poetry").metrics), (1, None)):
        if metrics is None:
            process = run_example(BY_NAME["poetry"], tmp_path, "--seed", str(seed))
            assert process.returncode == 0, process.stderr[-2000:]
            metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
        bits = metrics["bits_per_character"]
        assert bits["transformer"] < bits["unigram"] < bits["uniform"], f"seed {seed}: bits per character {bits}"
        assert bits["ngram"] < bits["unigram"], f"the {metrics['ngram_order']}-gram does not beat the unigram model: {bits}"


def test_samples_and_held_out_passages_are_written_as_plain_text_with_their_copying_numbers(quick_run):
    run = quick_run("poetry")
    metrics = run.metrics
    written = (run.out / "samples.txt").read_text()
    assert list(metrics["samples"]) == ["low", "middle", "high"], "samples at three temperatures"
    for level, texts in metrics["samples"].items():
        assert len(texts) == 2, f"quick mode draws 2 samples per temperature, the {level} one has {len(texts)}"
        for number, text in enumerate(texts, start=1):
            assert len(text) == metrics["sample_length"]
            heading = f"=== temperature {metrics['temperatures'][level]} ({level}), sample {number} of 2 ===\n"
            assert heading + text + "\n" in written, f"sample {number} at the {level} temperature is not in samples.txt"
    assert list(metrics["copying"]) == ["low", "middle", "high", "people"], "copying numbers for 3 temperatures and the people"
    written_passages = (run.out / "held_out_passages.txt").read_text()
    passages = re.split(r"^=== test passage \d+ of \d+ ===\n", written_passages, flags=re.MULTILINE)[1:]
    assert len(passages) == len(metrics["copying"]["people"]) == 6
    test_poems = [
        entry.strip("\n")
        for number, entry in enumerate(re.split(r"^%\n", Path(metrics["data"]).read_text(), flags=re.MULTILINE))
        if number in set(json.loads((run.out / "split.json").read_text())["test"])
    ]
    for passage in passages:
        starts_a_test_poem = any(passage.startswith(poem[:40]) for poem in test_poems)
        assert starts_a_test_poem, f"a held-out passage does not start a test poem: {passage[:60]!r}"


@pytest.mark.slurm
def test_the_cpu_job_trains_on_the_file_that_POEMS_names(slurm_cluster):
    if not OTHER_POEMS.is_file():
        skip_or_fail(f"{OTHER_POEMS} is missing: scripts/setup.sh --tests installs Debian's fortunes package")
    run = slurm_cluster.submit(CPU_JOB_FILE, export={"POEMS": str(OTHER_POEMS)})
    assert run.exit_code == 0, run.explain()
    assert run.log.strip().splitlines()[-1].startswith("result: "), run.explain()
    metrics = json.loads((run.results_dir / "metrics.json").read_text())
    assert metrics["data"] == str(OTHER_POEMS), f"the job trained on {metrics['data']}, not on the file POEMS named"
