"""Convert GroupLens' official MovieLens archives into RecBole atomic files.

RecBole 1.2.1 fetches its datasets from a mirror that no longer serves them
(RecBole issue #2218), so ``--dataset=ml-1m`` fails on a fresh machine. This
module converts the archives GroupLens publishes at
https://grouplens.org/datasets/movielens/ (``ml-100k.zip`` and ``ml-1m.zip``,
zipped or already extracted) into the ``.inter``/``.user``/``.item`` files
RecBole reads, with the same columns as RecBole's own copies:

* ``.inter``: ``user_id:token item_id:token rating:float timestamp:float``
* ``.user``: ``user_id:token age:token gender:token occupation:token zip_code:token``
* ``.item`` (ml-100k): ``item_id:token movie_title:token_seq release_year:token
  class:token_seq``, as in the ml-100k bundled with RecBole.
* ``.item`` (ml-1m): ``item_id:token movie_title:token_seq release_year:token
  genre:token_seq``, as in RecBole's published ml-1m.

Titles lose their ``(1995)`` suffix (it becomes ``release_year``) and genres
are space-separated, because RecBole splits ``token_seq`` fields on spaces.

Library use::

    from recbole_hetcomp.data.movielens import convert_movielens
    convert_movielens("ml-1m.zip", "dataset")  # -> dataset/ml-1m/ml-1m.{inter,user,item}

Command line::

    python -m recbole_hetcomp.data.movielens ml-1m.zip --data_path=dataset

Caveat: RecBole 1.2.1 ignores ``data_path`` when the dataset is named exactly
``ml-100k`` and loads the copy bundled in its package instead; give a
converted ml-100k another name (``--name=ml-100k-gl``) to make RecBole read it.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import pathlib
import re
import secrets
import shlex
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["convert_movielens", "main"]

DOWNLOAD_HINT = "download it from grouplens.org/datasets/movielens"

# Both archives are Latin-1 (accented French/Spanish titles); Latin-1 maps every
# byte, so decoding never fails and a damaged file shows up as a bad field instead.
_SOURCE_ENCODING = "latin-1"

# Used only when an extracted ml-100k folder lacks u.genre; this is the order
# documented in the ml-100k README and shipped in u.genre.
_ML100K_DEFAULT_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

_INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
_USER_HEADER = (
    "user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token",
)
_ML100K_ITEM_HEADER = (
    "item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq",
)
_ML1M_ITEM_HEADER = (
    "item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq",
)

# Greedy title so the *last* "(YYYY)" is the year; trailing groups such as the
# "(V)" in "Land Before Time III ... (1995) (V)" stay part of the title.
_TITLE_YEAR = re.compile(r"^(?P<title>.*)\((?P<year>\d{4})\)(?P<suffix>(?:\s*\([^()]*\))*)\s*$")
# ml-100k release dates look like "01-Jan-1995".
_RELEASE_DATE = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(?P<year>\d{4})$")
# Anything a line-based or tab-based reader could take as a row or column break.
_BREAKING_CHARS = re.compile(r"[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class _Layout:
    """What identifies one MovieLens release and where its three files live."""

    default_name: str
    inter_file: str
    user_file: str
    item_file: str


_ML100K = _Layout("ml-100k", "u.data", "u.user", "u.item")
_ML1M = _Layout("ml-1m", "ratings.dat", "users.dat", "movies.dat")


class _Source:
    """Read-only view of an archive or folder, addressed by bare file name.

    Official archives nest everything under ``ml-100k/`` or ``ml-1m/`` while
    people often point at the extracted folder or its parent, so files are
    looked up by name at the top level or one folder down.
    """

    def __init__(self, src: pathlib.Path):
        self.src = src
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if src.is_dir():
            self._index_folder(src)
        elif src.is_file():
            self._index_zip(src)
        else:
            raise ValueError(
                f"{src} does not exist: pass the path of ml-100k.zip or ml-1m.zip "
                f"(or its extracted folder); {DOWNLOAD_HINT}"
            )

    def _index_folder(self, src: pathlib.Path) -> None:
        # Top level first so that src/u.data wins over src/<sub>/u.data.
        candidates = [src] + sorted(p for p in src.iterdir() if p.is_dir())
        for folder in candidates:
            for path in folder.iterdir():
                if path.is_file():
                    self._members.setdefault(path.name, str(path))

    def _index_zip(self, src: pathlib.Path) -> None:
        if not zipfile.is_zipfile(src):
            raise ValueError(
                f"{src} is neither a folder nor a zip archive: pass ml-100k.zip or "
                f"ml-1m.zip (or its extracted folder); {DOWNLOAD_HINT}"
            )
        try:
            self._zip = zipfile.ZipFile(src)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(
                f"{src} is a damaged zip archive ({exc}); {DOWNLOAD_HINT} again"
            ) from exc
        # Shallowest first; "__MACOSX/..." resource forks are two levels down
        # and are therefore never chosen over the real files.
        for member in sorted(names, key=lambda n: (n.count("/"), n)):
            if member.endswith("/") or member.count("/") > 1:
                continue
            self._members.setdefault(member.rsplit("/", 1)[-1], member)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def has(self, filename: str) -> bool:
        return filename in self._members

    def lines(self, filename: str) -> Iterator[tuple[int, str]]:
        """Yield ``(line number, text)`` for the non-blank lines of a file."""
        member = self._members[filename]
        if self._zip is not None:
            raw: io.BufferedIOBase = self._zip.open(member)  # type: ignore[assignment]
        else:
            raw = open(member, "rb")
        with io.TextIOWrapper(raw, encoding=_SOURCE_ENCODING) as text:
            try:
                for number, line in enumerate(text, start=1):
                    line = line.rstrip("\r\n")
                    # A trailing empty line is common after hand edits; it holds no row.
                    if line.strip():
                        yield number, line
            except zipfile.BadZipFile as exc:  # CRC mismatch surfaces while reading
                raise ValueError(
                    f"{self.src}: {filename} is damaged inside the archive ({exc}); "
                    f"{DOWNLOAD_HINT} again"
                ) from exc


def _malformed(src: pathlib.Path, filename: str, number: int, line: str, problem: str) -> ValueError:
    shown = line if len(line) <= 60 else line[:57] + "..."
    return ValueError(
        f"{src}: {filename} line {number} is malformed ({problem}): {shown!r}; the file is "
        f"damaged or edited, {DOWNLOAD_HINT} again"
    )


def _clean(text: str) -> str:
    """Make free text safe for a one-row-per-line, tab-separated file."""
    return _BREAKING_CHARS.sub(" ", text).strip()


def _split_title(title: str) -> tuple[str, str]:
    """Split ``"Toy Story (1995)"`` into ``("Toy Story", "1995")``; year may be ``""``."""
    match = _TITLE_YEAR.match(title)
    if match is None:
        return title.strip(), ""
    name = (match.group("title").strip() + " " + match.group("suffix").strip()).strip()
    return name, match.group("year")


def _genre_tokens(genres: Iterable[str]) -> str:
    # RecBole splits token_seq on spaces, so a multi-word genre must stay one token.
    return " ".join("_".join(g.split()) for g in genres if g.strip())


class _Parser:
    """Shared field checks; the per-dataset parsers below subclass it."""

    layout: _Layout

    def __init__(self, source: _Source):
        self.source = source

    def _fields(self, filename: str, sep: str, count: int, what: str) -> Iterator[tuple[int, str, list[str]]]:
        for number, line in self.source.lines(filename):
            fields = line.split(sep)
            if len(fields) != count:
                raise _malformed(
                    self.source.src, filename, number, line,
                    f"expected {count} {sep!r}-separated fields ({what}), got {len(fields)}",
                )
            yield number, line, fields

    def _check_int(self, filename: str, number: int, line: str, value: str, field: str) -> str:
        value = value.strip()
        if not _INT.match(value):
            raise _malformed(self.source.src, filename, number, line, f"{field} {value!r} is not an integer")
        return value

    def _check_float(self, filename: str, number: int, line: str, value: str, field: str) -> str:
        value = value.strip()
        try:
            float(value)
        except ValueError:
            raise _malformed(
                self.source.src, filename, number, line, f"{field} {value!r} is not a number"
            ) from None
        return value

    def _inter(self, sep: str) -> Iterator[list[str]]:
        name = self.layout.inter_file
        for number, line, (user, item, rating, stamp) in self._fields(
            name, sep, 4, "user, item, rating, timestamp"
        ):
            yield [
                self._check_int(name, number, line, user, "user id"),
                self._check_int(name, number, line, item, "item id"),
                self._check_float(name, number, line, rating, "rating"),
                self._check_int(name, number, line, stamp, "timestamp"),
            ]


class _ML100KParser(_Parser):
    layout = _ML100K
    item_header = _ML100K_ITEM_HEADER

    def __init__(self, source: _Source):
        super().__init__(source)
        self.genres = self._read_genres()

    def _read_genres(self) -> list[str]:
        if not self.source.has("u.genre"):
            return list(_ML100K_DEFAULT_GENRES)
        by_index: dict[int, str] = {}
        for number, line, (genre, index) in self._fields("u.genre", "|", 2, "name, index"):
            by_index[int(self._check_int("u.genre", number, line, index, "genre index"))] = _clean(genre)
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(
                f"{self.source.src}: u.genre does not number its genres 0..{len(by_index) - 1}; "
                f"{DOWNLOAD_HINT} again"
            )
        return [by_index[i] for i in range(len(by_index))]

    def inter_rows(self) -> Iterator[list[str]]:
        return self._inter("\t")

    def user_rows(self) -> Iterator[list[str]]:
        name = "u.user"
        for number, line, (user, age, gender, occupation, zip_code) in self._fields(
            name, "|", 5, "id, age, gender, occupation, zip code"
        ):
            yield [
                self._check_int(name, number, line, user, "user id"),
                self._check_int(name, number, line, age, "age"),
                _clean(gender),
                _clean(occupation),
                _clean(zip_code),
            ]

    def item_rows(self) -> Iterator[list[str]]:
        name = "u.item"
        n_genres = len(self.genres)
        # id | title | release date | video release date | URL | genre flags.
        # Fields are located from both ends so a "|" inside a title cannot shift them.
        tail = 3 + n_genres
        for number, line in self.source.lines(name):
            fields = line.split("|")
            if len(fields) < 2 + tail:
                raise _malformed(
                    self.source.src, name, number, line,
                    f"expected {2 + tail} '|'-separated fields (id, title, dates, URL, "
                    f"{n_genres} genre flags), got {len(fields)}",
                )
            item = self._check_int(name, number, line, fields[0], "item id")
            title, year = _split_title(_clean("|".join(fields[1:-tail])))
            if not year:
                # A few titles carry no "(YYYY)"; the release date is the next best source.
                date = _RELEASE_DATE.match(fields[-tail].strip())
                year = date.group("year") if date else ""
            flags = [f.strip() for f in fields[-n_genres:]]
            if any(f not in ("0", "1") for f in flags):
                raise _malformed(self.source.src, name, number, line, "genre flags must be 0 or 1")
            genres = [g for g, f in zip(self.genres, flags) if f == "1"]
            yield [item, title, year, _genre_tokens(genres)]


class _ML1MParser(_Parser):
    layout = _ML1M
    item_header = _ML1M_ITEM_HEADER

    def inter_rows(self) -> Iterator[list[str]]:
        return self._inter("::")

    def user_rows(self) -> Iterator[list[str]]:
        name = "users.dat"
        for number, line, (user, gender, age, occupation, zip_code) in self._fields(
            name, "::", 5, "id, gender, age, occupation, zip code"
        ):
            # Age and occupation stay the numeric codes of the ml-1m README, as tokens.
            yield [
                self._check_int(name, number, line, user, "user id"),
                self._check_int(name, number, line, age, "age"),
                _clean(gender),
                self._check_int(name, number, line, occupation, "occupation"),
                _clean(zip_code),
            ]

    def item_rows(self) -> Iterator[list[str]]:
        name = "movies.dat"
        for number, line in self.source.lines(name):
            # Split from both ends so that a "::" inside a title cannot shift fields.
            head = line.split("::", 1)
            rest = head[1].rsplit("::", 1) if len(head) == 2 else []
            if len(rest) != 2:
                raise _malformed(
                    self.source.src, name, number, line,
                    "expected 3 '::'-separated fields (id, title, genres)",
                )
            item = self._check_int(name, number, line, head[0], "item id")
            title, year = _split_title(_clean(rest[0]))
            yield [item, title, year, _genre_tokens(rest[1].split("|"))]


def _detect(source: _Source) -> _Parser:
    """Pick the parser from the rating file present; ensure its companions exist."""
    found = [layout for layout in (_ML100K, _ML1M) if source.has(layout.inter_file)]
    if not found:
        raise ValueError(
            f"{source.src} is not a MovieLens ml-100k or ml-1m archive: expected u.data or "
            f"ratings.dat; {DOWNLOAD_HINT}"
        )
    if len(found) > 1:
        raise ValueError(
            f"{source.src} holds both ml-100k (u.data) and ml-1m (ratings.dat) files: "
            f"pass the ml-100k or ml-1m archive or folder itself, not a folder holding both"
        )
    layout = found[0]
    missing = [f for f in (layout.user_file, layout.item_file) if not source.has(f)]
    if missing:
        raise ValueError(
            f"{source.src} looks like {layout.default_name} ({layout.inter_file} found) but lacks "
            f"{' and '.join(missing)}: the archive is incomplete; {DOWNLOAD_HINT} again"
        )
    return _ML100KParser(source) if layout is _ML100K else _ML1MParser(source)


def _check_name(name: str) -> None:
    # The name becomes a folder and a file prefix; a separator would escape data_path.
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.sep in name:
        raise ValueError(
            f"dataset name {name!r} is not a plain folder name: pass a name such as ml-1m"
        )


def _write_table(path: pathlib.Path, header: tuple[str, ...], rows: Iterable[list[str]]) -> int:
    """Write one atomic file (header + rows) to ``path``; return the row count."""
    count = 0
    # newline="" lets csv own the line ending; it quotes only fields containing a
    # double quote (tabs/newlines were already cleaned), which pandas reads back.
    with open(path, "x", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
        handle.flush()
        # The data must be on disk before the rename publishes it, or a crash could
        # leave a complete-looking name pointing at a truncated file.
        os.fsync(handle.fileno())
    return count


def _convert(
    src: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    name: str | None = None,
    overwrite: bool = False,
) -> tuple[pathlib.Path, dict[str, int]]:
    """Do the conversion; return the dataset folder and rows written per suffix."""
    src_path = pathlib.Path(src).expanduser()
    with _Source(src_path) as source:
        parser = _detect(source)
        name = parser.layout.default_name if name is None else name
        _check_name(name)
        out_dir = pathlib.Path(data_path).expanduser() / name
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"{out_dir} exists and is not a folder: pass another --data_path or --name")
        if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
            raise ValueError(
                f"{out_dir} already exists and is not empty: pass overwrite=True (CLI: --overwrite) "
                f"to replace its {name}.inter/.user/.item, or choose another --name"
            )
        created = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            # Leftovers of a killed earlier run; nobody else writes these names.
            for stale in out_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)

        tables: list[tuple[str, tuple[str, ...], Callable[[], Iterable[list[str]]]]] = [
            ("inter", _INTER_HEADER, parser.inter_rows),
            ("user", _USER_HEADER, parser.user_rows),
            ("item", parser.item_header, parser.item_rows),
        ]
        temps: dict[str, pathlib.Path] = {}
        counts: dict[str, int] = {}
        try:
            # Every file is finished before any is renamed, so bad input found in
            # the last file still leaves the previous output untouched.
            for suffix, header, rows in tables:
                temp = out_dir / f".{name}.{suffix}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
                temps[suffix] = temp
                counts[suffix] = _write_table(temp, header, rows())
            # .inter last: whoever takes <name>.inter as "dataset present" (quick_start's
            # check, the downloader) then never finds it without its .user and .item.
            for suffix in ("user", "item", "inter"):
                os.replace(temps[suffix], out_dir / f"{name}.{suffix}")
        except BaseException:
            for temp in temps.values():
                temp.unlink(missing_ok=True)
            if created:
                try:
                    out_dir.rmdir()
                except OSError:
                    pass  # someone else put a file there meanwhile; leave it
            raise
    return out_dir, counts


def convert_movielens(
    src: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    name: str | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Convert an official MovieLens ml-100k or ml-1m release to RecBole atomic files.

    The release is recognised by its rating file (``u.data`` for ml-100k,
    ``ratings.dat`` for ml-1m) at the top of ``src`` or one folder down, which
    covers the official zip, the extracted ``ml-1m/`` folder and its parent.

    Each output file is written to a temporary file in the output folder and
    moved into place with :func:`os.replace` only once all three are complete,
    so an interrupted run never leaves a truncated ``<name>.inter`` behind, and
    bad input leaves no output at all.

    Args:
        src: ``ml-100k.zip`` / ``ml-1m.zip`` as downloaded from GroupLens, or
            the folder it was extracted to.
        data_path: Folder that holds RecBole datasets (RecBole's ``data_path``);
            created if missing.
        name: Dataset name, i.e. the output folder and file prefix. Defaults to
            ``ml-100k`` or ``ml-1m``. RecBole 1.2.1 ignores ``data_path`` for a
            dataset named exactly ``ml-100k``, so pick another name to make it
            load a converted ml-100k.
        overwrite: Replace ``<name>.inter/.user/.item`` in an existing,
            non-empty output folder instead of refusing. Other files there are
            left alone.

    Returns:
        The dataset folder ``<data_path>/<name>``.

    Raises:
        ValueError: ``src`` is missing, is neither release, is incomplete or has
            a malformed line; ``name`` is not a plain folder name; or the
            output folder is not empty and ``overwrite`` is false. The message
            is one line naming the problem and the fix.
    """
    out_dir, _ = _convert(src, data_path, name=name, overwrite=overwrite)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Run the command-line interface.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        Exit status: 0 on success, 2 on bad input, 1 on an I/O error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m recbole_hetcomp.data.movielens",
        description=(
            "Convert GroupLens' ml-100k.zip or ml-1m.zip (or the extracted folder) into "
            "RecBole atomic files <data_path>/<name>/<name>.inter/.user/.item."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="ml-100k.zip, ml-1m.zip or the folder extracted from it")
    parser.add_argument(
        "--data_path", default="dataset",
        help="folder holding RecBole datasets, created if missing (default: dataset)",
    )
    parser.add_argument("--name", default=None, help="dataset name (default: ml-100k or ml-1m)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the files of an existing, non-empty output folder",
    )
    args = parser.parse_args(argv)

    try:
        out_dir, counts = _convert(args.src, args.data_path, name=args.name, overwrite=args.overwrite)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Permissions, full disk and the like: not the input's fault, but a
        # traceback would still hide the one line that matters.
        print(f"error: {exc}", file=sys.stderr)
        return 1

    name = out_dir.name
    print(f"wrote {name} to {out_dir}:")
    for suffix, count in counts.items():
        print(f"  {out_dir / f'{name}.{suffix}'}  {count} rows")
    print("use it with:")
    print(
        f"  python run_recbole_hetcomp.py --dataset={shlex.quote(name)} "
        f"--data_path={shlex.quote(str(args.data_path))}"
    )
    if name == "ml-100k":
        print(
            "note: RecBole 1.2.1 ignores --data_path for a dataset named ml-100k and loads its "
            "bundled copy; convert again with --name=ml-100k-gl (for example) to use these files"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
