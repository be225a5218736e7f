"""Train a recognizer: python train.py experiment=crnn_ace [key=value ...]

Several processes: torchrun --nproc_per_node=N train.py experiment=... (see ace_str/engine/
distributed.py). A bad config (missing folder or file, a checkpoint of another model) prints one
``error: ...`` line and exits 2; HYDRA_FULL_ERROR=1 shows the traceback instead.
"""

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ace_str.engine.trainer import NonFiniteError, Trainer

CONFIG_ERRORS = (
    FileNotFoundError,
    ValueError,
    RuntimeError,
    InstantiationException,
    OmegaConfBaseException,
)


def fail(err: BaseException, code: int) -> None:
    """One line naming the problem, unless HYDRA_FULL_ERROR=1 asks for the traceback."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
    print(f"error: {' '.join(str(cause).split())}", file=sys.stderr)
    sys.exit(code)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:  # setup: everything a config can get wrong surfaces here, before the first step
        trainer = Trainer(cfg, HydraConfig.get().runtime.output_dir)
        trainer.resume()
    except CONFIG_ERRORS as err:
        fail(err, 2)
    try:
        trainer.fit()
    except NonFiniteError as err:
        fail(err, 1)


if __name__ == "__main__":
    main()
