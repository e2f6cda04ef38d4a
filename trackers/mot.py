"""MOTChallenge text files: 'frame,id,x,y,w,h,conf,...' per box, frames from 1, x y the top-left corner, in pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_ROWS = 10_000_000  # a file longer than this is refused rather than read into memory


def format_rows(frame: int, tracks: np.ndarray) -> str:
    """MOT lines 'frame,id,x,y,w,h,conf,-1,-1,-1' for a tracker's rows x1 y1 x2 y2 id conf ..."""
    lines = []
    for x1, y1, x2, y2, tid, conf in tracks[:, :6].tolist():
        lines.append(f"{frame},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4f},-1,-1,-1\n")
    return "".join(lines)


def parse_line(file: Path, n: int, line: str) -> list[float]:
    """One MOT line's numbers, or an error naming the file, the line number and what is wrong."""
    parts = [p.strip() for p in (line.split(",") if "," in line else line.split())]  # MOT is comma-separated
    if len(parts) < 6:
        raise ValueError(f"{file}:{n}: expected at least 6 comma-separated values 'frame,id,x,y,w,h', got {line!r}")
    try:
        row = [float(p) for p in parts[:9]]
    except ValueError:
        raise ValueError(f"{file}:{n}: non-numeric value in {line!r}") from None
    if not all(np.isfinite(row)):
        raise ValueError(f"{file}:{n}: non-finite value in {line!r}")
    if row[0] < 1 or row[0] != int(row[0]):
        raise ValueError(f"{file}:{n}: frame must be a whole number from 1, got {parts[0]!r}")
    if row[1] != int(row[1]):
        raise ValueError(f"{file}:{n}: id must be a whole number, got {parts[1]!r}")
    if row[4] < 0 or row[5] < 0:
        raise ValueError(f"{file}:{n}: negative box width or height in {line!r}")
    return row + [1.0] * (7 - len(row)) if len(row) < 7 else row[:7]


def read_mot(file: str | Path) -> np.ndarray:
    """Rows frame, id, x, y, w, h, conf of a MOT file (conf 1 where the file has none); blank lines skipped."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"MOT file {file} not found")
    rows, seen = [], set()
    with open(file, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                rows.append(parse_line(file, n, line))
                key = (rows[-1][0], rows[-1][1])
                if key in seen:  # one box per id and frame: a second one makes every score ambiguous
                    raise ValueError(f"{file}:{n}: id {int(key[1])} appears twice in frame {int(key[0])}")
                seen.add(key)
                if len(rows) > MAX_ROWS:
                    raise ValueError(f"{file}: more than {MAX_ROWS} boxes; refusing to read it")
    return np.array(rows, dtype=np.float64).reshape(-1, 7)
