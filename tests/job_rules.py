# Moved to tools/job_rules.py. Kept only until tests/test_ddp.py, test_sweep.py and
# test_digits_cnn.py import from tools.job_rules (their owners' change); then delete this file.
from tools.job_rules import *  # noqa: F401,F403
from tools.job_rules import RULES, JobFile, check  # noqa: F401
