"""Hostile returned labels, in each format people's tools write (Label Studio JSON, CVAT XML, COCO,
YOLO): every one is refused with a message that names the file, the image and the problem (all
faults of a file at once), and `data/` is byte for byte what it was. What is returned but is not
the batch's is imported around, never silently: it is listed in the log and in the labels file.

The workspace is a real one on disk (the AL state, the labels folder and an annotation package,
read and written by the project's datasets), driven through the `receive_labels` node as Kedro
would: labels saved first, then the state.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines import al_state
from mgral_pipelines.annotation import AwaitingLabels, InvalidLabelsError
from mgral_pipelines.annotation.package import AnnotationPackageDataset
from mgral_pipelines.annotation.server import LabelStudioServer
from mgral_pipelines.datasets import ALStateDataset, CyclePartitionsDataset, LabelFilesDataset
from mgral_pipelines.pipelines.al_cycle.nodes import receive_labels

CLASSES = ["cat", "dog"]
SIZES = {"a": (64, 48), "b": (80, 60), "c": (50, 50), "d": (40, 40), "e": (30, 30)}
BATCH = ["a", "b", "c"]
GOOD = {"a": [("dog", [10.0, 5.0, 30.0, 40.0])], "b": [("cat", [1.0, 2.0, 20.0, 30.0])], "c": []}
EARLIER = {"e": [{"class_id": 0, "bbox": [1.0, 1.0, 10.0, 10.0]}]}  # labelled in cycle 2


class Workspace:
    """A project's data/ with cycle 3's batch (a, b, c) awaiting labels; e was labelled in
    cycle 2, d is in the pool; the batch's annotation package is written."""

    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        images = self.data / "01_raw" / "images"
        images.mkdir(parents=True)
        self.records = {}
        for image_id, size in SIZES.items():
            Image.new("RGB", size, (40, 80, 120)).save(images / f"{image_id}.png")
            self.records[image_id] = {"image_id": image_id, "file": str(images / f"{image_id}.png"),
                                      "width": size[0], "height": size[1]}
        self.index = {"classes": CLASSES, "images": list(self.records.values())}
        self.states = ALStateDataset(str(self.data / "05_model_input" / "al_state"))
        self.labels = LabelFilesDataset(path=str(self.data / "01_raw" / "annotations"),
                                        dataset="json.JSONDataset", filename_suffix=".json")
        self.saved = CyclePartitionsDataset(path=str(self.data / "01_raw" / "annotations"),
                                            dataset="json.JSONDataset", filename_suffix=".json")
        self.packages = AnnotationPackageDataset(str(self.data / "07_model_output" / "annotation"))
        state = {"cycle": 3, "dataset": "fp", "labelled_ids": ["e"],
                 "pool_ids": ["a", "b", "c", "d"], "labels": EARLIER,
                 "history": [{"cycle": 2, "strategy": "random", "query_ids": ["e"],
                              "n_labelled": 1}]}
        self.states.save(al_state.await_labels(state, BATCH, "random", "files", "then"))
        self.packages.save({"cycle": 3, "files": {"README.txt": "labels, please\n"},
                            "images": {f"{i}.png": self.records[i]["file"] for i in BATCH}})
        self.labels.save({"cycle_2": {"images": [], "annotations": [], "categories": []}})
        self.package = Path(self.packages.load()["cycle_3"])

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.data)): p.read_bytes() for p in sorted(self.data.rglob("*"))
                if p.is_file()}

    def import_labels(self, labels: Path, **al) -> dict:
        """One `receive_labels` as Kedro runs it: inputs loaded, outputs saved in order."""
        params = {"annotator": "files", "files": {"labels": str(labels)},
                  "label_studio": {"document_root": str(self.root)}, **al}
        coco, state, _, _ = receive_labels(self.states.load(), self.index,
                                           LabelStudioServer(None, None), {},
                                           self.packages.load(), self.saved.load(), params)
        self.labels.save(coco)
        self.states.save(state)
        return state


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "project")


