"""Read word images with a checkpoint: python read.py checkpoint=PATH images=DIR_OR_FILES

A missing checkpoint or image folder (any setup mistake) prints one ``error: ...`` line and
exits 2; HYDRA_FULL_ERROR=1 shows the traceback instead (ace_str/cli.py).
"""

import hydra
from omegaconf import DictConfig

from ace_str.cli import config_errors
from ace_str.evaluation.reader import prepare_reading, read_with_checkpoint


@hydra.main(config_path="configs", config_name="read", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with config_errors():
        prepared = prepare_reading(cfg)
    read_with_checkpoint(cfg, prepared)


if __name__ == "__main__":
    main()
