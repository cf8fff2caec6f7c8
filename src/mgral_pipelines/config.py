"""Validated parameters: one model per `parameters_<pipeline>.yml` top-level key.

Extra keys are forbidden, so a typo in YAML or in `--params` fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mgral_pipelines.execution.config import RayParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitParams(_Strict):
    """Sizes (image counts) of the fixed splits, drawn with `seed` from the labelled images only."""

    val: int = Field(100, ge=1, description="validation set V: rewards and model selection")
    test: int = Field(150, ge=1, description="test set T: reported AL curve only")
    initial: int | None = Field(
        100, ge=1, description="initial labelled set L_0; null = every labelled image not in V or T "
        "(only with an unlabelled pool)"
    )
    seed: int = Field(0, description="seeds the draw of V, T and L_0")


def _names(value: list[str] | str | None) -> list[str] | None:
    """A list, or one string with `|` between items: `--params` splits its value at commas."""
    if isinstance(value, str):
        value = [item.strip() for item in value.split("|")]
    if value is not None and any(not item for item in value):
        raise ValueError(f"empty name in {value}")
    return value


class SplitAssignment(_Strict):
    """Labelled images the user names for V, T and L_0: image files, folders of images, or `.txt`
    lists of image paths. A split named here ignores its size in `splits`."""

    val: list[str] | str | None = Field(None, description="V's images; null: drawn by size")
    test: list[str] | str | None = Field(None, description="T's images; null: drawn by size")
    initial: list[str] | str | None = Field(None, description="L_0's images; null: drawn by size")

    def paths(self) -> dict[str, list[str]]:
        return {name: _names(getattr(self, name)) for name in ("val", "test", "initial")
                if getattr(self, name) is not None}


class DatasetParams(_Strict):
    """Which dataset `prepare` imports (`dataset` in parameters_prepare.yml)."""

    source: Literal["embedded", "yolo", "voc", "coco"] = Field(
        "embedded", description="the labelled data: the generated embedded dataset, or a YOLO, "
        "VOC or COCO dataset at `path`")
    path: str | None = Field(
        None, description="data.yaml, VOCdevkit folder or COCO JSON file; for `embedded` the "
        "generated folder (= raw_dir, the default), which DVC's `prepare` stage depends on")
    classes: list[str] | str | None = Field(
        None, description="class names, a list or 'a|b|c'; VOC: the classes, else an order check"
    )
    classes_file: str | None = Field(None, description="text file with one class name per line")
    images_dir: str | None = Field(None, description="COCO: the image folder, if not found beside")
    unlabelled: str | None = Field(
        None, description="folder of images without labels (searched recursively): the pool"
    )
    assign: SplitAssignment = Field(SplitAssignment(), description="images named for V, T, L_0")
    raw_dir: str = Field("data/01_raw/embedded", description="where the embedded dataset is written")
    embedded: dict[str, Any] = Field(default_factory=dict, description="EmbeddedDatasetConfig fields")
    splits: SplitParams = Field(SplitParams(), description="sizes of V, T and L_0, and the seed")

    @model_validator(mode="after")
    def _path_for_user_data(self) -> DatasetParams:
        if self.source != "embedded" and not self.path:
            raise ValueError(f"dataset.source={self.source} needs dataset.path=<PATH>")
        if self.classes is not None and self.classes_file is not None:
            raise ValueError("set dataset.classes or dataset.classes_file, not both")
        if self.splits.initial is None and self.unlabelled is None and self.assign.initial is None:
            raise ValueError("dataset.splits.initial=null needs an unlabelled pool (dataset.unlabelled)")
        _names(self.classes)
        if self.source == "embedded" and self.path and Path(self.path) != Path(self.raw_dir):
            raise ValueError(
                f"dataset.source=embedded is generated in dataset.raw_dir={self.raw_dir}, but "
                f"dataset.path={self.path}: set both to the same folder (or path to null)")
        return self

    def class_names(self) -> list[str] | None:
        """The class list given by `classes` or `classes_file` (None: take them from the data)."""
        if self.classes_file is None:
            return _names(self.classes)
        path = Path(self.classes_file)
        if not path.is_file():
            raise ValueError(f"{path}: dataset.classes_file does not exist")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [name for name in names if name]
        if not names:
            raise ValueError(f"{path}: dataset.classes_file lists no class")
        return names


class LabelStudioParams(_Strict):
    """The Label Studio project that `al.annotator=label_studio` fills (`al.label_studio`).

    The server's URL and API key are credentials (`label_studio` in conf/local/credentials.yml or
    LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY), never parameters.
    """

    project: str = Field("MGRAL active learning", description="project title; created if missing")
    document_root: str = Field(
        "/", description="the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: tasks show images "
        "as local files under it (the server needs LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true)"
    )
    image_url_prefix: str | None = Field(
        None, description="instead of local files: images are served at this URL prefix + their "
        "path relative to image_root (e.g. a web server or bucket)"
    )
    image_root: str | None = Field(None, description="the folder image_url_prefix serves")

    @model_validator(mode="after")
    def _url_needs_root(self) -> LabelStudioParams:
        if (self.image_url_prefix is None) != (self.image_root is None):
            raise ValueError("al.label_studio.image_url_prefix and image_root go together")
        return self


class ReturnedFilesParams(_Strict):
    """Where `al.annotator=files` finds the finished labels of the awaiting batch (`al.files`)."""

    labels: str | None = Field(
        None, description="Label Studio JSON export, CVAT for images 1.1 XML, COCO JSON or a YOLO "
        "folder; null while people are still labelling"
    )
    format: Literal["auto", "label_studio", "cvat", "coco", "yolo"] = Field(
        "auto", description="auto: a folder is YOLO, .xml is CVAT, a JSON list is Label Studio, "
        "a JSON object is COCO"
    )


class ALParams(_Strict):
    """One active-learning cycle (`al` in parameters_al_cycle.yml)."""

    strategy: str = Field("mgral", description="random | entropy | coreset | ppal | mgral")
    budget: int = Field(100, ge=1, description="images queried per cycle (B)")
    seed: int = Field(0, description="seed of the strategy's randomness")
    from_cycle: int | None = Field(None, description="continue from this cycle (default: latest)")
    strategy_options: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the strategy's config dataclass fields")
    pool_detection_conf: float = Field(
        0.05, gt=0, lt=1, description="confidence threshold of the pool predictions strategies see"
    )
    annotator: Literal["oracle", "label_studio", "files"] = Field(
        "oracle", description="who labels the query: the oracle (simulation; the pool needs labels), "
        "people in Label Studio, or people with any tool through an annotation package"
    )
    accept_partial: bool = Field(
        False, description="advance with the finished images of the batch; the rest return to the pool"
    )
    prelabel_conf: float = Field(
        0.25, gt=0, lt=1, description="detections at least this confident are shown to people "
        "as pre-annotations (boxes to correct): a labelling choice, lower for more boxes to "
        "delete, higher for more to draw. Not the method's object threshold "
        "(mgral.features.OBJECT_CONFIDENCE), though both start at ultralytics' 0.25")
    max_boxes_per_image: int = Field(
        1000, ge=1, description="an image returned with more boxes is refused (a runaway tool or "
        "a copy-paste loop, not a scene): the whole import stops with a message"
    )
    max_returned_mb: float = Field(
        100, gt=0, description="a returned file (an export, a YOLO folder in total, Label "
        "Studio's export of the project) larger than this is refused unread"
    )
    label_studio: LabelStudioParams = Field(
        LabelStudioParams(), description="annotator label_studio: the project it fills")
    files: ReturnedFilesParams = Field(
        ReturnedFilesParams(), description="annotator files: where the finished labels are")


class EmbeddingParams(_Strict):
    """Image embeddings of the cycle's detector (`embedding` in parameters_embedding.yml)."""

    batch_size: int = Field(32, ge=1, description="images per forward pass")
    pca_components: int | None = Field(
        32, ge=1, description="PCA dimension fitted per cycle on pool + labelled; null = raw features"
    )


