"""Datasets on demand: fetch a missing MovieLens release from GroupLens and convert it.

RecBole 1.2.1's own downloader fails (its mirror answers "Access Denied", RecBole issue
#2218), so ``--dataset=ml-1m`` used to stop at once on a fresh machine. When the
dataset's ``.inter`` file is missing and the dataset is listed in ``dataset_downloads``
(``properties/overall.yaml``), :func:`fetch_dataset`

1. uses ``<archive>`` already placed in ``<data_path>/<dataset>/`` or ``<data_path>/``
   when its checksum matches (the offline route), otherwise downloads it with a progress
   bar into a temporary file next to its final place and renames it into place only once
   every byte has arrived and the MD5 checksum matches;
2. converts it with :func:`recbole_hetcomp.data.movielens.convert_movielens` into
   ``<data_path>/<dataset>/<dataset>.inter/.user/.item`` (atomic; ``.inter`` last).

The next run finds ``<dataset>.inter`` and touches no network. ``ml-100k`` needs none of
this: RecBole always loads its bundled copy for that name, whatever ``data_path`` says.
Only MovieLens releases the converter reads can be listed (ml-100k and ml-1m layouts).

Library use::

    from recbole_hetcomp.data.download import fetch_dataset
    fetch_dataset(config)  # True: the dataset was listed and is now converted

``download: False`` switches all of this off.
"""

import hashlib
import http.client
import os
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

from recbole_hetcomp.data.movielens import convert_movielens
from recbole_hetcomp.errors import ConfigError

__all__ = ["download_source", "fetch_dataset"]

_CHUNK = 1 << 16
# Seconds without a byte before the download is given up (per connect and per read).
_TIMEOUT_S = 60
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class _DownloadFailed(Exception):
    """The archive could not be fetched or was damaged; the message says why, briefly."""


def download_source(config):
    """The ``{url, md5}`` to fetch ``config['dataset']`` from, or None when there is none.

    Args:
        config (Config): the run's config (``download``, ``dataset_downloads``, ``dataset``).

    Returns:
        dict or None: ``{"url": str, "md5": str}``; None when downloading is switched off,
        the dataset is not listed, or the run reads benchmark split files (no archive holds
        those).

    Raises:
        ConfigError: the dataset's entry is not ``{url: URL, md5: 32 hex digits}``.
    """
    if not config["download"] or config["benchmark_filename"]:
        return None
    name = config["dataset"]
    sources = config["dataset_downloads"] or {}
    if not isinstance(sources, dict) or name not in sources:
        return None
    entry = sources[name]
    url = entry.get("url") if isinstance(entry, dict) else None
    md5 = entry.get("md5") if isinstance(entry, dict) else None
    if not isinstance(url, str) or not url or not isinstance(md5, str) or not _MD5.match(md5):
        raise ConfigError(
            f"dataset_downloads entry for '{name}' must be {{url: ARCHIVE_URL, md5: \"32 hex digits\"}} "
            f"(quote the md5 in YAML), got {entry!r}"
        )
    return {"url": url, "md5": md5.lower()}


def fetch_dataset(config, writer=True, wait=None):
    """Download and convert the run's dataset if it is listed in ``dataset_downloads``.

    Call it when the dataset's ``.inter`` file is missing. In a distributed run every rank
    calls it: only the writing rank fetches, the others wait for it in ``wait``.

    Args:
        config (Config): the run's config; ``data_path`` already ends with the dataset name.
        writer (bool): whether this process fetches (rank 0) or only waits.
        wait (callable, optional): a barrier all ranks pass once the writer is done.

    Returns:
        bool: True when the dataset was listed (and the writer has converted it), False when
        there is nothing to fetch (the caller reports the missing files).

    Raises:
        ConfigError: in the writing rank, one line naming the URL, what failed and the
            manual route (place the archive or the converted files under ``data_path``).
    """
    source = download_source(config)
    if source is None:
        return False
    error = None
    if writer:
        try:
            _download_and_convert(config, source["url"], source["md5"])
        except ConfigError as err:
            error = err  # raised after the barrier, so the other ranks are not left waiting
    if wait is not None:
        wait()
    if error is not None:
        raise error
    return True


def _say(message):
    # Runs before RecBole's logger is set up (it needs the checked config); stderr is seen.
    print(message, file=sys.stderr, flush=True)


def _md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_name(url, dataset):
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return name or f"{dataset}.zip"


