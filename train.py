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
from ace_str.engine.trainer import NonFiniteError, Trainer


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with config_errors():  # everything a config can get wrong surfaces here, before step 1
        trainer = Trainer(cfg, HydraConfig.get().runtime.output_dir)
        trainer.resume()
    try:
        trainer.fit()
    except NonFiniteError as err:
        fail(err, 1)


if __name__ == "__main__":
    check_experiment(sys.argv[1:], Path(__file__).resolve().parent / "configs")
    main()
