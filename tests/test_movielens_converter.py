"""Tests for recbole_hetcomp.data.movielens (GroupLens archives -> RecBole atomic files).

The fixtures write miniature releases byte-for-byte in the official formats
(Latin-1, ``|`` / ``::`` separators, the ``ml-100k/`` / ``ml-1m/`` top folder of
the zips), so the converter is exercised exactly as on the real downloads
without shipping or fetching them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from recbole_hetcomp.data import movielens
from recbole_hetcomp.data.movielens import convert_movielens

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


_ANIMATION_CHILDRENS = _flags("Animation", "Children's")

ML100K_FILES = {
    "u.data": (
        "1\t10\t3\t881250949\n"
        "1\t20\t4\t881250950\n"
        "2\t10\t5\t881250951\n"
        "2\t30\t1\t881250952\n"
        "3\t20\t2\t881250953\n"
    ),
    "u.user": (
        "1|24|M|technician|85711\n"
        "2|53|F|other|94043\n"
        "3|23|M|writer|T8H1N\n"
    ),
    "u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n",
    "u.item": (
        f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags('Drama', 'Musical')}\n"
        # Title year (1976) must win over the re-release date (1996), as in RecBole's copy.
        f"20|Taxi Driver (1976)|16-Feb-1996||http://x|{_flags('Drama', 'Thriller')}\n"
        f"30|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||http://x|{_ANIMATION_CHILDRENS}\n"
        # No "(YYYY)" in the title: the year comes from the release date.
        f"40|Untitled Short|05-Mar-1997||http://x|{_flags('unknown')}\n"
    ),
}

ML1M_FILES = {
    "ratings.dat": (
        "1::1193::5::978300760\n"
        "1::661::3::978302109\n"
        "2::1193::4::978298413\n"
        "3::2355::2::978824291\n"
        "3::73::4::978824292\n"
        "3::99::1::978824293\n"
    ),
    "users.dat": (
        "1::F::1::10::48067\n"
        "2::M::56::16::70072\n"
        "3::M::25::15::55117\n"
    ),
    "movies.dat": (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "2355::Bug's Life, A (1998)::Animation|Children's|Comedy\n"
        "73::Misérables, Les (1995)::Drama|Musical\n"
        # A tab and a leading double quote would each break a naive TSV row.
        '99::"Quoted"\tand tabbed (1999)::Comedy\n'
    ),
}


def _write_folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_bytes(text.encode("latin-1"))
    return root


def _write_zip(path: Path, top: str, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/", b"")
        for name, text in files.items():
            archive.writestr(f"{top}/{name}", text.encode("latin-1"))
        archive.writestr(f"{top}/README", b"official readme\n")
    return path


def _source(tmp_path: Path, kind: str, top: str, files: dict[str, str]) -> Path:
    """Build the release as a zip, its extracted folder, or the folder's parent."""
    if kind == "zip":
        return _write_zip(tmp_path / f"{top}.zip", top, files)
    folder = _write_folder(tmp_path / "src" / top, files)
    return folder if kind == "folder" else folder.parent


def _read(path: Path) -> list[list[str]]:
    # Strict UTF-8 decoding doubles as the encoding check.
    return [line.split("\t") for line in path.read_bytes().decode("utf-8").split("\n")[:-1]]


# ---------------------------------------------------------------------------
# Conversion output
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "folder", "parent"])
def test_ml100k_matches_recbole_layout(tmp_path, kind):
    src = _source(tmp_path, kind, "ml-100k", ML100K_FILES)
    out = convert_movielens(src, tmp_path / "data")

    assert out == tmp_path / "data" / "ml-100k"
    assert sorted(p.name for p in out.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]

    inter = _read(out / "ml-100k.inter")
    assert inter[0] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    assert inter[1:] == [line.split("\t") for line in ML100K_FILES["u.data"].splitlines()]

    user = _read(out / "ml-100k.user")
    assert user[0] == ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"]
    assert user[1:] == [
        ["1", "24", "M", "technician", "85711"],
        ["2", "53", "F", "other", "94043"],
        ["3", "23", "M", "writer", "T8H1N"],
    ]

    item = _read(out / "ml-100k.item")
    assert item[0] == ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"]
    assert item[1:] == [
        ["10", "Misérables, Les", "1995", "Drama Musical"],
        ["20", "Taxi Driver", "1976", "Drama Thriller"],
        ["30", "Land Before Time III: The Time of the Great Giving (V)", "1995", "Animation Children's"],
        ["40", "Untitled Short", "1997", "unknown"],
    ]
    assert "Misérables".encode("utf-8") in (out / "ml-100k.item").read_bytes()


