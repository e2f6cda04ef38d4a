"""The leaf of the package: logging set-up and the constants every utils module may import without a cycle.

YOLOv5 v7.0 configures its logger here too. utils.general re-exports these names, where v7.0 code imports them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # repository root
RANK = int(os.getenv("RANK", -1))
LOCAL_RANK = int(os.getenv("LOCAL_RANK", -1))
WORLD_SIZE = int(os.getenv("WORLD_SIZE", 1))
NUM_THREADS = min(8, max(1, os.cpu_count() or 1))
LOGGING_NAME = "yolov5"
LOGGER = logging.getLogger(LOGGING_NAME)
TQDM_BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"  # one tqdm bar layout for every loop
# lower-case file suffixes (and PIL format names) of the images and videos the loaders read, as YOLOv5 v7.0
IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm")
VID_FORMATS = ("asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv")


class _ProjectLogHandler(logging.StreamHandler):
    """Plain messages to the current sys.stderr, unless a root-logger handler will show the record anyway.

    The stream is looked up per record, so pytest's capsys and notebooks that swap sys.stderr see the lines. An
    application that configures logging itself (logging.basicConfig, pytest's log capture) gets each record once,
    through its own root handlers and format, because the project logger keeps propagating.
    """

    def __init__(self, name: str = LOGGING_NAME):
        """A handler for the logger called name (its propagate flag decides whether root handlers see records)."""
        super().__init__()
        self.logger_name = name
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        """Whatever sys.stderr is now."""
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass  # StreamHandler.__init__ assigns a stream; this handler always follows sys.stderr

    def filter(self, record: logging.LogRecord) -> bool:
        """Emit only records that no root handler will print."""
        if logging.getLogger(self.logger_name).propagate:
            if any(record.levelno >= h.level for h in logging.getLogger().handlers):
                return False
        return bool(super().filter(record))


def set_logging(name: str = LOGGING_NAME, verbose: bool = True) -> logging.Logger:
    """Give the project logger its stream handler (once) and level INFO; ranks other than 0 log warnings only."""
    level = logging.INFO if verbose and RANK in {-1, 0} else logging.WARNING
    logger = logging.getLogger(name)
    logger.setLevel(level)
    if not any(isinstance(h, _ProjectLogHandler) for h in logger.handlers):
        logger.addHandler(_ProjectLogHandler(name))
    return logger


set_logging()  # the one import-time action: run() called from Python logs its tables and paths, as the CLIs do
