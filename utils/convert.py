"""Annotation converters by name, for dataset YAMLs' `convert:` key and the command line.

Usage:
    python -m utils.convert voc ../datasets/VOC
    python -m utils.convert coco annotations/instances_val2017.json images/val2017 ../datasets/coco [--segments]
    python -m utils.convert visdrone|sku110k|globalwheat|argoverse|objects365|xview ROOT
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from utils import set_logging
from utils.coco_json import convert_argoverse, convert_coco, convert_objects365
from utils.converters import (
    ConvertReport,
    convert_globalwheat,
    convert_sku110k,
    convert_visdrone,
    convert_voc,
    convert_xview,
)

# What a dataset YAML's 'convert:' may name: each takes the dataset root (its resolved 'path') and converts in place
CONVERTERS: dict[str, Callable[[Path], ConvertReport]] = {
    "voc": convert_voc,
    "visdrone": convert_visdrone,
    "sku110k": convert_sku110k,
    "globalwheat": convert_globalwheat,
    "argoverse": convert_argoverse,
    "objects365": convert_objects365,
    "xview": convert_xview,
}


def get_converter(name: str, file: str = "dataset YAML") -> Callable[[Path], ConvertReport]:
    """The project's converter registered under name; a clear error for anything else."""
    if not isinstance(name, str) or name not in CONVERTERS:
        raise ValueError(f"{file}: unknown converter 'convert: {name}', expected one of {', '.join(CONVERTERS)}")
    return CONVERTERS[name]


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options: a sub-command per format."""
    parser = argparse.ArgumentParser(prog="python -m utils.convert", description="Convert annotations to YOLO labels")
    sub = parser.add_subparsers(dest="format", required=True)
    coco = sub.add_parser("coco", help="COCO JSON to YOLO labels in OUT/labels/<images folder name>")
    coco.add_argument("json_file", type=Path, help="COCO annotations JSON, e.g. instances_val2017.json")
    coco.add_argument("images_dir", type=Path, help="folder holding the images named in the JSON")
    coco.add_argument("out", type=Path, help="dataset root to write labels/ and the image list into")
    coco.add_argument("--segments", action="store_true", help="write polygons instead of boxes")
    coco.add_argument("--cls91", action="store_true", help="keep category_id - 1 (91 classes), no 91-to-80 map")
    for name in CONVERTERS:
        p = sub.add_parser(name, help=f"{CONVERTERS[name].__doc__.splitlines()[0]}")
        p.add_argument("root", type=Path, help="dataset root (the YAML's path)")
    return parser.parse_args(argv)


def run(format: str, **kwargs) -> ConvertReport:
    """Run one converter: 'coco' with json_file, images_dir, out, segments, cls91; the others with root."""
    if format == "coco":
        return convert_coco(kwargs["json_file"], kwargs["images_dir"], kwargs["out"],
                            segments=kwargs.get("segments", False), cls91to80=not kwargs.get("cls91", False))
    return get_converter(format, "command line")(kwargs["root"])


def main(argv: list[str] | None = None) -> ConvertReport:
    """Parse the command line and run the converter."""
    set_logging()
    return run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, FileExistsError, ValueError) as e:  # bad input: the message, not a traceback
        raise SystemExit(f"ERROR: {e}") from None
