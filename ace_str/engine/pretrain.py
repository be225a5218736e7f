"""A first training stage whose final weights the run starts from (``pretrain`` in the config).

Why: 2D ACE on the 96x100 canvas waits some 2,000 steps on its plateau, while the same FCN on
32 px crops of the same words (a 4x13 map, every cell on the text) reads within 1,000 steps;
trained there first, it reads irregular words on the canvas within a few hundred more
(docs/REPRODUCING.md, Table 2, "Where 2D ACE's plateau comes from"). Both stages train with
the run's head and loss (Eq. 10 on each stage's map); only the data and the schedule differ.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

STAGE_DIR = "pretrain"  # under the run's folder


def pretrain_config(cfg: DictConfig) -> DictConfig | None:
    """The stage's config: the run's, with ``pretrain.overrides`` (``key=value`` strings, as on
    the command line, for keys the config has) applied; None when there is no stage to run:
    no ``pretrain``, or a run that resumes (``ckpt_path``) and so has trained past it."""
    stage = cfg.get("pretrain")
    if not stage or cfg.get("ckpt_path"):
        return None
    if cfg.get("init_weights"):
        raise ValueError(
            f"init_weights={cfg.init_weights} and pretrain both say where the run starts; "
            "drop one (pretrain=null keeps init_weights)"
        )
    overrides = list(stage.get("overrides") or [])
    bad = [o for o in overrides if not isinstance(o, str) or "=" not in o]
    if bad:
        raise ValueError(f"pretrain.overrides: key=value strings, not {bad}")
    staged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    with open_dict(staged):
        staged.pretrain = None
        staged.name = f"{cfg.name}_{STAGE_DIR}"
    return staged


def after_pretrain(cfg: DictConfig, stage_dir: Path) -> DictConfig:
    """The run's config starting from the stage's last weights (all modules)."""
    weights = stage_dir / "last.ckpt"
    if not weights.is_file():
        raise FileNotFoundError(f"the pretrain stage left no {weights}")
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.init_weights = str(weights)
        cfg.init_modules = []
    log.info("pretrain stage done; the run starts from %s", weights)
    return cfg