def test_ml100k_header_equals_recbole_bundled_copy(tmp_path):
    import recbole

    bundled = Path(recbole.__file__).parent / "dataset_example" / "ml-100k"
    out = convert_movielens(_source(tmp_path, "zip", "ml-100k", ML100K_FILES), tmp_path / "data")
    for suffix in ("inter", "user", "item"):
        with open(bundled / f"ml-100k.{suffix}", encoding="utf-8") as handle:
            expected = handle.readline()
        with open(out / f"ml-100k.{suffix}", encoding="utf-8") as handle:
            assert handle.readline() == expected


@pytest.mark.parametrize("kind", ["zip", "folder", "parent"])
def test_ml1m_matches_recbole_layout(tmp_path, kind):
    src = _source(tmp_path, kind, "ml-1m", ML1M_FILES)
    out = convert_movielens(src, tmp_path / "data")

    assert out == tmp_path / "data" / "ml-1m"
    inter = _read(out / "ml-1m.inter")
    assert inter[0] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    assert inter[1:] == [line.split("::") for line in ML1M_FILES["ratings.dat"].splitlines()]

    user = _read(out / "ml-1m.user")
    assert user[0] == ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"]
    # users.dat is id::gender::age::occupation::zip; RecBole's order puts age first.
    assert user[1:] == [
        ["1", "1", "F", "10", "48067"],
        ["2", "56", "M", "16", "70072"],
        ["3", "25", "M", "15", "55117"],
    ]

    item = _read(out / "ml-1m.item")
    assert item[0] == ["item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq"]
    assert item[1:] == [
        ["1193", "One Flew Over the Cuckoo's Nest", "1975", "Drama"],
        ["661", "James and the Giant Peach", "1996", "Animation Children's Musical"],
        ["2355", "Bug's Life, A", "1998", "Animation Children's Comedy"],
        ["73", "Misérables, Les", "1995", "Drama Musical"],
        # The tab became a space; the leading quote forces CSV quoting, which pandas undoes.
        ["99", '"""Quoted"" and tabbed"', "1999", "Comedy"],
    ]
    text = (out / "ml-1m.item").read_bytes().decode("utf-8")
    assert "Misérables" in text
    assert len(text.splitlines()) == 1 + 5


def test_custom_name_and_nested_data_path(tmp_path):
    out = convert_movielens(
        _source(tmp_path, "zip", "ml-1m", ML1M_FILES), tmp_path / "a" / "b", name="ml-1m-gl"
    )
    assert out == tmp_path / "a" / "b" / "ml-1m-gl"
    assert sorted(p.name for p in out.iterdir()) == ["ml-1m-gl.inter", "ml-1m-gl.item", "ml-1m-gl.user"]


# ---------------------------------------------------------------------------
# RecBole reads the result
# ---------------------------------------------------------------------------


def _load_with_recbole(data_path: Path, name: str, item_fields: list[str]):
    # The plugin's Config: RecBole's own fails on numpy 2 (np.float_); ours patches that.
    from recbole.data import create_dataset

    from recbole_hetcomp.config import Config

    config = Config(
        model="BPR",
        dataset=name,
        config_dict={
            "data_path": str(data_path),
            "checkpoint_dir": str(data_path / "saved"),
            "show_progress": False,
            "use_gpu": False,
            "save_dataset": False,
            "load_col": {
                "inter": ["user_id", "item_id", "rating", "timestamp"],
                "user": ["user_id", "age", "gender", "occupation", "zip_code"],
                "item": item_fields,
            },
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
        }
    )
    return create_dataset(config)


