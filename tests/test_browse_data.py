"""scripts/browse_data.py: a captioned grid of what training draws, for any source."""

from tests.conftest import TINY, load_script

from .test_augment import WORDS, write_crops


def test_grid_of_a_mix_of_renderer_and_augmented_folder(tmp_path, capsys) -> None:
    crops = write_crops(tmp_path / "crops", WORDS)
    out = tmp_path / "grid.png"
    load_script("browse_data").main(
        [
            "experiment=crnn_ace",
            *TINY,
            "augment=str",
            f"data.train_sources=[{{name: synth, ratio: 1}}, {{name: real, roots: [{crops}], "
            "ratio: 1}]",
            "--num",
            "6",
            "--out",
            str(out),
        ]
    )
    assert "saved 6 training samples of crnn_ace" in capsys.readouterr().out
    assert out.is_file() and out.stat().st_size > 0
