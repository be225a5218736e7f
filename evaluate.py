"""Evaluate a checkpoint: python evaluate.py checkpoint=PATH data.root=DIR

A missing checkpoint or data folder (any setup mistake) prints one ``error: ...`` line and exits
2; HYDRA_FULL_ERROR=1 shows the traceback instead (ace_str/cli.py).
"""

import hydra
from omegaconf import DictConfig

from ace_str.cli import config_errors
from ace_str.evaluation.run import evaluate_checkpoint, prepare_evaluation


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with config_errors():
        prepared = prepare_evaluation(cfg)
    evaluate_checkpoint(cfg, prepared)


if __name__ == "__main__":
    main()
