#!/usr/bin/env bash
# One worker of a study, as a cluster job runs it (cluster/slurm.sbatch, cluster/htcondor.sub):
# `make worker` with this job's identity, on a study in PostgreSQL, logging to an MLflow
# tracking server. Nothing here needs a shared file system.
#
# Environment:
#   STUDY                the study's name (make study prints it)           required
#   SEEDSWEEP_DB_URL     postgresql://USER:PASSWORD@HOST:5432/DB          required
#   MLFLOW_TRACKING_URI  http://HOST:5000 (make mlflow-server)            required
#   THREADS              torch threads (default: the CPUs the job got, else 1)
#   WORKER_ARGS          more overrides for the worker, e.g. 'device=cuda'
#   SEEDSWEEP_CACHE      where data sets are fetched to (default ~/.cache/seedsweep)
# Code: run from a checkout of the repository; or, where the scheduler transferred a
# tarball of it (git archive -o seedsweep.tar.gz HEAD), from that tarball, unpacked here.
# `make worker` creates .venv on first use (the node needs PyPI, or PIP_FIND_LINKS set to
# a folder of wheels and PIP_NO_INDEX=1).
#
# Exit codes: 0 the study is done; 2 a setting is wrong (retrying will not help);
# 75 the database or the disk failed (retry later); 130 interrupted (trial queued again).
set -euo pipefail
: "${STUDY:?set STUDY=<name> (make study prints it)}"
: "${SEEDSWEEP_DB_URL:?set SEEDSWEEP_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DB}"
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI=http://HOST:PORT (make mlflow-server)}"
if [[ -f seedsweep.tar.gz ]]; then
  mkdir -p seedsweep && tar -xzf seedsweep.tar.gz -C seedsweep && cd seedsweep
else
  cd "$(dirname "$0")/.."
fi
threads=${THREADS:-${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}}
# A name per job, so the study says which job ran each trial (the pid makes it unique anyway).
job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
job=${job:-${CONDOR_JOB:-}}
export SEEDSWEEP_HOST="${SEEDSWEEP_HOST:-$(hostname)${job:+/$job}}"
export MLFLOW_TRACKING_URI
exec make worker STUDY="$STUDY" ARGS="storage=postgres threads=$threads ${WORKER_ARGS:-}"
