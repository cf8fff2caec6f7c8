"""Each format imports correctly, and each kind of bad input names the file and the problem."""

import json
from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import (
    VOC_CLASSES,
    import_dataset,
    load_coco_dataset,
    load_voc_dataset,
    load_yolo_dataset,
)
from mgral_pipelines.data.manifest import InvalidDatasetError


def _image(path: Path, size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 40, 60)).save(path)
    return path


# --- YOLO ---------------------------------------------------------------------------------------

def _yolo(tmp_path, labels: dict[str, str], names=("cat", "dog")) -> Path:
    for stem, text in labels.items():
        _image(tmp_path / "images" / f"{stem}.png")
        (tmp_path / "labels").mkdir(exist_ok=True)
        if text is not None:
            (tmp_path / "labels" / f"{stem}.txt").write_text(text)
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text(f"path: .\ntrain: images\nnames: {list(names)}\n")
    return data_yaml


def test_yolo_converts_normalised_centre_boxes_to_pixels(tmp_path):
    manifest = load_yolo_dataset(_yolo(tmp_path, {"a": "1 0.5 0.5 0.25 0.5\n", "b": None}))
    assert manifest["classes"] == ["cat", "dog"]
    assert [r["image_id"] for r in manifest["images"]] == ["a", "b"]
    assert manifest["images"][0]["width"] == 64 and manifest["images"][0]["height"] == 48
    assert manifest["annotations"]["a"] == [{"class_id": 1, "bbox": [24.0, 12.0, 40.0, 36.0]}]
    assert manifest["annotations"]["b"] == []


@pytest.mark.parametrize(
    ("label", "message"),
    [("5 0.5 0.5 0.2 0.2", r"a.txt:1: unknown class id 5"),
     ("0 0.95 0.5 0.3 0.2", r"a.txt:1: box .* lies outside the 64x48 image"),
     ("0 0.5 0.5 0.0 0.2", r"a.txt:1: degenerate box"),
     ("0 0.5 oops 0.2 0.2", r"a.txt:1: cannot parse label line")],
)
def test_yolo_bad_labels(tmp_path, label, message):
    with pytest.raises(InvalidDatasetError, match=message):
        load_yolo_dataset(_yolo(tmp_path, {"a": label}))


def test_yolo_corrupt_and_missing_images(tmp_path):
    data_yaml = _yolo(tmp_path, {"a": ""})
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(InvalidDatasetError, match=r"broken.png: image file is corrupt"):
        load_yolo_dataset(data_yaml)
    listed = tmp_path / "list.txt"
    listed.write_text("images/a.png\nimages/gone.png\n")
    data_yaml.write_text("path: .\ntrain: list.txt\nnames: [cat]\n")
    with pytest.raises(InvalidDatasetError, match=r"gone.png: image file is missing"):
        load_yolo_dataset(data_yaml)


def test_yolo_duplicate_ids_and_empty_dataset(tmp_path):
    data_yaml = _yolo(tmp_path, {"a": ""})
    _image(tmp_path / "more" / "images" / "a.png")
    data_yaml.write_text("path: .\ntrain: images\nval: more/images\nnames: [cat]\n")
    with pytest.raises(InvalidDatasetError, match=r"duplicate image id 'a'"):
        load_yolo_dataset(data_yaml)
    (tmp_path / "empty").mkdir()
    data_yaml.write_text("path: .\ntrain: empty\nnames: [cat]\n")
    with pytest.raises(InvalidDatasetError, match=r"dataset is empty"):
        load_yolo_dataset(data_yaml)


def test_embedded_dataset_yolo_and_coco_views_agree(tmp_path):
    data_yaml = generate_embedded_dataset(tmp_path / "emb", EmbeddedDatasetConfig(num_images=30,
                                                                                  image_size=96))
    yolo = load_yolo_dataset(data_yaml)
    coco = load_coco_dataset(tmp_path / "emb" / "annotations_coco.json")
    assert yolo["classes"] == coco["classes"]
    coco_by_file = {Path(r["file"]).name: coco["annotations"][r["image_id"]] for r in coco["images"]}
    for record in yolo["images"]:
        ours = yolo["annotations"][record["image_id"]]
        theirs = coco_by_file[Path(record["file"]).name]
        assert [b["class_id"] for b in ours] == [b["class_id"] for b in theirs]
        for a, b in zip(ours, theirs):
            assert a["bbox"] == pytest.approx(b["bbox"], abs=0.01)


# --- Pascal VOC ---------------------------------------------------------------------------------

def _voc_xml(filename="img1.jpg", name="dog", box=(11, 6, 30, 40), size=(64, 48)):
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size><object><name>{name}</name>"
            f"<difficult>0</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
            f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object></annotation>")


