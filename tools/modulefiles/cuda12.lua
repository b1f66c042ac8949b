-- Stand-in for Puma's `cuda12` module, for the tests' local Slurm (tools/slurm_cluster.py).
-- On Puma it puts CUDA 12's compiler and libraries on the paths. The test machine has no GPU,
-- and torch's wheels bring their own CUDA libraries, so the stand-in only says it is loaded:
-- a GPU job file's `module load cuda12` runs unchanged, and the Python falls back to the CPU.
whatis("Name: cuda12")
whatis("Version: 12 (stand-in for the workshop's tests: no CUDA on the test machine)")
setenv("WORKSHOP_CUDA_MODULE", "cuda12 (stand-in)")