# --- writers: one returned file per format, from (image key, [(class, [x1, y1, x2, y2])], size) --
Image_ = tuple[str, list[tuple[str, list]], tuple[int, int] | None]


def label_studio(path: Path, images: list[Image_], twice: bool = False) -> Path:
    tasks = []
    for number, (key, boxes, size) in enumerate(images, start=1):
        width, height = size or _size(key)
        result = [{"type": "rectanglelabels", "original_width": width, "original_height": height,
                   "value": {"x": _pct(x1, width), "y": _pct(y1, height),
                             "width": _pct(x2, width, x1), "height": _pct(y2, height, y1),
                             "rotation": 0, "rectanglelabels": [name]}}
                  for name, (x1, y1, x2, y2) in boxes]
        data = {"mgral_image_id": key} if "/" not in key else {"image": key}
        annotations = [{"id": number * 10, "result": result}]
        if twice:
            annotations.append({"id": number * 10 + 1, "result": result[:-1]})
        tasks.append({"id": number, "data": data, "annotations": annotations})
    path = path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def _pct(value, size, start=None):
    """Percent of the image, as Label Studio stores it; text and NaN pass through unchanged."""
    if isinstance(value, str) or isinstance(start, str) or math.isnan(value):
        return value
    return 100 * (value - (start or 0)) / size


def cvat(path: Path, images: list[Image_], twice: bool = False) -> Path:
    body = []
    for number, (key, boxes, size) in enumerate(images * (2 if twice else 1)):
        width, height = size or _size(key)
        shapes = "".join(f'<box label="{name}" xtl="{x1}" ytl="{y1}" xbr="{x2}" ybr="{y2}"/>'
                         for name, (x1, y1, x2, y2) in (boxes if number < len(images) else []))
        body.append(f'<image id="{number}" name="{_file_name(key)}" width="{width}" '
                    f'height="{height}">{shapes}</image>')
    path = path / "annotations.xml"
    path.write_text(f'<?xml version="1.0"?><annotations><version>1.1</version>{"".join(body)}'
                    "</annotations>")
    return path


def coco(path: Path, images: list[Image_], twice: bool = False) -> Path:
    entries, annotations = [], []
    for number, (key, boxes, size) in enumerate(images * (2 if twice else 1), start=1):
        width, height = size or _size(key)
        entries.append({"id": number, "file_name": _file_name(key), "width": width,
                        "height": height})
        for name, (x1, y1, x2, y2) in (boxes if number <= len(images) else []):
            xywh = [x1, y1, x2, y2] if isinstance(x1, str) else [x1, y1, x2 - x1, y2 - y1]
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": CLASSES.index(name) + 1 if name in CLASSES else 9,
                                "bbox": xywh})
    path = path / "labels.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": [{"id": i + 1, "name": n}
                                               for i, n in enumerate(CLASSES)]}))
    return path


