"""examples/fine_tuning.py: the ResNet-18 it writes out has torchvision's names and shapes, so a
file laid out like torchvision's ImageNet checkpoint loads into it; the three ways run in quick
mode; a folder of images is fine-tuned from such a file the three ways, and the frozen backbone
really stays frozen; a checkpoint of another layout and a broken image are named in one line;
and the GPU job file stages an archive to node-local /tmp, trains on it and cleans up. The run's contract (options, refusals such as a
checkpoint with missing or extra keys, same seed) is checked for every example in
test_example_contract.py."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_script

SCRIPT = REPO / "examples" / "fine_tuning.py"
GPU_JOB_FILE = REPO / "slurm" / "fine_tuning_gpu.sbatch"
# Stand-in for the fungi photos: three classes a person tells apart at a glance.
GENERATED_CLASSES = ("blue_rings", "green_stripes", "red_blobs")


def torchvision_resnet18_shapes(width: int = 64, classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """The names and shapes of torchvision's resnet18 state dict, written from torchvision's
    models/resnet.py (ResNet(BasicBlock, [2, 2, 2, 2])), not from the example: a stem conv1/bn1;
    layer1-4 of two BasicBlocks (conv1, bn1, conv2, bn2), where the first block of layer2-4 has
    a downsample (0: a 1x1 convolution, 1: batch norm); fc. `width` 64 is torchvision's."""

    def batch_norm(prefix: str, channels: int) -> dict:
        return {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")} | {
            f"{prefix}.num_batches_tracked": ()
        }

    shapes = {"conv1.weight": (width, 3, 7, 7), **batch_norm("bn1", width)}
    channels_in = width
    for stage, channels in enumerate((width, 2 * width, 4 * width, 8 * width), start=1):
        for block in range(2):
            prefix, block_in = f"layer{stage}.{block}", channels_in if block == 0 else channels
            shapes |= {f"{prefix}.conv1.weight": (channels, block_in, 3, 3), **batch_norm(f"{prefix}.bn1", channels)}
            shapes |= {f"{prefix}.conv2.weight": (channels, channels, 3, 3), **batch_norm(f"{prefix}.bn2", channels)}
            if block == 0 and stage > 1:
                shapes |= {f"{prefix}.downsample.0.weight": (channels, channels_in, 1, 1), **batch_norm(f"{prefix}.downsample.1", channels)}
        channels_in = channels
    return shapes | {"fc.weight": (classes, 8 * width), "fc.bias": (classes,)}


