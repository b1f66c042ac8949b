"""The project's own tools, shared by the tests (tests/), the benchmark (bench/) and `make`:

- slurm_cluster.py: a throwaway single-node Slurm declared like a Puma node (`make slurm-up`);
- slurm_jobs.py: submitting job files to it and waiting for them, the one way (LocalSlurm, Job, JobRun);
- modulefiles/: stand-ins for Puma's `python/3.11` and `cuda12` modules, for that Slurm's jobs;
- job_rules.py: Puma's rules for job files, as checks that name the line and the fix;
- site.py: the strict build, a local server for it and headless Chromium (tests and benchmark);
- full_runs.py: how each example's full run is made (the benchmark and `make results`);
- results.py: `make results`, which rewrites docs/results/ only on an idle machine.

Run from the repository's root, e.g. `.venv/bin/python -m tools.results digits_cnn`; the tests
import them as `tools.<module>` (pytest.ini puts the root on the path).
"""