class LUTParams(_Strict):
    """LUT of semi-supervised detector variants (`lut` in parameters_lut.yml)."""

    num_batches: int = Field(30, ge=1, description="K candidate batches (one variant each)")
    batch_size: int | None = Field(
        None, ge=1, description="images per candidate batch; null = the query budget al.budget")
    epochs: int = Field(1, ge=1, description="fine-tuning epochs of every variant and the reference")
    images_per_epoch: int | None = Field(
        128, ge=1, description="images per variant epoch (detector.images_per_epoch for the "
        "variants): a fixed, small number of steps, the same for the reference and every variant; "
        "raised to |L_t| + B for all when that is larger")
    lr0: float | None = Field(
        0.0002, gt=0, description="learning rate of every variant and the reference; null = "
        "detector.lr0. A variant starts a fresh optimiser on D_t with no warm-up, so AdamW's first "
        "steps move every weight by about lr0: a rate that fine-tunes a frozen backbone's head can "
        "wreck a whole network in 8 steps (at 0.002 the demo's variants all fell to mAP 0), hence "
        "a tenth of detector.lr0")
    stratified_share: float = Field(
        0.75, ge=0, le=1, description="share of candidate batches that over-represent a stratum "
        "of the pool (mgral/candidates.py); the rest are uniform")
    clusters: int = Field(6, ge=1, description="k-means clusters of the embeddings used as strata")
    map_metric: Literal["map50_95", "map50"] = Field(
        "map50_95", description="which mAP on V each variant and the reference are scored by; "
        "an entry's ΔmAP is the difference of the two")
    object_weighting: Literal["rarity", "uniform"] = Field(
        "rarity", description="how an image's detected objects are counted, the count the "
        "reward's trend line reads (mgral/features.py, confident_detections): rarity = each "
        "confident detection weighs how rare its predicted class is among L_t's labels "
        "(class_rarity_weights), so the reward sees which objects a batch holds, not only how "
        "many (on the transfer benchmark it made MGRAL beat random); uniform = each weighs 1. "
        "The table keeps the weights; the agent reads them there")
    seed: int = Field(0, description="seeds the candidate batches (with the cycle number)")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: this machine (`workers` processes); ray: one Ray task each")
    workers: int = Field(1, ge=1, description="local: > 1 trains variants in parallel processes")
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker")
    ray: RayParams = Field(default_factory=RayParams, description="executor: ray settings")
    semi_supervised: dict[str, Any] = Field(
        default_factory=dict, description="SemiSupervisedConfig fields (detector/config.py)"
    )


class AgentParams(_Strict):
    """The MGRAL policy and its lookup reward (`agent` in parameters_agent.yml)."""

    policy: dict[str, Any] = Field(
        default_factory=dict, description="AgentConfig fields (mgral/agent.py), each defaulting "
        "to AgentConfig's, except batch_size: always al.budget, the size the policy is asked for")
    lookup: dict[str, Any] = Field(
        default_factory=dict, description="LookupConfig fields (mgral/lookup.py), each "
        "defaulting to LookupConfig's: how the reward is read off the LUT")
