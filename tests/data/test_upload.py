"""What the Data page shows under an upload: headline with right plurals, the column
roles used, the first parsed rows, warnings; which roles the header did not reveal."""

from __future__ import annotations

from recsys_core.data.loaders import ColumnMapping, read_table
from recsys_core.data.upload import check_upload, undetected_roles


def test_check_upload_headline_mapping_preview_and_warnings():
    data = b"uid,movie,stars,when\nu1,m1,4,1700000000\nu1,m2,-1,1700000100\n"
    cols = ColumnMapping(user="uid", item="movie", rating="stars", timestamp="when")
    df = read_table(data, name="r.csv", columns=cols)
    chk = check_upload(df, df.attrs["read_info"], "interactions", "r.csv")
    assert chk.headline == "r.csv: 2 rows, 1 user, 2 items"
    assert dict(chk.mapping) == {
        "user_id": "uid",
        "item_id": "movie",
        "rating": "stars",
        "timestamp": "when",
    }
    assert chk.preview["timestamp"].tolist() == ["2023-11-14 22:13:20", "2023-11-14 22:15:00"]
    assert chk.preview["rating"].tolist() == [4.0, -1.0]
    assert len(chk.warnings) == 1 and "(data row 2)" in chk.warnings[0]


def test_undetected_roles():
    assert undetected_roles(["user_id", "item_id", "rating"], "interactions") == []
    assert undetected_roles(["who", "item_id"], "interactions") == ["user id"]
    assert undetected_roles(["a", "b"], "interactions") == ["user id", "item id"]
    assert undetected_roles(["item_id", "title"], "items") == []
    assert undetected_roles(["item_id", "blurb"], "items") == ["item text"]
