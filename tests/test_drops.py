"""Records dropped while indexing reach the trainer through every wrapper as values
(``drop_stats()``), without anyone walking a dataset's internals."""

from collections import Counter
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset
from torchvision.transforms import v2

from ace_str.data.augment import AugmentedDataset, AugmentPolicy
from ace_str.data.charset import Charset
from ace_str.data.drops import dropped_at_index
from ace_str.data.folder import LabelledFolderDataset, open_training_roots
from ace_str.data.lmdb import LmdbDataset
from ace_str.data.mixing import MixedDataset
from ace_str.data.shuffle import ShuffledLabels
from tests.test_lmdb import LABELS, create_lmdb, make_folder


class Rendered(Dataset):
    """Stands in for the renderer: generated samples, nothing dropped at indexing."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return None, "word"


def test_drops_at_index_are_reported_through_every_wrapper(tmp_path: Path) -> None:
    create_lmdb(make_folder(tmp_path / "src", LABELS, broken=True), tmp_path / "lmdb" / "db")
    make_folder(tmp_path / "folder" / "real", LABELS, broken=True)
    charset = Charset(preset="lower36")
    expected = LmdbDataset(tmp_path / "lmdb", charset).drop_stats()
    expected.update(LabelledFolderDataset(tmp_path / "folder" / "real", charset).drop_stats())
    assert expected["too_long"] == 2 and expected["malformed_line"] == 1

    roots = open_training_roots([tmp_path / "lmdb", tmp_path / "folder"], charset, 25, None)
    assert isinstance(roots, ConcatDataset) and dropped_at_index(roots) == expected
    assert ShuffledLabels(roots, 0.5, seed=0).drop_stats() == expected
    policy = AugmentPolicy([v2.Identity()], [v2.Identity()])
    assert AugmentedDataset(roots, policy, None, seed=0).drop_stats() == expected
    mixed = MixedDataset(
        [ShuffledLabels(roots, 0.5, seed=0), Rendered()], ["real", "render"], [1, 1], [True, False]
    )
    assert dropped_at_index(mixed) == expected
    assert dropped_at_index(Rendered()) == Counter()
