"""Getting the files onto Puma, as "Your first batch job" tells a reader to: the command shown on
the page (with the address the browser fills in) fetches the archive from the served site into an
empty folder, it unpacks into ml-workshop/, and a job file from it runs on the local Slurm. Each
example's page offers its own archive where the reader starts running it, and that archive holds
what its script imports."""

import os
import re
import subprocess
import tarfile

import pytest

from conftest import REPO, warm_python
from hooks.downloads import files_of

FIRST_JOB_PAGE = "running-jobs/first-job/"
EXAMPLE_PAGES = sorted(path.stem for path in (REPO / "docs" / "examples").glob("*.md") if path.name != "index.md")
RUN_SECTION = 'id="how-to-run-it-on-puma"'


@pytest.fixture(scope="module")
def fetch_commands(browser, site_server) -> str:
    """The fetch-and-unpack block of the first-job page, as the reader's copy button copies it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site_server.url + FIRST_JOB_PAGE)
    blocks = [text for text in page.locator("pre code").all_inner_texts() if "curl " in text]
    context.close()
    assert len(blocks) == 1, f"expected one block with curl on {FIRST_JOB_PAGE}, found {len(blocks)}"
    return blocks[0]


@pytest.mark.browser
def test_the_page_names_the_archive_by_the_address_the_reader_is_on(fetch_commands, site_server):
    assert f"{site_server.url}downloads/ml-workshop.tar.gz" in fetch_commands, fetch_commands


@pytest.mark.browser
@pytest.mark.slurm
def test_the_fetched_archive_unpacks_into_a_folder_whose_job_file_runs(fetch_commands, tmp_path, slurm_cluster):
    reader = tmp_path / "home"
    reader.mkdir()
    shell = subprocess.run(["bash", "-euo", "pipefail", "-c", fetch_commands], cwd=reader, capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0, f"the page's commands failed:\n{shell.stdout}\n{shell.stderr}"
    unpacked = reader / "ml-workshop"
    for job_file in (REPO / "slurm").glob("*.sbatch"):
        assert (unpacked / "slurm" / job_file.name).read_bytes() == job_file.read_bytes(), f"{job_file.name} differs"
    run = slurm_cluster.launch(REPO / "slurm" / "penguin_species.sbatch", folder=unpacked).wait()
    assert run.exit_code == 0, run.explain()
    assert run.log.strip().splitlines()[-1].startswith("result: "), run.explain()


@pytest.mark.parametrize("example", ["digits_cnn", "sweep_train", "burgers_pinn"])
def test_an_examples_own_archive_holds_what_its_script_imports(example, built_site, tmp_path):
    with tarfile.open(built_site / "downloads" / f"{example}.tar.gz") as archive:
        names = sorted(archive.getnames())
        archive.extractall(tmp_path, filter="data")
    assert names == sorted(f"ml-workshop/{path.as_posix()}" for path in files_of(example)), names
    assert any(re.match(r"ml-workshop/slurm/.*\.sbatch$", name) for name in names), "no job file in the archive"
    # --help imports everything the script imports, and needs nothing else: no project module from
    # outside the archive (the warm Python holds only the libraries, tools/warm_python.py).
    folder = tmp_path / "ml-workshop"
    process = warm_python().run([f"examples/{example}.py", "--help"], cwd=folder, env=dict(os.environ), timeout=120)
    assert process.returncode == 0, process.stderr


@pytest.mark.parametrize("page", EXAMPLE_PAGES or ["no example pages found"])
def test_every_example_page_offers_its_own_archive_where_the_reader_starts_running_it(page, built_site):
    example = page.replace("-", "_")  # docs/examples/digits-cnn.md shows examples/digits_cnn.py
    html_file = built_site / "examples" / page / "index.html"
    assert html_file.is_file(), f"no built page for docs/examples/{page}.md"
    html = html_file.read_text()
    start = html.find(RUN_SECTION)
    assert start >= 0, f"{page}: no section 'How to run it on Puma'"
    end = html.find("<h2", start)
    section = html[start : end if end >= 0 else len(html)]
    links = re.findall(r'href="([^"]*downloads/[^"]*\.tar\.gz)"', section)
    archive = built_site / "downloads" / f"{example}.tar.gz"
    assert any((html_file.parent / link).resolve() == archive.resolve() for link in links), (
        f"{page}: its 'How to run it on Puma' section does not link downloads/{example}.tar.gz"
        f' (it links {links or "no archive"}); add {{{{ download("{example}") }}}} there'
    )
    assert archive.is_file(), f"{page} links downloads/{example}.tar.gz, which the built site does not hold"
    with tarfile.open(archive) as unpacked:
        assert f"ml-workshop/examples/{example}.py" in unpacked.getnames(), f"{example}.tar.gz lacks examples/{example}.py"
