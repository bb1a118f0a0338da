#!/usr/bin/env bash
# Example SLURM job: SLICER pre-training on 2 nodes x 4 GPUs, one rank per GPU.
#   sbatch scripts/slurm-job.sh experiments/lape.yaml
# Each task runs `experiment launch SPEC`, which reads SLURM_PROCID, SLURM_NTASKS and
# SLURM_LOCALID (this task's rank, the job's ranks, its GPU on the node) and meets the other
# ranks at rank 0's socket MASTER_ADDR:MASTER_PORT, set below: the nodes need not share a
# file system (rank 0 writes the run under output.root and evaluates). Under torchrun, which
# sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT itself, run instead
#   torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:29500 --no-python \
#     target/release/experiment launch SPEC
#SBATCH --job-name=slicer
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
set -euo pipefail
spec="${1:?usage: sbatch scripts/slurm-job.sh SPEC [--set KEY=VALUE ...]}"
shift
# Rank 0 runs on the first node of the allocation; any free port on it will do.
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_ADDR
export MASTER_PORT="${MASTER_PORT:-29500}"
# Every task sees all GPUs of its node (--gpu-bind=none); `launch` gives its rank the
# SLURM_LOCALID-th of them (CUDA_VISIBLE_DEVICES), and `device: cuda:0` names that GPU.
srun --gpu-bind=none --kill-on-bad-exit=1 \
  target/release/experiment launch "$spec" --set +device=cuda:0 "$@"