def test_recbole_loads_converted_ml100k(tmp_path):
    # RecBole 1.2.1 swaps in its bundled copy for a dataset named exactly "ml-100k".
    data = tmp_path / "data"
    convert_movielens(_source(tmp_path, "zip", "ml-100k", ML100K_FILES), data, name="ml-100k-tiny")
    dataset = _load_with_recbole(
        data, "ml-100k-tiny", ["item_id", "movie_title", "release_year", "class"]
    )
    assert dataset.inter_num == 5
    assert dataset.user_num == 3 + 1  # + RecBole's [PAD]
    assert dataset.item_num == 4 + 1  # item 40 has no rating but is in .item
    assert "Misérables," in dataset.field2id_token["movie_title"]
    assert set(dataset.field2id_token["class"]) >= {"Drama", "Musical", "Children's", "unknown"}
    assert "1976" in dataset.field2id_token["release_year"]


def test_recbole_loads_converted_ml1m(tmp_path):
    data = tmp_path / "data"
    convert_movielens(_source(tmp_path, "folder", "ml-1m", ML1M_FILES), data, name="ml-1m-tiny")
    dataset = _load_with_recbole(
        data, "ml-1m-tiny", ["item_id", "movie_title", "release_year", "genre"]
    )
    assert dataset.inter_num == 6
    assert dataset.user_num == 3 + 1
    assert dataset.item_num == 5 + 1
    titles = set(dataset.field2id_token["movie_title"])
    assert {"Misérables,", '"Quoted"', "tabbed"} <= titles
    assert "\t" not in "".join(titles)
    assert set(dataset.field2id_token["genre"]) >= {"Animation", "Children's", "Comedy"}


# ---------------------------------------------------------------------------
# Overwrite protection and atomic writes
# ---------------------------------------------------------------------------


def test_refuses_existing_output_unless_overwrite(tmp_path):
    src = _source(tmp_path, "zip", "ml-1m", ML1M_FILES)
    out = convert_movielens(src, tmp_path / "data")
    (out / "ml-1m.inter").write_text("sentinel\n")

    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        convert_movielens(src, tmp_path / "data")
    assert (out / "ml-1m.inter").read_text() == "sentinel\n"

    convert_movielens(src, tmp_path / "data", overwrite=True)
    assert (out / "ml-1m.inter").read_text().startswith("user_id:token\t")


def test_empty_existing_output_folder_is_fine(tmp_path):
    (tmp_path / "data" / "ml-1m").mkdir(parents=True)
    convert_movielens(_source(tmp_path, "zip", "ml-1m", ML1M_FILES), tmp_path / "data")
    assert (tmp_path / "data" / "ml-1m" / "ml-1m.inter").is_file()


def test_bad_input_leaves_no_output(tmp_path):
    files = dict(ML1M_FILES, **{"movies.dat": ML1M_FILES["movies.dat"] + "100::No genre field (2000)\n"})
    with pytest.raises(ValueError, match="movies.dat line 6"):
        convert_movielens(_source(tmp_path, "zip", "ml-1m", files), tmp_path / "data")
    assert not (tmp_path / "data" / "ml-1m").exists()


