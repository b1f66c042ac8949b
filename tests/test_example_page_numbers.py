"""The example and scaling pages never type a run's result by hand: a number a script wrote reaches its page
from docs/results/<example>/metrics.json through a placeholder of hooks/results.py, so a new run
cannot leave the page behind. This reads each page's own text (prose, tables and alt texts; not
its code, placeholders, math or link targets) and fails on a percentage, a decimal or a number of
three or more digits that is not in ALLOWED, the short list of facts no run makes. Years
(1900-2099) pass. It reads the Markdown sources only: no build, milliseconds."""

import re
from pathlib import Path

import pytest

from conftest import REPO

DOCS = REPO / "docs"
PAGES = sorted(path for folder in ("examples", "scaling") for path in (DOCS / folder).glob("*.md") if path.name != "index.md")

# Numbers on a page that are not results of a run, each allowed on its own page only: facts of a
# dataset, a paper, the hardware or Puma, and the script's settings that the page names.
ALLOWED = {
    # the paper's volume, grid (256 x), N_f and N_u; the exponents' range; times the figures show
    "examples/burgers-pinn.md": {"378", "256", "10,000", "100", "0.25", "0.3", "0.5", "0.50", "0.75"},
    # what calibration means (80% sure, 80% right); a softmax shares 100%, "I don't know" is 10%
    "examples/confident-wrong-biased.md": {"0%", "10%", "50%", "80%", "90%", "100%"},
    "examples/digits-cnn.md": {"1,797"},  # the images of sklearn.datasets.load_digits
    # load_digits' size; an option's example; guessing (10%); the near-copy threshold (95%, 5%)
    "examples/digits-diffusion.md": {"1,797", "500", "10%", "95%", "5%"},
    # ImageNet's 1.28 million photos of 1,000 classes at 224 x 224; the backbone factor's default
    "examples/fine-tuning.md": {"1.28", "1,000", "224", "0.1"},
    "examples/poetry.md": {"384", "256", "200"},  # the large model's width and context; an option's example
    # MovieLens sizes; the GPU job's --scale; CUDA 12.6; shares that define a group (top 1%, 10%);
    # factors and weight decays to try; real services' embedding sizes
    "examples/recommender.md": {"100,000", "100", "12.6", "10%", "1%", "128", "256", "0.005", "0.5", "1.2"},
    # OpenSpiel's MCTS players; the example's targets; AlphaZero's published numbers; Puma's
    # monthly CPU-hours
    "examples/self-play.md": {"200", "95%", "80%", "99%", "800", "100", "3.5", "256", "150,000", "5,000"},
    # the job file's --signal (300 s); guessing among 10 digits
    "scaling/checkpoints.md": {"300", "10%"},
    # CPU-hours a job file asks for (its CPUs x --time); NVLink's and PCIe 3.0's published speeds;
    # a model size to reckon with; the shared digits split's 360 test images
    "scaling/ddp.md": {"0.5", "300", "3.0", "100", "400", "0.05", "360"},
    # CPU-hours the sweep's job files ask for; Puma's 1000 jobs per user; guessing among 10
    # digits; the shared digits split's 180 validation and 360 test images
    "scaling/sweeps.md": {"1.25", "1000", "10%", "180", "360"},
    "scaling/threads.md": {"256"},  # the script's --batch-size default, which the page names
}

FENCED_CODE = re.compile(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
HIDDEN = [
    re.compile(r"<!--.*?-->", re.DOTALL),  # comments (the code blocks' test markers)
    re.compile(r"\{\{.*?\}\}", re.DOTALL),  # placeholders: the numbers that come from metrics.json
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display math
    re.compile(r"\$[^$\n]+\$"),  # inline math
    re.compile(r"`[^`\n]+`"),  # inline code
    re.compile(r"\]\([^)\s]*\)"),  # link and image targets (the text and alt text stay)
]
# A number standing on its own (not part of V100S, SHA-256, float32 or 10^12), with its thousands
# separators, decimals and percent sign.
NUMBER = re.compile(
    r"""(?<![\w.,^-])            # not the tail of a name, a decimal or a power
        (?: \d{1,3}(?:,\d{3})+ | \d+ )(?:\.\d+)?   # 1,797 or 1797, 0.25
        (?: \s?% | \ percent\b )?                 # 97.5%, 20 percent
        (?![\w^])""",
    re.VERBOSE,
)


def blank_out(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def page_text(source: str) -> str:
    """The page's own words, with code, comments, placeholders, math and link targets blanked
    out (line breaks kept, so line numbers stay right)."""
    text = FENCED_CODE.sub(blank_out, source)
    for pattern in HIDDEN:
        text = pattern.sub(blank_out, text)
    return text


def looks_like_a_result(number: str) -> bool:
    digits = number.replace(",", "").replace(" percent", "%").replace(" ", "")
    if "%" in digits or "." in digits:
        return True
    if len(digits) == 4 and 1900 <= int(digits) <= 2099:
        return False  # a year, as in a citation
    return len(digits) >= 3


def hand_typed_numbers(source: str) -> list[tuple[int, str]]:
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(0))
        for text in [page_text(source)]
        for match in NUMBER.finditer(text)
        if looks_like_a_result(match.group(0))
    ]


def test_the_check_finds_a_result_typed_into_prose_and_leaves_placeholders_code_and_math_alone():
    source = (
        "The model scored 97.5% on 1,234 digits in 2019.\n"
        '![A curve that ends at 0.031](figure.png) and {{ metric("x", "y", ".1%") }} of $10^{-3}$,\n'
        "`--steps 500` on a V100S, SHA-256.\n"
        "```bash\npython3 run.py --epochs 300\n```\n"
    )
    assert hand_typed_numbers(source) == [(1, "97.5%"), (1, "1,234"), (2, "0.031")]


@pytest.mark.parametrize("page", PAGES or [None], ids=lambda page: page.relative_to(DOCS).as_posix() if page else "no-pages")
def test_an_example_page_types_no_result_by_hand(page):
    assert page is not None, "no pages found under docs/examples/ and docs/scaling/"
    name = page.relative_to(DOCS).as_posix()
    allowed = ALLOWED.get(name, set())
    found = [(line, number) for line, number in hand_typed_numbers(page.read_text()) if number.replace(" percent", "%") not in allowed]
    assert not found, (
        f"docs/{name} types numbers by hand that look like results: "
        + ", ".join(f"line {line}: {number!r}" for line, number in found)
        + ". Write a result as {{ metric(...) }} from its metrics.json (hooks/results.py); a fact no run"
        " makes (a dataset's size, a paper's setting) goes into ALLOWED in this file, with the reason."
    )