def write_torchvision_like_checkpoint(path: Path) -> Path:
    """A file with the names and shapes of torchvision's ImageNet ResNet-18 (random values)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in torchvision_resnet18_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = torch.ones(shape)
        else:
            state[name] = 0.05 * torch.randn(shape, generator=generator)
    torch.save(state, path)
    return path


def make_image_folder(root: Path, per_class: int) -> Path:
    """root/<class>/<n>.png (one JPEG per class too): 20x16 pixels, noisy."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:20]
    patterns = {
        "blue_rings": lambda: np.stack([0 * x, 0 * x, 255 * (np.hypot(x - 10, y - 8) % 6 < 3)], -1),
        "green_stripes": lambda: np.stack([0 * x, 255 * (x % 4 < 2), 0 * x], -1),
        "red_blobs": lambda: np.stack([255 * (np.hypot(x - rng.integers(5, 15), y - 8) < 5), 0 * x, 0 * x], -1),
    }
    for name in GENERATED_CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            noisy = np.clip(patterns[name]() + rng.normal(0, 30, (16, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / name / (f"{i}.jpg" if i == 0 else f"{i}.png"))
    return root


def test_fine_tuning_writes_its_pretrained_checkpoint_with_torchvisions_names_and_shapes(quick_run):
    run = quick_run("fine_tuning")
    saved = torch.load(run.out / "pretrained_digits_0-4.pt", weights_only=True)
    expected = torchvision_resnet18_shapes(width=run.metrics["width"], classes=5)
    assert sorted(saved) == sorted(expected), (
        f"names not in torchvision's ResNet-18: {sorted(set(saved) - set(expected))}; missing: {sorted(set(expected) - set(saved))}"
    )
    wrong = {name: tuple(saved[name].shape) for name in expected if tuple(saved[name].shape) != expected[name]}
    assert not wrong, f"shapes other than torchvision's (at width {run.metrics['width']}): {wrong}"


def test_fine_tuning_learns_the_new_digits_the_three_ways_and_full_fine_tuning_moves_the_backbone(quick_run):
    runs = quick_run("fine_tuning").metrics["runs"]
    assert {run["way"] for run in runs} == {"pixels", "scratch", "frozen", "full"}, f"the runs made: {runs}"
    moved = {run["way"]: run["backbone_change"] for run in runs}
    assert moved["full"] > 0, "full fine-tuning left the pretrained backbone exactly as it was"


def test_fine_tuning_scores_the_held_out_test_digits_each_drawn_in_several_pictures(quick_run):
    # The new task's test pictures are the 180 digits 5-9 of digits.py's test part, each drawn in
    # the wild 5 times; the labels come from its training part. Another count means the test
    # pictures are not the held-out digits, or that some were lost or doubled.
    run = quick_run("fine_tuning")
    metrics = run.metrics
    assert metrics["n_test_digits"] == 180, f"{metrics['n_test_digits']} test digits 5-9; digits.py's test part holds 180"
    assert metrics["n_test"] == 180 * metrics["test_pictures_per_digit"], (
        f"{metrics['n_test']} test pictures, not {metrics['test_pictures_per_digit']} of each of the 180 test digits"
    )
    assert metrics["n_target_pool"] == 626, f"labels drawn from {metrics['n_target_pool']} pictures; digits.py's training part holds 626 digits 5-9"
    assert (run.out / "training_pictures.png").is_file(), "the run did not show the pictures it learns from (training_pictures.png)"


def test_fine_tuning_loads_a_torchvision_checkpoint_and_fine_tunes_a_folder_skipping_an_unreadable_image(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=10)
    (folder / "red_blobs" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    checkpoint = write_torchvision_like_checkpoint(tmp_path / "resnet18_imagenet_layout.pth")
    out = tmp_path / "out"
    process = run_script(SCRIPT, "--quick", "--data", str(folder), "--weights", str(checkpoint), "--image-size", "32",
                         "--batch-size", "8", "--skip-unreadable", "--out", str(out))  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"{checkpoint} fits ResNet-18" in process.stdout, "the log does not say that the checkpoint fits"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == list(GENERATED_CLASSES), "the class names are the subfolders' names"
    assert metrics["skipped_unreadable"] == [str(folder / "red_blobs" / "truncated.jpg")], "the unreadable image was not skipped"
    assert (metrics["n_train"], metrics["n_validation"], metrics["n_test"]) == (21, 3, 6)
    assert set(metrics["results"]) == {"scratch", "frozen", "full"}, f"the ways trained: {sorted(metrics['results'])}"
    moved = {way: result["backbone_change"] for way, result in metrics["results"].items()}
    assert moved["frozen"] == 0, f"the frozen backbone moved by {moved['frozen']:.2e} (its weights or batch-norm statistics)"
    assert moved["full"] > 0, "full fine-tuning left the ImageNet backbone exactly as it was"


def test_fine_tuning_refuses_a_checkpoint_with_a_missing_and_an_extra_key_in_one_line_naming_both(tmp_path):
    # torchvision's layout with one tensor renamed, as in a checkpoint of a deeper ResNet (bn3).
    checkpoint = write_torchvision_like_checkpoint(tmp_path / "renamed.pth")
    state = torch.load(checkpoint, weights_only=True)
    state["layer4.1.bn3.weight"] = state.pop("layer4.1.bn2.weight")
    torch.save(state, checkpoint)
    folder = make_image_folder(tmp_path / "images", per_class=3)
    process = run_script(SCRIPT, "--data", str(folder), "--weights", str(checkpoint), "--out", str(tmp_path / "out"))
    assert process.returncode == 2 and len(process.stderr.strip().splitlines()) == 1, process.stderr[-3000:]
    assert "layer4.1.bn2.weight" in process.stderr, f"the message does not name the missing tensor: {process.stderr}"
    assert "layer4.1.bn3.weight" in process.stderr, f"the message does not name the extra tensor: {process.stderr}"


def test_fine_tuning_names_a_broken_image_and_how_to_skip_it(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=3)
    (folder / "green_stripes" / "broken.png").write_text("not an image\n")
    process = run_script(SCRIPT, "--data", str(folder), "--out", str(tmp_path / "out"))
    assert process.returncode == 2, process.stderr[-3000:]
    assert str(folder / "green_stripes" / "broken.png") in process.stderr, f"the message does not name the file: {process.stderr}"
    assert "--skip-unreadable" in process.stderr, f"the message does not say how to skip it: {process.stderr}"


@pytest.mark.slurm
def test_fine_tuning_gpu_job_stages_the_archive_to_local_tmp_trains_on_it_and_cleans_up(slurm_cluster, tmp_path):
    # A small archive laid out like the fungi one: <top folder>/<class>/<images>.
    make_image_folder(tmp_path / "archive" / "shapes", per_class=8)
    archive = tmp_path / "shapes.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "archive" / "shapes", arcname="shapes")
    checkpoint = write_torchvision_like_checkpoint(tmp_path / "resnet18_imagenet_layout.pth")

    # The job file unchanged; the archive, its folder, the weights and a small image size given through --export.
    export = {"DATA_ARCHIVE": str(archive), "IMAGES_IN_ARCHIVE": "shapes", "WEIGHTS": str(checkpoint), "IMAGE_SIZE": "32"}
    run = slurm_cluster.submit(GPU_JOB_FILE, export=export)
    assert run.exit_code == 0, run.explain()
    assert run.log.strip().splitlines()[-1].startswith("result: "), run.explain()
    assert f"staged {archive} to " in run.log, "the log does not say where the archive was staged"
    metrics = json.loads((run.results_dir / "metrics.json").read_text())
    assert metrics["classes"] == list(GENERATED_CLASSES), "the job did not train on the staged images"
    staged = Path(metrics["data"])
    assert staged.name == "shapes" and f"_{run.job_id}_" in staged.parent.name, f"not staged into a folder of the job's own: {staged}"
    assert not staged.parent.exists(), f"the job left its staged copy in {staged.parent}"


def test_what_the_page_says_about_the_published_results_still_holds():
    # The page explains, in words, what the published full run found. Words cannot come from
    # metrics.json: if a new full run (make results) says otherwise, this fails and the page must
    # be rewritten.
    page = " ".join((REPO / "docs" / "examples" / "fine-tuning.md").read_text().split())  # one space between words
    metrics = json.loads((REPO / "docs" / "results" / "fine_tuning" / "metrics.json").read_text())
    at, chance = metrics["at_headline"], metrics["chance_level"]
    claims = {
        "pretraining on the digits 0-4 paid": at["full"] > at["scratch"],
        "The pixels alone barely beat guessing": at["pixels"] < chance + 0.1,
        "The pretrained features already look past the colours": at["frozen"] > max(at["pixels"], at["scratch"]),
        "it scored best with every number of labels": all(
            points["mean"] >= max(metrics["curve"][way][count]["mean"] for way in ("pixels", "scratch", "frozen"))
            for count, points in metrics["curve"]["full"].items()
        ),
        "it stays far below the": metrics["curve"]["full"][str(max(metrics["labels"]))]["mean"] < metrics["pretrain_validation_accuracy"] - 0.1,
    }
    made = {claim: holds for claim, holds in claims.items() if claim in page}
    assert made, "the page makes none of the claims this test knows: update the test with the page"
    wrong = [claim for claim, holds in made.items() if not holds]
    assert not wrong, f"the page says what the published run does not show: {wrong}; at {metrics['headline_labels']} labels: {at}"
