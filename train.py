"""Train a recognizer: python train.py experiment=crnn_ace [key=value ...]"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ace_str.engine.trainer import Trainer


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    Trainer(cfg, HydraConfig.get().runtime.output_dir).fit()


if __name__ == "__main__":
    main()
