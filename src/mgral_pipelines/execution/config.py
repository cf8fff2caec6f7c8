"""The `ray` block of a pipeline's parameters (e.g. `lut.ray`, `benchmark.ray`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayParams(BaseModel):
    """Where the Ray tasks run, what each one asks of the cluster, and how long to wait for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(
        None, description="cluster to connect to (e.g. 10.0.0.5:6379); null: $RAY_ADDRESS if set, "
        "else a local Ray instance this step starts and stops")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per task; torch uses that many threads")
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs per task; fractions share a GPU (0.25: four tasks per GPU)")
    max_retries: int = Field(3, ge=0, description="re-runs of a task whose worker or node died")
    local_num_cpus: int | None = Field(
        None, ge=1, description="CPUs of the local instance (address null); null: all cores")
    temp_dir: str | None = Field(
        None, description="absolute folder for the local instance's sessions and logs "
        "(address null); null: Ray's default, $RAY_TMPDIR/ray or /tmp/ray. Ray puts Unix "
        "sockets under it: keep the path short (about 60 characters at most)")
    connect_timeout_s: float = Field(
        10, gt=0, description="seconds the cluster's address has to answer (a TCP connection to "
        "it) before the step refuses to connect; Ray alone would retry for about 14 minutes")
    start_timeout_s: float = Field(
        300, gt=0, description="seconds to wait until one of the step's tasks has started; then "
        "the step stops and says what the cluster holds and what is waiting (its CPUs may be "
        "held by another job)")
    ship_files: bool = Field(
        True, description="send images and checkpoints through Ray's object store; false: tasks "
        "read the driver's paths (a file system shared by every node)")
    ship_code: bool = Field(
        True, description="send this project's package to the workers (runtime_env py_modules); "
        "false: the nodes have it installed")
