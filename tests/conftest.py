"""Shared test fixtures and helpers. Fixtures for the site live in test_site*.py's conftest
section below; the local Slurm cluster in slurm_cluster.py."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str):
    """Skip a test that cannot run here, with the reason; under CI=true nothing may skip."""
    if IN_CI:
        pytest.fail(f"CI=true, so this may not skip: {reason}")
    pytest.skip(reason)

# Fixture modules, one per area (each helper adds its own line).
pytest_plugins = ["slurm_fixtures", "site_fixtures"]