def _voc(tmp_path, xml: str) -> Path:
    _image(tmp_path / "JPEGImages" / "img1.jpg")
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    (tmp_path / "Annotations" / "img1.xml").write_text(xml)
    return tmp_path


def test_voc_reads_one_based_inclusive_boxes(tmp_path):
    manifest = import_dataset("voc", _voc(tmp_path, _voc_xml()), classes=VOC_CLASSES)
    assert manifest["classes"][11] == "dog"
    assert manifest["annotations"]["img1"] == [{"class_id": 11, "bbox": [10.0, 5.0, 30.0, 40.0]}]


def test_voc_keeps_the_difficult_flag_for_voc07_evaluation(tmp_path):
    xml = _voc_xml().replace("<difficult>0</difficult>", "<difficult>1</difficult>")
    manifest = import_dataset("voc", _voc(tmp_path, xml), classes=VOC_CLASSES)
    assert manifest["annotations"]["img1"] == [
        {"class_id": 11, "bbox": [10.0, 5.0, 30.0, 40.0], "difficult": True}]


def test_voc_with_own_classes(tmp_path):
    manifest = load_voc_dataset(_voc(tmp_path, _voc_xml(name="digit")), classes=["digit"])
    assert manifest["annotations"]["img1"][0]["class_id"] == 0


def test_voc_without_a_class_list_takes_the_names_found_sorted_and_logs_them(tmp_path, caplog):
    root = _voc(tmp_path, _voc_xml(name="zebra"))
    _image(tmp_path / "JPEGImages" / "img2.jpg")
    (tmp_path / "Annotations" / "img2.xml").write_text(_voc_xml("img2.jpg", name="ant"))
    with caplog.at_level("INFO"):
        manifest = load_voc_dataset(root)
    assert manifest["classes"] == ["ant", "zebra"]  # the same files always give the same ids
    assert manifest["annotations"]["img1"][0]["class_id"] == 1
    assert "['ant', 'zebra']" in caplog.text


def test_voc_class_outside_the_given_list_is_refused(tmp_path):
    with pytest.raises(InvalidDatasetError, match=r"img1.xml: unknown class 'unicorn'"):
        load_voc_dataset(_voc(tmp_path, _voc_xml(name="unicorn")), classes=VOC_CLASSES)


@pytest.mark.parametrize(
    ("xml", "message"),
    [(_voc_xml(box=(10, 10, 90, 20)), r"img1.xml: box .* outside the 64x48 image"),
     (_voc_xml(box=(10, 10, 9, 20)), r"img1.xml: degenerate box"),
     (_voc_xml(filename="nothere.jpg"), r"nothere.jpg: image file is missing"),
     ("<annotation><object>", r"img1.xml: unparsable XML")],
)
def test_voc_bad_inputs(tmp_path, xml, message):
    with pytest.raises(InvalidDatasetError, match=message):
        load_voc_dataset(_voc(tmp_path, xml))


def test_voc_empty_and_missing_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(InvalidDatasetError, match="Annotations: dataset is empty"):
        load_voc_dataset(tmp_path)
    with pytest.raises(InvalidDatasetError, match="Annotations: missing VOC folder"):
        load_voc_dataset(tmp_path / "nowhere")


# --- COCO ---------------------------------------------------------------------------------------

def _coco(tmp_path, **changes) -> Path:
    _image(tmp_path / "images" / "a.png")
    _image(tmp_path / "images" / "b.png")
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 8, "file_name": "b.png", "width": 64, "height": 48}],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 5, 20, 30]}],
    }
    coco.update(changes)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_orders_classes_by_category_id_and_converts_xywh(tmp_path):
    manifest = load_coco_dataset(_coco(tmp_path))
    assert manifest["classes"] == ["cat", "dog"]
    assert manifest["annotations"] == {"7": [{"class_id": 1, "bbox": [10, 5, 30, 35]}], "8": []}


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"annotations": [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [1, 1, 2, 2]}]},
      r"instances.json: annotation 1 has unknown category_id 9"),
     ({"annotations": [{"id": 2, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2]}]},
      r"annotation 2 refers to unknown image id 99"),
     ({"annotations": [{"id": 3, "image_id": 7, "category_id": 3, "bbox": [50, 5, 20, 30]}]},
      r"instances.json \(annotation 3\): box .* outside"),
     ({"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [5, 5, 0, 30]}]},
      r"instances.json \(annotation 4\): degenerate box"),
     ({"images": [{"id": 7, "file_name": "a.png"}, {"id": 7, "file_name": "b.png"}]},
      r"instances.json: duplicate image id '7'"),
     ({"images": [], "annotations": []}, r"dataset is empty"),
     ({"images": [{"id": 1, "file_name": "zz.png"}]}, r"zz.png: image file is missing")],
)
def test_coco_bad_inputs(tmp_path, changes, message):
    with pytest.raises(InvalidDatasetError, match=message):
        load_coco_dataset(_coco(tmp_path, **changes))