def test_interrupted_run_keeps_previous_files_and_no_temp(tmp_path, monkeypatch):
    src = _source(tmp_path, "zip", "ml-1m", ML1M_FILES)
    out = convert_movielens(src, tmp_path / "data")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_write = movielens._write_table

    def dies_on_item(path, header, rows):
        if ".item." in path.name:
            with open(path, "w") as handle:  # a half-written temp file, then the "kill"
                handle.write("item_id:token\t")
            raise KeyboardInterrupt
        return real_write(path, header, rows)

    monkeypatch.setattr(movielens, "_write_table", dies_on_item)
    with pytest.raises(KeyboardInterrupt):
        convert_movielens(src, tmp_path / "data", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_removes_stale_temp_files(tmp_path):
    out = tmp_path / "data" / "ml-1m"
    out.mkdir(parents=True)
    (out / ".ml-1m.inter.123-abcd.tmp").write_text("half")
    convert_movielens(_source(tmp_path, "zip", "ml-1m", ML1M_FILES), tmp_path / "data", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["ml-1m.inter", "ml-1m.item", "ml-1m.user"]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def _error(tmp_path: Path, src: Path, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        convert_movielens(src, tmp_path / "data", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path):
    message = _error(tmp_path, tmp_path / "nope.zip")
    assert "does not exist" in message and "grouplens.org" in message


def test_unrelated_zip(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other/readme.txt", b"hello")
    message = _error(tmp_path, path)
    assert "not a MovieLens ml-100k or ml-1m archive" in message
    assert "u.data or ratings.dat" in message and "grouplens.org" in message


def test_unrelated_folder(tmp_path):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    assert "not a MovieLens" in _error(tmp_path, folder)


def test_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "ml-1m.zip"
    path.write_text("<html>404</html>")
    assert "neither a folder nor a zip archive" in _error(tmp_path, path)


def test_incomplete_archive(tmp_path):
    files = {k: v for k, v in ML1M_FILES.items() if k != "users.dat"}
    message = _error(tmp_path, _source(tmp_path, "zip", "ml-1m", files))
    assert "lacks users.dat" in message and "incomplete" in message


@pytest.mark.parametrize(
    ("top", "broken", "expected"),
    [
        ("ml-100k", {"u.data": "1\t10\t3\n"}, r"u\.data line 1 .*expected 4"),
        ("ml-100k", {"u.user": "x|24|M|technician|85711\n"}, r"u\.user line 1 .*user id 'x'"),
        ("ml-100k", {"u.item": "10|Short|01-Jan-1995\n"}, r"u\.item line 1 .*expected 24"),
        ("ml-1m", {"ratings.dat": "1::1193::five::978300760\n"}, r"ratings\.dat line 1 .*rating 'five'"),
        ("ml-1m", {"users.dat": "1::F::1::10\n"}, r"users\.dat line 1 .*expected 5"),
    ],
)
def test_malformed_line(tmp_path, top, broken, expected):
    files = dict(ML100K_FILES if top == "ml-100k" else ML1M_FILES, **broken)
    message = _error(tmp_path, _source(tmp_path, "zip", top, files))
    assert re.search(expected, message), message
    assert "grouplens.org" in message


def test_bad_name(tmp_path):
    message = _error(tmp_path, _source(tmp_path, "zip", "ml-1m", ML1M_FILES), name="../escape")
    assert "not a plain folder name" in message


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recbole_hetcomp.data.movielens", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_cli_success(tmp_path):
    src = _source(tmp_path, "zip", "ml-1m", ML1M_FILES)
    result = _cli(str(src), "--data_path=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ml-1m.inter  6 rows" in result.stdout
    assert "ml-1m.user  3 rows" in result.stdout
    assert "ml-1m.item  5 rows" in result.stdout
    assert "python run_recbole_hetcomp.py --dataset=ml-1m --data_path=out" in result.stdout
    assert (tmp_path / "out" / "ml-1m" / "ml-1m.inter").is_file()

    again = _cli(str(src), "--data_path=out", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert _cli(str(src), "--data_path=out", "--overwrite", cwd=tmp_path).returncode == 0


def test_cli_warns_about_recbole_bundled_ml100k(tmp_path):
    result = _cli(str(_source(tmp_path, "zip", "ml-100k", ML100K_FILES)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--dataset=ml-100k --data_path=dataset" in result.stdout
    assert "ignores --data_path" in result.stdout


def test_cli_error_is_one_line_exit_2(tmp_path):
    result = _cli(str(tmp_path / "missing.zip"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0]
    assert "Traceback" not in result.stderr
