"""The `ray` block of a pipeline's parameters (e.g. `lut.ray`, `benchmark.ray`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayParams(BaseModel):
    """Where the Ray tasks run and what each one asks of the cluster."""

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
    ship_files: bool = Field(
        True, description="send images and checkpoints through Ray's object store; false: tasks "
        "read the driver's paths (a file system shared by every node)")
    ship_code: bool = Field(
        True, description="send this project's package to the workers (runtime_env py_modules); "
        "false: the nodes have it installed")
