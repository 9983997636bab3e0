"""``make demo`` output: results by name up to the third with recommendations, errors.txt."""

from __future__ import annotations

import json

from devhost.run import show_results

NAMES = {"C9F-00163": "MOZO Flip Cover for Nokia Lumia 635 - White",
         "C9F-00166": "MOZO Flip Cover for Nokia Lumia 635 - Green",
         "FKF-00689": "Disney Infinity Play Set Pack - Toy Story Xbox 360"}


def _rec(item_id: str, rating: float) -> dict:
    return {"items": [{"itemId": item_id, "name": NAMES[item_id], "metadata": ""}],
            "rating": rating, "reasoning": ["..."]}


def test_results_are_shown_by_name_with_the_error_lines(container, capsys):
    results = [
        {"index": 0, "request": {"seedItems": ["C9F-00163"]},
         "recommendations": [_rec("C9F-00166", 0.5)]},
        {"index": 1, "request": {"seedItems": ["F34-03453"]}, "recommendations": []},
        {"index": 3, "request": {"seedItems": ["P45-00163", "FKF-00689"]},
         "recommendations": [_rec("C9F-00163", 0.25)]},
        {"index": 4, "request": {"seedItems": ["FKF-00689"]},
         "recommendations": [_rec("C9F-00166", 0.125)]},
    ]
    container.upload_blob("in.json/results.json", json.dumps({"results": results}))
    container.upload_blob("in.json/errors.txt",
                          b"request 1: none of the seed items are in the catalog\n")
    asked: list[list[str]] = []

    def names_of(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {i: NAMES[i] for i in ids if i in NAMES}

    show_results(container, "in.json", names_of, shown=2, top=3)

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "in.json: 4 results, 1 lines in errors.txt; top 3 of the first results:",
        "  request 0: MOZO Flip Cover for Nokia Lumia 635 - White (C9F-00163)",
        "      0.500  MOZO Flip Cover for Nokia Lumia 635 - Green (C9F-00166)",
        "  request 1: F34-03453 (not in the catalog): no recommendations",
        "  request 3: P45-00163 (not in the catalog) + Disney Infinity Play Set Pack - Toy "
        "Story Xbox 360 (FKF-00689)",
        "      0.250  MOZO Flip Cover for Nokia Lumia 635 - White (C9F-00163)",
        "in.json: errors.txt",
        "  request 1: none of the seed items are in the catalog",
    ]
    assert asked == [["C9F-00163", "F34-03453", "P45-00163", "FKF-00689"]]
