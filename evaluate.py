"""Evaluate a checkpoint: python evaluate.py checkpoint=PATH data.root=DIR"""

import hydra
from omegaconf import DictConfig

from ace_str.evaluation.run import evaluate_checkpoint


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
