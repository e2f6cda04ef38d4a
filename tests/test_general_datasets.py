"""check_dataset: YAML lookup, path resolution, names and nc, and clear errors for missing data."""

from pathlib import Path

import pytest

import utils.general as general
from utils.general import check_dataset, yaml_save


@pytest.fixture
def dataset(tmp_path):
    """A minimal dataset folder: root/images/{train,val} (empty folders are enough for check_dataset)."""
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
    return root


def test_names_list_becomes_dict_and_nc_derived(dataset, tmp_path):
    f = tmp_path / "d.yaml"
    yaml_save(f, {"path": str(dataset), "train": "images/train", "val": "images/val", "names": ["a", "b", "c"]})
    data = check_dataset(str(f))
    assert data["names"] == {0: "a", 1: "b", 2: "c"} and data["nc"] == 3
    assert data["train"] == str(dataset / "images" / "train") and data["test"] is None
    assert data["path"] == str(dataset)


def test_names_dict_with_string_keys_and_matching_nc(dataset):
    data = check_dataset({"path": str(dataset), "train": "images/train", "val": "images/val", "nc": 2,
                          "names": {"1": "b", "0": "a"}})
    assert data["names"] == {0: "a", 1: "b"} and data["nc"] == 2


def test_nc_mismatch_and_bad_names_are_errors(dataset):
    base = {"path": str(dataset), "train": "images/train", "val": "images/val"}
    with pytest.raises(ValueError, match="nc=3 does not match the 2 names"):
        check_dataset({**base, "nc": 3, "names": ["a", "b"]})
    with pytest.raises(ValueError, match="keys must be 0..1"):
        check_dataset({**base, "names": {0: "a", 2: "b"}})
    with pytest.raises(KeyError, match="'names:' key missing"):
        check_dataset(base)


def test_relative_path_resolves_against_yaml_folder(dataset, tmp_path):
    f = tmp_path / "cfg" / "d.yaml"
    f.parent.mkdir()
    yaml_save(f, {"path": "../ds", "train": "images/train", "val": ["images/val", "images/train"], "names": ["x"]})
    data = check_dataset(f)
    assert data["path"] == str(dataset)
    assert data["val"] == [str(dataset / "images" / "val"), str(dataset / "images" / "train")]


def test_split_relative_to_yaml_folder_when_no_path(tmp_path):
    (tmp_path / "imgs").mkdir()
    f = tmp_path / "d.yaml"
    yaml_save(f, {"train": "imgs", "val": "imgs", "names": ["x"]})
    assert check_dataset(str(f))["val"] == str(tmp_path / "imgs")


def test_bare_name_is_found_in_data_folder(dataset, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    yaml_save(tmp_path / "data" / "mine.yaml",
              {"path": str(dataset), "train": "images/train", "val": "images/val", "names": ["x"]})
    monkeypatch.setattr(general, "ROOT", tmp_path)  # check_file searches ROOT/data for bare names
    assert check_dataset("mine.yaml")["nc"] == 1


def test_missing_val_without_autodownload_names_the_path(tmp_path):
    cfg = {"path": str(tmp_path / "nowhere"), "train": "images/train", "val": "images/val", "names": ["x"],
           "download": "https://example.com/data.zip"}
    with pytest.raises(FileNotFoundError, match=r"nowhere/images/val.*by hand.*https://example.com/data.zip"):
        check_dataset(cfg, autodownload=False)  # autodownload off: nothing is fetched (tests never leave 127.0.0.1)
    assert not Path(tmp_path / "nowhere").exists()


def test_missing_val_without_download_names_the_converter(tmp_path):
    cfg = {"path": str(tmp_path / "xView"), "train": "a.txt", "val": "b.txt", "names": ["x"], "convert": "xview"}
    with pytest.raises(FileNotFoundError, match=r"by hand; then convert it with: python -m utils.convert xview"):
        check_dataset(cfg)


def test_unknown_generator_is_an_error(tmp_path):
    cfg = {"path": str(tmp_path / "x"), "train": "a", "val": "b", "names": ["x"], "generate": {"name": "coco"}}
    with pytest.raises(ValueError, match="unknown dataset generator 'coco'"):
        check_dataset(cfg)


DATA = Path(__file__).parents[1] / "data"
EXPECTED_NC = {"coco.yaml": 80, "coco128.yaml": 80, "VOC.yaml": 20, "VisDrone.yaml": 10, "GlobalWheat2020.yaml": 1,
               "SKU-110K.yaml": 1, "Objects365.yaml": 365, "Argoverse.yaml": 8, "xView.yaml": 60, "shapes.yaml": 6}


@pytest.mark.parametrize("name", sorted({p.name for p in DATA.glob("*.yaml")} | set(EXPECTED_NC)))
def test_dataset_yamls_parse_with_safe_downloads(name):
    from utils.convert import CONVERTERS
    from utils.downloads import parse_download_spec

    cfg = general.yaml_load(DATA / name)
    names = general._dataset_names(cfg["names"], name)
    assert len(names) == EXPECTED_NC.get(name, len(names)) == cfg.get("nc", len(names))
    assert all(isinstance(n, str) and n for n in names.values()) and len(set(names.values())) == len(names)
    assert str(cfg["path"]).startswith("../datasets/") and cfg["train"] and cfg["val"]
    if cfg.get("download"):
        assert all(u.startswith(("http://", "https://")) for u, _ in parse_download_spec(cfg["download"], name))
    assert cfg.get("convert") in (None, *CONVERTERS)


def test_v7_dataset_yamls_are_present():
    assert set(EXPECTED_NC) <= {p.name for p in DATA.glob("*.yaml")}


def test_dataset_yaml_facts():
    voc, coco, o365 = (general.yaml_load(DATA / f) for f in ("VOC.yaml", "coco.yaml", "Objects365.yaml"))
    assert voc["names"][11] == "dog" and voc["val"] == ["images/test2007"] and len(voc["train"]) == 4
    assert coco["names"][79] == "toothbrush" and coco["test"] == "test-dev2017.txt"
    assert o365["names"][364] == "Table Tennis" and len(o365["download"]) == 1 + 51 + 1 + 44


@pytest.mark.parametrize("name", ["hyp.VOC.yaml", "hyp.Objects365.yaml", "hyp.no-augmentation.yaml"])
def test_hyps_have_the_project_keys(name):
    base = general.yaml_load(DATA / "hyps" / "hyp.scratch-low.yaml")
    hyp = general.yaml_load(DATA / "hyps" / name)
    assert set(hyp) - {"anchors"} == set(base) and all(isinstance(v, (int, float)) for v in hyp.values())
    if name == "hyp.no-augmentation.yaml":
        aug = ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "fliplr", "mosaic", "mixup")
        assert all(hyp[k] == 0 for k in aug)
