"""Regenerate the small synthetic example files in this folder.

A books shop (source domain) and a newer audiobooks shop (target domain) with some of
the same titles and some of the same customers. Everything is invented from word lists
with a fixed seed, so running this again gives byte-identical files:

    python sample_data/make_samples.py
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611

GENRES = [
    "Fantasy",
    "Mystery",
    "Romance",
    "Science Fiction",
    "History",
    "Biography",
    "Thriller",
    "Poetry",
]
ADJ = [
    "Silent",
    "Broken",
    "Golden",
    "Last",
    "Hidden",
    "Northern",
    "Burning",
    "Quiet",
    "Glass",
    "Wild",
    "Lost",
    "Winter",
]
NOUN = [
    "Harbour",
    "Orchard",
    "Signal",
    "Kingdom",
    "Archive",
    "Lantern",
    "River",
    "Garden",
    "Station",
    "Crown",
    "Map",
    "Tide",
]
# A few titles that exercise quoting (commas, quotes) and non-ASCII text.
SPECIAL = [
    "Salt, Sea and Sky",
    'The "Unfinished" Letter',
    "Café Nocturne",
    "Brontë's Moor",
    "Nine Lives, One Cat",
]
BLURB = {
    "Fantasy": "a reluctant heir, a map that redraws itself, and a war nobody remembers starting",
    "Mystery": "a retired inspector, a locked reading room, and a body that was never there",
    "Romance": "two rival bakers, one village fête, and a summer that refuses to end",
    "Science Fiction": "a generation ship, a failing AI, and the first child born between stars",
    "History": "the merchants, sailors and clerks who built a trading empire",
    "Biography": "the life of an engineer who bridged a river everyone said was unbridgeable",
    "Thriller": "a courier, a stolen ledger, and seventy-two hours to cross the border",
    "Poetry": "short poems about tides, kitchens, and the people we almost became",
}
COUNTRIES = ["DE", "FR", "GB", "IE", "NL", "ES", "IT", "SE"]
AGES = ["18-24", "25-34", "35-44", "45-54", "55+"]


def _titles(rng: random.Random, n: int) -> list[str]:
    pool = [f"The {a} {b}" for a in ADJ for b in NOUN]
    rng.shuffle(pool)
    return SPECIAL + pool[: n - len(SPECIAL)]


def _items(rng: random.Random, ids: list[str], titles: list[str], years: range) -> list[dict]:
    rows = []
    for item_id, title in zip(ids, titles):
        g = rng.sample(GENRES, k=rng.choice([1, 1, 2]))
        rows.append(
            {
                "item_id": item_id,
                "title": title,
                "genres": "|".join(g),
                "year": rng.choice(years),
                "description": f"{title}: {BLURB[g[0]]}.",
            }
        )
    return rows


def _genre_of(items: list[dict]) -> dict[str, str]:
    return {r["item_id"]: r["genres"].split("|")[0] for r in items}


def _interactions(
    rng: random.Random,
    users: list[str],
    items: list[dict],
    taste: dict[str, str],
    per_user: tuple[int, int],
    start: datetime,
    days: int,
    half_stars: bool,
) -> list[tuple[str, str, float, datetime]]:
    genre = _genre_of(items)
    ids = [r["item_id"] for r in items]
    out = []
    for u in users:
        # Users mostly read their favourite genre: enough signal for a model to find.
        weights = [6.0 if genre[i] == taste[u] else 1.0 for i in ids]
        k = rng.randint(*per_user)
        chosen: list[str] = []
        while len(chosen) < min(k, len(ids)):
            i = rng.choices(ids, weights)[0]
            if i not in chosen:
                chosen.append(i)
        t = start + timedelta(days=rng.randint(0, days // 2), seconds=rng.randint(0, 86399))
        for i in chosen:
            base = 4.2 if genre[i] == taste[u] else 2.8
            r = min(5.0, max(1.0, rng.gauss(base, 0.8)))
            r = round(r * 2) / 2 if half_stars else float(round(r))
            out.append((u, i, r, t))
            t += timedelta(days=rng.randint(0, 9), seconds=rng.randint(0, 86399))
    out.sort(key=lambda x: x[3])
    return out


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main(out: Path = HERE) -> None:
    """Write the sample files into ``out`` (default: this folder)."""
    rng = random.Random(SEED)
    titles = _titles(rng, 48)
    books = _items(rng, [f"bk-{i:04d}" for i in range(1, 49)], titles, range(1950, 2021))
    # Audiobooks: 16 narrated editions of books (same title, new id) and 14 originals.
    shared = titles[:16]
    originals = [t for t in _titles(random.Random(SEED + 1), 48) if t not in titles][:14]
    audio = _items(
        rng, [f"ab-{i:03d}" for i in range(1, 31)], shared + originals, range(2015, 2024)
    )
    for book, r in zip(books, audio[:16]):
        # A narrated edition keeps the book's genres and blurb.
        r["genres"], r["description"] = book["genres"], book["description"]
    for r in audio:
        r["description"] = r["description"].rstrip(".") + ", read by the author."

    src_users = [f"u{i:04d}" for i in range(1, 61)]
    # 25 customers also use the audiobook shop (same ids); 15 are new there.
    tgt_users = src_users[:25] + [f"u{i:04d}" for i in range(61, 76)]
    taste = {u: rng.choice(GENRES) for u in src_users + tgt_users}

    src = _interactions(
        rng, src_users, books, taste, (2, 8), datetime(2021, 1, 1, tzinfo=UTC), 600, False
    )
    tgt = _interactions(
        rng, tgt_users, audio, taste, (1, 6), datetime(2023, 1, 1, tzinfo=UTC), 300, True
    )

    item_header = ["item_id", "title", "genres", "year", "description"]
    _write(out / "source_items.csv", item_header, [[r[c] for c in item_header] for r in books])
    _write(out / "target_items.csv", item_header, [[r[c] for c in item_header] for r in audio])
    # Source: integer stars and epoch seconds; target: half stars and ISO dates, so the
    # two files show both accepted time formats.
    _write(
        out / "source_interactions.csv",
        ["user_id", "item_id", "rating", "timestamp"],
        [[u, i, int(r), int(t.timestamp())] for u, i, r, t in src],
    )
    tgt_rows = [[u, i, f"{r:g}", t.strftime("%Y-%m-%dT%H:%M:%SZ")] for u, i, r, t in tgt]
    _write(out / "target_interactions.csv", ["user_id", "item_id", "rating", "timestamp"], tgt_rows)
    _write(
        out / "users.csv",
        ["user_id", "age_group", "country"],
        [[u, rng.choice(AGES), rng.choice(COUNTRIES)] for u in sorted(set(src_users + tgt_users))],
    )
    # Broken on purpose: line 7 (header = line 1) has the rating "five".
    broken = [row[:] for row in tgt_rows[:12]]
    broken[5][2] = "five"
    _write(out / "broken_ratings.csv", ["user_id", "item_id", "rating", "timestamp"], broken)


if __name__ == "__main__":
    main()
