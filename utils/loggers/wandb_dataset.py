"""--upload_dataset: a dataset's splits as W&B 'dataset' artifacts, each image with its label file."""

from __future__ import annotations

from pathlib import Path

from utils.dataloaders import gather_images  # the loaders' own listing: the images training reads
from utils.dataset_check import img2label_paths
from utils.general import check_dataset


def dataset_artifacts(wandb, data: str, splits: tuple[str, ...]) -> list:
    """One artifact per split, '<data stem>_<split>', holding images/ and labels/ paths relative to the dataset."""
    d = check_dataset(data, autodownload=False)
    root = Path(d.get("path") or Path(data).parent)
    arts = []
    for split in splits:
        art = wandb.Artifact(f"{Path(data).stem}_{split}", type="dataset", metadata={"nc": d["nc"]})
        images = gather_images(d[split])
        for f in images + [x for x in img2label_paths(images) if Path(x).is_file()]:
            art.add_file(f, name=relative(Path(f), root, split))
        arts.append(art)
    return arts


def relative(f: Path, root: Path, split: str) -> str:
    """f's path inside the artifact: relative to the dataset root, or <split>/<name> when outside it."""
    try:
        return f.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"{split}/{f.parent.name}/{f.name}"
