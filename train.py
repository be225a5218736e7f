"""Train a recognizer: python train.py experiment=crnn_ace [key=value ...]

Several processes: torchrun --nproc_per_node=N train.py experiment=... (see ace_str/engine/
distributed.py). A bad config (missing folder or file, a checkpoint of another model, an
unknown experiment) prints one ``error: ...`` line and exits 2; HYDRA_FULL_ERROR=1 shows the
traceback instead (ace_str/cli.py).
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ace_str.cli import check_experiment, config_errors, fail
from ace_str.engine.pretrain import STAGE_DIR, after_pretrain, pretrain_config
from ace_str.engine.trainer import NonFiniteError, Trainer


def train(cfg: DictConfig, output_dir: Path) -> Trainer:
    with config_errors():  # everything a config can get wrong surfaces here, before step 1
        trainer = Trainer(cfg, output_dir)
        trainer.resume()
    try:
        trainer.fit()
    except NonFiniteError as err:
        fail(err, 1)
    return trainer


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with config_errors():
        stage = pretrain_config(cfg)
    if stage is not None:  # a first stage (pretrain), whose last weights the run starts from
        if train(stage, output_dir / STAGE_DIR).interrupted:
            return
        cfg = after_pretrain(cfg, output_dir / STAGE_DIR)
    train(cfg, output_dir)


if __name__ == "__main__":
    check_experiment(sys.argv[1:], Path(__file__).resolve().parent / "configs")
    main()