def yolo(path: Path, images: list[Image_], twice: bool = False) -> Path:
    folder = path / "yolo" / "labels"
    folder.mkdir(parents=True)
    (folder.parent / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    for key, boxes, size in images:
        width, height = size or _size(key)
        rows = [f"{CLASSES.index(n) if n in CLASSES else 7} {_yolo(box, width, height)}\n"
                for n, box in boxes]
        (folder / f"{Path(key).stem}.txt").write_text("".join(rows))
    return folder.parent


def _yolo(box, width, height):
    """`cx cy w h`, normalised; a value that is text or NaN is written as it is, in cx's place."""
    x1, y1, x2, y2 = box
    if isinstance(x1, str) or math.isnan(x1):
        return f"{x1} {(y1 + y2) / 2 / height:.6f} 0.2 0.2"
    return (f"{(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} "
            f"{(y2 - y1) / height:.6f}")


def _size(key: str) -> tuple[int, int]:
    return SIZES.get(Path(key.split("=")[-1]).stem, (64, 48))


def _file_name(key: str) -> str:
    return key if "/" in key or "." in key else f"{key}.png"


FORMATS: dict[str, Callable[..., Path]] = {"label_studio": label_studio, "cvat": cvat,
                                           "coco": coco, "yolo": yolo}


def _with(*images: Image_) -> list[Image_]:
    """The good labels of the batch, with `images` replacing or joining them."""
    given = {Path(key.split("=")[-1]).stem: (key, boxes, size) for key, boxes, size in images}
    return [given.pop(key, (key, GOOD[key], None)) for key in BATCH] + list(given.values())


NAN = float("nan")
BOX = [10.0, 5.0, 30.0, 40.0]
ALL, SIZED, TWICE = ("label_studio", "cvat", "coco", "yolo"), ("label_studio", "cvat", "coco"), \
    ("label_studio", "cvat", "coco")
# case: (formats, returned images, al parameters, message (or {format: message}))
CASES = {
    "box_outside": (ALL, _with(("a", [("dog", [50.0, 5.0, 90.0, 40.0])], None)), {},
                    r"image 'a(\.png)?': box \[.*\] lies outside the 64x48 image"),
    "degenerate_box": (ALL, _with(("a", [("dog", [10.0, 5.0, 10.0, 40.0])], None)), {},
                       r"image 'a(\.png)?': degenerate box"),
    "unknown_class": (ALL, _with(("a", [("horse", BOX)], None)), {}, {
        "label_studio": r"export.json: task 1: image 'a': unknown class 'horse'",
        "cvat": r"annotations.xml: <image id=0>: image 'a.png': unknown class 'horse'",
        "coco": r"labels.json: annotation 1: unknown category_id 9",
        "yolo": r"labels/a.txt:1: image 'a': class index 7 is not in 0..1"}),
    "wrong_image_size": (SIZED, _with(("a", [("dog", BOX)], (100, 100))), {},
                         r"image 'a(\.png)?': annotated at 100x100 but the image is 64x48"),
    "text_coordinate": (("label_studio", "coco"),
                        _with(("a", [("dog", ["10", 5.0, 30.0, 40.0])], None)), {},
                        r"(x given as text|a coordinate is given as text)"),
    "not_a_number": (("cvat", "yolo"), _with(("a", [("dog", ["ten", 5.0, 30.0, 40.0])], None)), {},
                     r"(box without numeric xtl/ytl/xbr/ybr|a field is not a number)"),
    "nan_coordinate": (ALL, _with(("a", [("dog", [NAN, 5.0, 30.0, 40.0])], None)), {},
                       r"image 'a(\.png)?': a box has a NaN coordinate"),
    "too_many_boxes": (ALL, _with(("a", [("dog", BOX)] * 5, None)), {"max_boxes_per_image": 3},
                       r"image 'a(\.png)?': 5 boxes, more than al.max_boxes_per_image=3"),
    "file_too_large": (ALL, _with(), {"max_returned_mb": 0.00002},
                       r"(export.json|annotations.xml|labels.json|labels/a.txt): .* MB, more "
                       r"than al.max_returned_mb=2e-05; nothing was read"),
    "image_not_in_dataset": (ALL, _with(("zz", [("dog", BOX)], None)), {},
                             r"image 'zz(\.png)?' is not in the awaiting batch of cycle 3 \(3 "
                             r"images\) nor anywhere in the dataset"),
    "path_traversal": (("cvat", "coco"),
                       _with(("../../tmp/elsewhere/a.png", [("dog", BOX)], None)), {},
                       r"image '../../tmp/elsewhere/a.png' is a path that leads outside the "
                       r"annotation package and the document root"),
    "absolute_path_elsewhere": (("cvat", "coco"), _with(("/etc/a.png", [("dog", BOX)], None)), {},
                                r"image '/etc/a.png' is a path that leads outside"),
    "local_files_traversal": (("label_studio",), _with(
        ("/data/local-files/?d=../../tmp/elsewhere/a.png", [("dog", BOX)], None)), {},
        r"image '/data/local-files/\?d=../../tmp/elsewhere/a.png' is a path that leads outside"),
}


def _cases():
    for case, (formats, *_ ) in CASES.items():
        for fmt in formats:
            yield pytest.param(case, fmt, id=f"{case}-{fmt}")


@pytest.mark.parametrize(("case", "fmt"), list(_cases()))
def test_hostile_labels_are_refused_by_name_and_data_is_untouched(workspace, tmp_path, case, fmt):
    _, images, al, message = CASES[case]
    message = message[fmt] if isinstance(message, dict) else message
    returned = FORMATS[fmt](tmp_path, images)
    before = workspace.snapshot()
    with pytest.raises(InvalidLabelsError, match=message) as refused:
        workspace.import_labels(returned, **al)
    assert "Nothing was imported" in str(refused.value) or "nothing was read" in str(refused.value)
    assert workspace.snapshot() == before


@pytest.mark.parametrize("fmt", ["label_studio", "cvat", "coco"])
def test_conflicting_annotations_are_refused(workspace, tmp_path, fmt):
    returned = FORMATS[fmt](tmp_path, _with(("a", [("dog", BOX), ("cat", BOX)], None)), twice=True)
    before = workspace.snapshot()
    with pytest.raises(InvalidLabelsError, match=r"image 'a(\.png)?' is labelled twice with "
                                                 r"conflicting boxes \((annotations|also at)"):
        workspace.import_labels(returned)
    assert workspace.snapshot() == before


@pytest.mark.parametrize(("fmt", "message"), [
    ("label_studio", r"export.json: not valid JSON, truncated or corrupt \(.* at line 1 column"),
    ("cvat", r"annotations.xml: not valid XML, truncated or corrupt \(at line 1 column"),
    ("coco", r"labels.json: not valid JSON, truncated or corrupt"),
    ("yolo", r"labels/a.txt:1: image 'a': 2 fields, expected 'class cx cy w h'")])
def test_truncated_files_are_refused(workspace, tmp_path, fmt, message):
    returned = FORMATS[fmt](tmp_path, _with())
    if fmt == "yolo":
        (returned / "labels" / "a.txt").write_text("1 0.5")
    else:
        returned.write_bytes(returned.read_bytes()[:-15])
    before = workspace.snapshot()
    with pytest.raises(InvalidLabelsError, match=message):
        workspace.import_labels(returned)
    assert workspace.snapshot() == before


def test_xml_entities_are_refused_unexpanded(workspace, tmp_path):
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    returned = tmp_path / "annotations.xml"
    returned.write_text(f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY l0 "ha">{laughs}]>'
                        '<annotations><image id="0" name="a.png">&l9;</image></annotations>')
    before = workspace.snapshot()
    with pytest.raises(InvalidLabelsError, match=r"annotations.xml: declares XML entities"):
        workspace.import_labels(returned)
    assert workspace.snapshot() == before


