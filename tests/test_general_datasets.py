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


def test_missing_val_without_generator_names_the_path(tmp_path):
    cfg = {"path": str(tmp_path / "nowhere"), "train": "images/train", "val": "images/val", "names": ["x"],
           "download": "https://example.com/data.zip"}
    with pytest.raises(FileNotFoundError, match=r"nowhere/images/val.*never downloads"):
        check_dataset(cfg)
    assert not Path(tmp_path / "nowhere").exists()


def test_unknown_generator_is_an_error(tmp_path):
    cfg = {"path": str(tmp_path / "x"), "train": "a", "val": "b", "names": ["x"], "generate": {"name": "coco"}}
    with pytest.raises(ValueError, match="unknown dataset generator 'coco'"):
        check_dataset(cfg)