def _download_and_convert(config, url, md5):
    name = config["dataset"]
    out_dir = os.path.normpath(config["data_path"])  # RecBole joined it with the dataset name
    root = os.path.dirname(out_dir) or "."
    archive = os.path.join(out_dir, _archive_name(url, name))
    manual = (
        f"download {url} yourself and place it at {archive} (or the converted {name}.inter/.user/.item "
        f"in {out_dir}), or point --data_path at a folder that holds {name}/"
    )

    placed = _placed_archive([archive, os.path.join(root, os.path.basename(archive))], md5)
    created = _missing_folders(out_dir)
    try:
        if placed is None:
            try:
                os.makedirs(out_dir, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"cannot create {out_dir} for dataset '{name}' ({err.strerror or err}): {manual}") from None
            try:
                _download(url, archive, md5, show_bar=bool(config["show_progress"]) and sys.stderr.isatty())
            except _DownloadFailed as err:
                raise ConfigError(f"dataset '{name}' is missing and downloading {url} failed ({err}): {manual}") from None
            except OSError as err:
                raise ConfigError(
                    f"cannot write {archive} ({err.strerror or err}): free disk space or fix its permissions, or {manual}"
                ) from None
            placed = archive
        try:
            convert_movielens(placed, root, name=name, overwrite=True)
        except (ValueError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"dataset '{name}': converting {placed} failed ({reason}); {manual}") from None
    except ConfigError:
        for folder in created:  # innermost first; rmdir keeps any folder that holds a file
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise
    _say(f"dataset '{name}' converted from {placed} into {out_dir}")


def _missing_folders(folder):
    """``folder`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _placed_archive(candidates, md5):
    """The first candidate archive whose checksum matches; a mismatch is reported, not used."""
    for path in dict.fromkeys(candidates):
        if os.path.isfile(path):
            if _md5_of(path) == md5:
                _say(f"using {path} (checksum matches)")
                return path
            _say(f"ignoring {path}: its MD5 is not the published {md5} (damaged or incomplete)")
    return None


def _download(url, dest, md5, show_bar):
    """Fetch ``url`` to ``dest``: a temporary file in its folder, renamed only when complete.

    Raises:
        _DownloadFailed: no connection, an HTTP error, a short body or a checksum mismatch.
        OSError: ``dest``'s folder cannot be written.
    """
    folder, base = os.path.split(dest)
    # Unique, hidden, and never the final name: nothing looks for it, a rerun never reuses it.
    part = os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.part")
    request = urllib.request.Request(url, headers={"User-Agent": "recbole-hetcomp"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise _DownloadFailed(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _DownloadFailed(_one_line(err.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise _DownloadFailed(_one_line(err)) from None
    try:
        with response, open(part, "xb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            digest = hashlib.md5()
            received = 0
            progress = _Progress(url, total, show_bar)
            try:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as err:
                        raise _DownloadFailed(f"connection lost after {received} bytes: {_one_line(err)}") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
            finally:
                progress.close()
            # http.client returns a short body without complaint when the server hangs up.
            if total is not None and received != total:
                raise _DownloadFailed(f"connection closed after {received} of {total} bytes")
            if digest.hexdigest() != md5:
                raise _DownloadFailed(
                    f"MD5 checksum mismatch: got {digest.hexdigest()}, expected {md5}; the download is damaged"
                )
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename publishes it
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)
    _say(f"downloaded {url} ({received} bytes, MD5 checksum matches)")


def _one_line(err):
    text = str(err) or type(err).__name__
    return " ".join(text.split())


def _size(n_bytes):
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.1f} kB"


class _Progress:
    """A tqdm bar on a terminal; otherwise a plain line at the start and every quarter."""

    def __init__(self, url, total, show_bar):
        self.total, self.done, self.next_quarter = total, 0, 1
        self.bar = None
        if show_bar:
            from tqdm import tqdm  # a RecBole dependency

            self.bar = tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=os.path.basename(urllib.parse.urlparse(url).path) or url, file=sys.stderr,
            )
        else:
            size = f" ({_size(total)})" if total else ""
            _say(f"downloading {url}{size}")

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.total:
            while self.next_quarter < 4 and self.done >= self.total * self.next_quarter / 4:
                _say(f"  {25 * self.next_quarter}% ({_size(self.done)} of {_size(self.total)})")
                self.next_quarter += 1

    def close(self):
        if self.bar is not None:
            self.bar.close()
