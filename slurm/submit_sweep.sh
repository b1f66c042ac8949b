#!/bin/bash
# Submit the whole sweep: the job array, then the job that gathers its results, held by Slurm
# until every array task has ended well. Run it from the repository's root folder:
#     slurm/submit_sweep.sh
# Options for sbatch given here go to both jobs, e.g. slurm/submit_sweep.sh --account=YOUR_GROUP
set -euo pipefail

# --parsable makes sbatch print only the job id ("1234", or "1234;cluster"), not a sentence.
array_job_id=$(sbatch --parsable "$@" slurm/sweep_array.sbatch)
array_job_id=${array_job_id%%;*}
echo "array job: ${array_job_id} (logs sweep_array_${array_job_id}_<task>.out)"

# afterok: start only if every task of the array ended with exit code 0. If one fails, the
# gathering job never starts (squeue shows it with the reason DependencyNeverSatisfied):
# fix the cause, rerun the failed tasks, or scancel it.
gather_job_id=$(sbatch --parsable "$@" --dependency="afterok:${array_job_id}" slurm/sweep_gather.sbatch "$array_job_id")
gather_job_id=${gather_job_id%%;*}
echo "gathering job: ${gather_job_id} (log sweep_gather_${gather_job_id}.out), waits for ${array_job_id}"
