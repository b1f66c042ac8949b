"""examples/workshop.py, the run's plumbing: the GPU preflight that stops a run on a GPU the
installed PyTorch has no kernels for (tested with made-up GPUs: this machine has none), and the
allocation's CPUs shared between torch threads and data-loader workers."""

import pytest
import torch

import workshop


def fake_gpu(monkeypatch, capability: tuple[int, int], built_for: list[str], name: str = "Tesla V100S-PCIE-32GB"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: built_for)


def test_a_v100s_under_a_build_without_volta_kernels_stops_before_training_in_one_line(monkeypatch, capsys):
    # PyTorch 2.13's CUDA 12.8 builds start at Turing (sm_75): a V100S (sm_70) has no kernels there.
    fake_gpu(monkeypatch, (7, 0), ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
    with pytest.raises(SystemExit) as stopped:
        workshop.pick_device()
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "Tesla V100S-PCIE-32GB" in error and "sm_70" in error, "the line names the GPU and its architecture"
    assert torch.__version__ in error and workshop.PUMA_TORCH_FIX in error, "the line names the build and the fix"


def test_a_v100s_under_the_cuda_126_build_is_used(monkeypatch, capsys):
    fake_gpu(monkeypatch, (7, 0), ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"])
    assert workshop.pick_device().type == "cuda"
    assert "device: cuda (Tesla V100S-PCIE-32GB, sm_70)" in capsys.readouterr().out


def test_a_newer_gpu_runs_on_ptx_compiled_for_an_older_architecture(monkeypatch):
    fake_gpu(monkeypatch, (9, 0), ["sm_80", "compute_80"], name="NVIDIA H100")
    assert workshop.pick_device().type == "cuda"


def test_without_a_gpu_the_cpu_is_used_and_the_log_says_why(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert workshop.pick_device().type == "cpu"
    assert "CUDA_VISIBLE_DEVICES=0 but torch sees no CUDA device; running on the CPU" in capsys.readouterr().out


def test_torch_threads_and_loader_workers_add_up_to_the_allocation(monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert workshop.cpus_from_allocation() == 1
    assert workshop.use_allocated_threads(loader_workers=0) == 1 == torch.get_num_threads()
    assert "threads: 1 torch + 0 loader workers = 1 CPUs (from SLURM_CPUS_PER_TASK)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, quick_from_environment, epochs",
    [([], False, 40), (["--quick"], False, 4), (["--quick", "--epochs", "7"], False, 7), ([], True, 4), (["--epochs", "7"], True, 7)],
    ids=["full", "quick", "quick-with-explicit-epochs", "quick-from-environment", "environment-with-explicit-epochs"],
)
def test_an_explicit_option_beats_the_quick_default(argv, quick_from_environment, epochs, monkeypatch, tmp_path):
    parser = workshop.make_parser("test", default_out=str(tmp_path))
    parser.add_argument("--epochs", type=workshop.at_least(1), default=40)
    monkeypatch.setattr("sys.argv", ["example.py", *argv])
    monkeypatch.setenv("WORKSHOP_QUICK", "1" if quick_from_environment else "0")
    assert workshop.parse_args(parser, quick_defaults={"epochs": 4}).epochs == epochs



def test_help_gives_each_option_its_default_and_quick_value_once_as_the_code_sets_them(monkeypatch, capsys):
    import argparse

    parser = workshop.make_parser("test", default_out="results/example")  # --help ends the run before --out is made
    parser.add_argument("--epochs", type=workshop.at_least(1), default=40, help="passes over the data")
    parser.add_argument("--labels", type=int, nargs="+", default=[5, 10], help="labels per class")
    parser.add_argument("--solve", action=argparse.BooleanOptionalAction, default=True, help="also solve exactly")
    parser.add_argument("--data", help="a folder of your own (default: none, the built-in set)")
    monkeypatch.setattr("sys.argv", ["example.py", "--help"])
    with pytest.raises(SystemExit):
        workshop.parse_args(parser, quick_defaults={"epochs": 4, "solve": False})
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width
    for expected in ("passes over the data (default: 40; 4 with --quick)", "labels per class (default: 5 10)",
                     "also solve exactly (default: on; off with --quick)", "(default: none, the built-in set)",
                     "(default: results/example)", "random seed: same seed, same results (default: 0)"):  # fmt: skip
        assert expected in shown, f"--help does not say {expected!r}:\n{shown}"
    assert shown.count("(default:") == 7, f"an option's help gives no default, or two:\n{shown}"

def test_the_fix_the_preflight_names_is_the_setup_pages_puma_command_with_the_tested_pin():
    # The setup page's Puma command cannot run here (this machine reaches only PyPI, where
    # torch==2.13.0 is the CPU build); this pins its shape: PyTorch's CUDA 12.6 index (the last
    # with Volta kernels for the V100S) and the version requirements.txt tests.
    from conftest import REPO

    setup_page = (REPO / "docs" / "setup.md").read_text()
    tested_pin = next(line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    assert f"python3 -m {workshop.PUMA_TORCH_FIX}" in setup_page, "the setup page does not show the command the preflight names"
    assert workshop.PUMA_TORCH_FIX == f"pip install {tested_pin} --index-url https://download.pytorch.org/whl/cu126"
