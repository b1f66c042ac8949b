-- Stand-in for Puma's `python/3.11` module, for the tests' local Slurm (tools/slurm_cluster.py).
-- On Puma the module puts Python 3.11 first on the PATH; here that Python is the project's venv
-- (.venv, made by scripts/setup.sh from requirements.txt), found from this file's own place in
-- the repository, so a job's `module load python/3.11` runs unchanged.
whatis("Name: python")
whatis("Version: 3.11 (stand-in for the workshop's tests)")
local repository = myFileName():gsub("/tools/modulefiles/python/[^/]*$", "")
prepend_path("PATH", pathJoin(repository, ".venv", "bin"))
