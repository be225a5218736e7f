"""Regenerate chinese_demo.txt: the most frequent simplified Chinese characters that the CJK font
draws, ranked by wordfreq's Chinese word frequencies (each character scored by the summed
frequency of the words containing it, once per occurrence).

    python data/charsets/make_chinese_demo.py --font /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from matplotlib import ft2font
from wordfreq import get_frequency_dict


def is_cjk(symbol: str) -> bool:
    return "\u4e00" <= symbol <= "\u9fff"  # CJK Unified Ideographs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", required=True, help="a CJK .ttf/.otf/.ttc font")
    parser.add_argument("--size", type=int, default=500, help="characters to keep")
    parser.add_argument("--words", type=int, default=20000, help="wordfreq words to read")
    parser.add_argument("--output", default=str(Path(__file__).with_name("chinese_demo.txt")))
    args = parser.parse_args()
    cmap = ft2font.FT2Font(args.font).get_charmap()
    scores: Counter[str] = Counter()
    # the raw list (frequency order), read without wordfreq's jieba tokenizer
    frequencies = get_frequency_dict("zh")
    for word in list(frequencies)[: args.words]:
        freq = frequencies[word]
        for symbol in word:
            if is_cjk(symbol) and cmap.get(ord(symbol), 0):
                scores[symbol] += freq
    ranked = [s for s, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]
    if len(ranked) < args.size:
        raise SystemExit(f"only {len(ranked)} characters found; read more words (--words)")
    Path(args.output).write_text("\n".join(ranked[: args.size]) + "\n", encoding="utf-8")
    print(f"wrote {args.size} characters to {args.output}: {''.join(ranked[:20])}...")


if __name__ == "__main__":
    main()