def test_every_fault_of_a_file_is_listed_at_once_grouped_with_a_count(workspace, tmp_path):
    images = [(key, [("horse", BOX), ("dog", [50.0, 5.0, 190.0, 40.0])], None) for key in BATCH]
    images += [(f"z{n}", [], None) for n in range(6)]
    returned = label_studio(tmp_path, images)
    with pytest.raises(InvalidLabelsError) as refused:
        workspace.import_labels(returned)
    message = str(refused.value)
    assert message.startswith(f"{returned}: 12 problems, nothing was imported")
    assert "  unknown class (3):" in message and "  box outside the image (3):" in message
    assert "  image not in the batch (6):" in message and "... and 1 more" in message
    assert message.count("\n") == 4 + 4 + 7  # after the header: each group's title and lines


def test_yolo_links_out_of_the_folder_are_not_followed_and_nothing_is_quoted(workspace, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET-FIRST-LINE\n")
    returned = yolo(tmp_path, _with())
    (returned / "labels" / "a.txt").unlink()
    (returned / "labels" / "a.txt").symlink_to(secret)
    before = workspace.snapshot()
    with pytest.raises(InvalidLabelsError, match=r"labels/a.txt: a symbolic link that leads "
                                                 r"outside .*yolo; not read") as refused:
        workspace.import_labels(returned)
    assert "SECRET" not in str(refused.value)
    # The labels folder itself linked elsewhere is refused too.
    elsewhere = tmp_path / "elsewhere"
    (returned / "labels").rename(elsewhere)
    (returned / "labels").symlink_to(elsewhere)
    with pytest.raises(InvalidLabelsError,
                       match=r"yolo/labels: a symbolic link that leads outside"):
        workspace.import_labels(returned)
    # A file that is not a label file is not quoted either.
    (returned / "labels").unlink()
    (returned / "labels").mkdir()
    (returned / "labels" / "a.txt").write_text("root:x:0:0:SECRET-FIRST-LINE\n")
    with pytest.raises(InvalidLabelsError, match=r"a.txt:1: image 'a': 1 fields") as refused:
        workspace.import_labels(returned)
    assert "SECRET" not in str(refused.value)
    assert workspace.snapshot() == before


@pytest.mark.parametrize("fmt", ALL)
def test_what_is_not_the_batchs_is_listed_in_the_log_and_the_labels_file(workspace, tmp_path,
                                                                          fmt, caplog):
    late = ("e", [("dog", [2.0, 2.0, 20.0, 20.0])], None)  # e was labelled in cycle 2, otherwise
    same = ("e", [("cat", [1.0, 1.0, 10.0, 10.0])], None)  # ... or just as it was imported
    returned = FORMATS[fmt](tmp_path, _with(late, ("d", [], None)))
    with caplog.at_level(logging.WARNING):
        state = workspace.import_labels(returned)
    assert state["cycle"] == 4 and state["labelled_ids"] == ["e", *BATCH]
    assert state["labels"]["e"] == EARLIER["e"]  # never overwritten by a late answer
    saved = json.loads((workspace.data / "01_raw/annotations/cycle_3.json").read_text())
    listed = {entry["image"]: entry["reason"] for entry in saved["info"]["not_imported"]}
    assert listed == {"e": "already labelled in cycle 2; the returned boxes differ from the "
                           "imported ones", "d": "not in the awaiting batch of cycle 3"}
    assert "2 returned images from" in caplog.text and "already labelled in cycle 2" in caplog.text
    # The same labels as imported are no news: not listed.
    assert _listed(tmp_path, fmt, same) == []


def _listed(tmp_path, fmt, earlier):
    """What a fresh workspace lists after importing the batch with `earlier` beside it."""
    workspace, folder = Workspace(tmp_path / "fresh"), tmp_path / "again"
    folder.mkdir()
    workspace.import_labels(FORMATS[fmt](folder, _with(earlier)))
    saved = json.loads((workspace.data / "01_raw/annotations/cycle_3.json").read_text())
    return saved["info"]["not_imported"]


@pytest.mark.parametrize("key", ["images/a.png", "PACKAGE/images/a.png", "01_raw/images/a.png",
                                 "ROOT/data/01_raw/images/a.png"])
def test_an_image_named_by_its_path_inside_the_package_or_the_data_is_imported(workspace,
                                                                               tmp_path, key):
    key = key.replace("PACKAGE", str(workspace.package)).replace("ROOT", str(workspace.root))
    state = workspace.import_labels(coco(tmp_path, _with((key, GOOD["a"], None))))
    assert state["labels"]["a"] == [{"class_id": 1, "bbox": [10.0, 5.0, 30.0, 40.0]}]


def test_label_studio_local_files_inside_the_document_root_are_imported(workspace, tmp_path):
    key = "/data/local-files/?d=data/01_raw/images/a.png"
    state = workspace.import_labels(label_studio(tmp_path, _with((key, GOOD["a"], None))))
    assert state["labels"]["a"] == [{"class_id": 1, "bbox": [10.0, 5.0, 30.0, 40.0]}]


def test_parameters_for_returned_labels_given_while_a_cycle_resumes_are_reported(workspace,
                                                                                tmp_path, caplog):
    returned = coco(tmp_path, _with())
    workspace.import_labels(returned)
    with caplog.at_level(logging.WARNING):
        _, state, _, ignored = receive_labels(
            workspace.states.load(), workspace.index, LabelStudioServer(None, None), {}, {}, {},
            {"annotator": "files", "files": {"labels": str(returned)}, "accept_partial": True})
    assert state["cycle"] == 4
    assert ignored == [f"al.files.labels={returned}", "al.accept_partial=True"]
    assert "Cycle 4 has no batch awaiting labels, so al.files.labels" in caplog.text


@pytest.mark.parametrize("content", [b'{"images": [{"id": 1, "file_na', b'["not", "coco"]'])
def test_an_unreadable_or_foreign_saved_labels_file_is_rebuilt_and_kept(workspace, tmp_path,
                                                                       content, caplog):
    """What a crash while an earlier version wrote the labels left, or a file put there by hand:
    the import rebuilds it from the returned labels; the old file stays in the archive."""
    saved = workspace.data / "01_raw/annotations/cycle_3.json"
    saved.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        state = workspace.import_labels(coco(tmp_path, _with()))
    assert state["cycle"] == 4
    assert json.loads(saved.read_text())["info"]["cycle"] == 3
    assert [p.read_bytes() for p in saved.parent.glob("archive/*/cycle_3.json")] == [content]
    assert "cycle_3.json: " in caplog.text and "kept in the archive/ folder" in caplog.text


def test_a_partial_batch_lists_its_strangers_in_the_waiting_message(workspace, tmp_path):
    returned = coco(tmp_path, [("a", GOOD["a"], None), ("d", [], None)])
    before = workspace.snapshot()
    with pytest.raises(AwaitingLabels, match=r"1 of 3 images done .* 1 returned images are not "
                                             r"this batch's and were not imported"):
        workspace.import_labels(returned)
    assert workspace.snapshot() == before


def test_label_studio_tasks_outside_the_batch_are_listed_not_imported(workspace, label_studio):
    """A real server: a late answer on a task of an earlier cycle and a task added by hand are
    imported around and listed; the batch's own labels come in."""
    title = f"MGRAL hostile {workspace.root.parent.name}"
    server = LabelStudioServer(label_studio.url, label_studio.api_key)
    params = {"annotator": "label_studio", "label_studio": {"project": title,
                                                             "document_root": str(workspace.root)}}

    def receive():
        coco, state, _, _ = receive_labels(workspace.states.load(), workspace.index, server, {},
                                           {}, workspace.saved.load(), params)
        workspace.labels.save(coco)
        workspace.states.save(state)
        return state

    with pytest.raises(AwaitingLabels, match=r"0 of 3 images done \(Label Studio project"):
        receive()  # sends the batch's tasks
    client = label_studio.client()
    [project] = [p for p in client.projects.list() if p.title == title]
    client.projects.import_tasks(project.id, request=[
        {"data": {"image": "/data/local-files/?d=data/01_raw/images/e.png", "mgral_image_id": "e"}},
        {"data": {"image": "/data/local-files/?d=somewhere/else/zz.png"}}], commit_to_project=True)
    for task in client.tasks.list(project=project.id, fields="all"):
        key = task.data.get("mgral_image_id") or "zz"
        boxes = GOOD.get(key, [("dog", [2.0, 2.0, 20.0, 20.0])])
        width, height = SIZES.get(key, (64, 48))
        client.annotations.create(id=task.id, result=[
            {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
             "original_width": width, "original_height": height,
             "value": {"x": _pct(x1, width), "y": _pct(y1, height),
                       "width": _pct(x2, width, x1), "height": _pct(y2, height, y1),
                       "rotation": 0, "rectanglelabels": [name]}}
            for name, (x1, y1, x2, y2) in boxes], was_cancelled=False)

    state = receive()
    assert state["cycle"] == 4 and state["labels"]["e"] == EARLIER["e"]
    assert state["labels"]["a"] == [{"class_id": 1, "bbox": pytest.approx([10.0, 5.0, 30.0, 40.0])}]
    saved = json.loads((workspace.data / "01_raw/annotations/cycle_3.json").read_text())
    reasons = sorted(entry["reason"] for entry in saved["info"]["not_imported"])
    assert reasons == ["already labelled in cycle 2; the returned boxes differ from the imported "
                       "ones", "not in the awaiting batch of cycle 3 (3 images) nor anywhere in "
                       "the dataset"]
