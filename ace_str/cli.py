"""What the entry points (train.py, evaluate.py, read.py) share: a config mistake ends the run
with one ``error: ...`` line on stderr and exit code 2, not a traceback and Hydra's hint.

A mistake is anything the setup phase raises (a missing checkpoint, data folder or charset file,
a checkpoint of another model, a bad value); errors once the work has started keep their
traceback, since they are bugs to report, not typos to fix. ``HYDRA_FULL_ERROR=1`` shows the
traceback of a setup error as well.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra.errors import InstantiationException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

USAGE_ERROR = 2  # a command line or config to fix, as argparse exits
CONFIG_ERRORS = (
    FileNotFoundError,
    ValueError,
    RuntimeError,
    InstantiationException,
    OmegaConfBaseException,
)
# Hydra options that add config folders: an experiment may then live outside configs/
_SEARCH_PATH_OPTIONS = ("--config-dir", "-cd", "--config-path", "-cp")


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(err: BaseException | str, code: int = USAGE_ERROR) -> NoReturn:
    """One line naming the problem (the cause of an instantiation error), then exit ``code``;
    re-raises instead when HYDRA_FULL_ERROR=1 asks for the traceback."""
    if isinstance(err, BaseException) and full_errors():
        raise err
    cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
    if isinstance(cause, MissingMandatoryValue):
        message = f"{cause.full_key} is required: add {cause.full_key}=... to the command line"
    else:
        message = str(cause)
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


@contextmanager
def config_errors() -> Iterator[None]:
    """Wrap an entry point's setup: what a config can get wrong becomes one line and exit 2."""
    try:
        yield
    except CONFIG_ERRORS as err:
        fail(err)


def experiments(configs: Path) -> list[str]:
    """The names ``experiment=`` accepts: the YAML files under configs/experiment."""
    folder = configs / "experiment"
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_experiment(argv: Sequence[str], configs: Path) -> None:
    """Refuse an ``experiment=NAME`` override (also ``+``/``++``, or a sweep ``a,b``) naming no
    file, listing the experiments that exist; Hydra would print its search path instead."""
    if full_errors() or any(a.split("=")[0] in _SEARCH_PATH_OPTIONS for a in argv):
        return
    known = experiments(configs)
    for arg in argv:
        key, eq, value = arg.lstrip("+").partition("=")
        if key != "experiment" or not eq:
            continue
        for name in (v.strip() for v in value.split(",")):
            if name not in known and name != "null":
                fail(f"unknown experiment {name!r}; configs/experiment has: {', '.join(known)}")
