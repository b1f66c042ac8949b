"""MkDocs hook: the examples as archives a reader fetches onto Puma, made from the files themselves.

At build time it writes into the site:

- downloads/ml-workshop.tar.gz: every example script, the modules they import and every job file;
- downloads/<example>.tar.gz: one example's script, the modules it imports and its job files.

Both unpack into a folder `ml-workshop/` with `examples/` and `slurm/` inside, the layout the job
files expect (they run from the folder they are submitted from). The archives are made the same
way at every build (sorted names, fixed dates), so an unchanged example gives the same bytes.

A page asks for them with placeholders:

    {{ download("digits_cnn") }}           a link to downloads/digits_cnn.tar.gz, with its contents,
                                           and how to fetch it on a login node
    {{ download_address("ml-workshop") }}  the archive's full address, for a `curl` command

The full address needs the site's own address. With `site_url` set in mkdocs.yml it is written
in; without it (a preview with `mkdocs serve`, the tests) the page holds SITE_ADDRESS_TOKEN and
docs/javascripts/site-address.js puts the address the reader's browser is on in its place.
"""

import gzip
import io
import re
import tarfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

EXAMPLES, SLURM = Path("examples"), Path("slurm")
TOP = "ml-workshop"  # the folder an archive unpacks into
SITE_ADDRESS_TOKEN = "https://SITE-ADDRESS"
PLACEHOLDER = re.compile(r"\{\{\s*(download|download_address)\(\s*\"(\w[\w-]*)\"\s*\)\s*\}\}")
IMPORT = re.compile(r"^(?:import|from)\s+(\w+)", re.MULTILINE)


def job_files_running(name: str) -> list[Path]:
    """The job files (and submit scripts) that run examples/<name>.py."""
    return [path for path in every_job_file() if f"examples/{name}.py" in path.read_text()]


def example_names() -> list[str]:
    """The examples that some job file runs."""
    return sorted(path.stem for path in EXAMPLES.glob("*.py") if job_files_running(path.stem))


def files_of(name: str) -> list[Path]:
    """An example's script, the project modules it imports (and theirs), the data files its job
    files name, and its job files."""
    modules = {path.stem for path in EXAMPLES.glob("*.py")}
    wanted, queue = set(), [name]
    while queue:
        module = queue.pop()
        if module in wanted:
            continue
        wanted.add(module)
        queue += [found for found in IMPORT.findall((EXAMPLES / f"{module}.py").read_text()) if found in modules]
    jobs = job_files_running(name)
    data = [path for path in EXAMPLES.glob("*.csv") if any(f"examples/{path.name}" in job.read_text() for job in jobs)]
    return sorted({*(EXAMPLES / f"{module}.py" for module in wanted), *data, *jobs})


def every_job_file() -> list[Path]:
    return sorted({*SLURM.glob("*.sbatch"), *SLURM.glob("*.sh")})


def every_file() -> list[Path]:
    return sorted({*EXAMPLES.glob("*.py"), *EXAMPLES.glob("*.csv"), *every_job_file()})


def archive(paths: list[Path]) -> bytes:
    """A .tar.gz of `paths` under ml-workshop/, the same bytes for the same files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{TOP}/{path.as_posix()}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if path.suffix == ".sh" else 0o644
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def on_files(files, config):
    files.append(File.generated(config, f"downloads/{TOP}.tar.gz", content=archive(every_file())))
    for name in example_names():
        files.append(File.generated(config, f"downloads/{name}.tar.gz", content=archive(files_of(name))))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    site = (config.get("site_url") or SITE_ADDRESS_TOKEN).rstrip("/")

    def replace(match: re.Match) -> str:
        kind, name = match.groups()
        target = f"downloads/{name}.tar.gz"
        if files.get_file_from_path(target) is None:
            raise PluginError(f"{page.file.src_uri}: no archive {target} (an example needs a script and a job file)")
        if kind == "download_address":
            return f"{site}/{target}"
        contents = ", ".join(f"`{path.as_posix()}`" for path in files_of(name))
        link = get_relative_url(target, page.file.src_uri)
        fetching = get_relative_url("running-jobs/first-job.md", page.file.src_uri) + "#get-the-files-onto-puma"
        return (
            f"[Download `{name}.tar.gz`]({link}){{ download }}: {contents}\n\n"
            f"The archive unpacks into a folder `{TOP}/` that holds `examples/` and `slurm/`. On a login node, "
            f"fetch it with the `curl` command of [Your first batch job]({fetching}), with `{name}.tar.gz` "
            f"in place of `{TOP}.tar.gz` (or fetch that archive of every example)."
        )

    return PLACEHOLDER.sub(replace, markdown)


def on_post_page(output: str, page, config) -> str:
    if SITE_ADDRESS_TOKEN not in output:
        return output
    script = get_relative_url("javascripts/site-address.js", page.url)
    return output.replace("</body>", f'<script src="{script}" data-token="{SITE_ADDRESS_TOKEN}"></script>\n</body>', 1)
