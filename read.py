"""Read word images with a checkpoint: python read.py checkpoint=PATH images=DIR_OR_FILES"""

import hydra
from omegaconf import DictConfig

from ace_str.evaluation.reader import read_with_checkpoint


@hydra.main(config_path="configs", config_name="read", version_base="1.3")
def main(cfg: DictConfig) -> None:
    read_with_checkpoint(cfg)


if __name__ == "__main__":
    main()