def test_coco_finds_images_in_the_standard_layout_or_the_named_folder(tmp_path):
    # COCO's own layout: annotations/instances_train2017.json, images in train2017/.
    _image(tmp_path / "train2017" / "a.png")
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    coco = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "cat"}],
            "annotations": []}
    (annotations / "instances_train2017.json").write_text(json.dumps(coco))
    manifest = import_dataset("coco", annotations / "instances_train2017.json")
    assert manifest["images"][0]["file"] == str(tmp_path / "train2017" / "a.png")
    # Anywhere else, dataset.images_dir names the folder; without it the error says where it looked.
    _image(tmp_path / "elsewhere" / "b.png")
    coco["images"] = [{"id": 2, "file_name": "b.png"}]
    (annotations / "other.json").write_text(json.dumps(coco))
    with pytest.raises(InvalidDatasetError, match=r"b.png: image file is missing .*dataset.images_dir"):
        import_dataset("coco", annotations / "other.json")
    manifest = import_dataset("coco", annotations / "other.json", images_dir=tmp_path / "elsewhere")
    assert manifest["images"][0]["file"] == str(tmp_path / "elsewhere" / "b.png")


def test_coco_unparsable_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(InvalidDatasetError, match=r"broken.json: unparsable JSON"):
        load_coco_dataset(path)


def test_unknown_source_and_missing_path(tmp_path):
    with pytest.raises(InvalidDatasetError, match="unknown dataset source 'csv'; valid sources"):
        import_dataset("csv", tmp_path)
    with pytest.raises(InvalidDatasetError, match="nope: dataset path does not exist"):
        import_dataset("coco", tmp_path / "nope")


# --- Malformed files: an InvalidDatasetError naming the file, never a crash --------------------

def test_yolo_names_dict_with_a_gap_is_refused(tmp_path):
    # {0: cat, 2: dog} would otherwise map label index 1 to "dog" without a word.
    data_yaml = _yolo(tmp_path, {"a": "1 0.5 0.5 0.2 0.2\n"})
    data_yaml.write_text("path: .\ntrain: images\nnames: {0: cat, 2: dog}\n")
    with pytest.raises(InvalidDatasetError, match=r"data.yaml: `names` keys must be 0..1"):
        load_yolo_dataset(data_yaml)
    data_yaml.write_text("path: .\ntrain: images\nnames: {1: dog, 0: cat}\n")
    assert load_yolo_dataset(data_yaml)["classes"] == ["cat", "dog"]


def test_yolo_yaml_that_is_not_a_mapping(tmp_path):
    data_yaml = _yolo(tmp_path, {"a": ""})
    data_yaml.write_text("- images\n- labels\n")
    with pytest.raises(InvalidDatasetError, match=r"data.yaml: expected a mapping"):
        load_yolo_dataset(data_yaml)


def test_voc_zero_size_is_not_compared_but_a_wrong_size_is(tmp_path):
    manifest = load_voc_dataset(_voc(tmp_path, _voc_xml(size=(0, 0))))
    assert manifest["images"][0]["width"] == 64
    with pytest.raises(InvalidDatasetError, match=r"img1.xml: size \(60, 48\) does not match"):
        load_voc_dataset(_voc(tmp_path, _voc_xml(size=(60, 48))))
    with pytest.raises(InvalidDatasetError, match=r"img1.xml: <size> is not numeric"):
        load_voc_dataset(_voc(tmp_path, _voc_xml(size=("wide", 48))))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"[1, 2]", r"bad.json: expected a COCO object"),
     (b"\xff\xfe garbage", r"bad.json: unparsable JSON"),
     (json.dumps({"images": [{"file_name": "a.png"}], "categories": [{"id": 1, "name": "a"}]})
      .encode(), r"bad.json: image entry .* needs id and file_name"),
     (json.dumps({"images": [], "categories": [{"name": "a"}]}).encode(),
      r"bad.json: category entry .* needs id and name")],
)
def test_coco_malformed_json(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InvalidDatasetError, match=message):
        load_coco_dataset(path)


def test_coco_missing_file_and_bad_bbox(tmp_path):
    with pytest.raises(InvalidDatasetError, match=r"nope.json: COCO JSON file does not exist"):
        load_coco_dataset(tmp_path / "nope.json")
    path = _coco(tmp_path, annotations=[{"id": 5, "image_id": 7, "category_id": 3, "bbox": [1, 2]}])
    with pytest.raises(InvalidDatasetError, match=r"instances.json: annotation 5 needs a 'bbox'"):
        load_coco_dataset(path)
