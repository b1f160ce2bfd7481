"""Datasets on demand: ``--dataset=ml-1m`` with no local files downloads and converts it.

No test touches the internet: each builds a tiny ml-1m archive in GroupLens' format and
serves it from an HTTP server on 127.0.0.1 that the test starts and stops, and points
``dataset_downloads`` at it (the same key a user would point at a mirror).
"""

import hashlib
import http.server
import socket
import threading
import zipfile

import pytest

from recbole_hetcomp.config import Config
from recbole_hetcomp.data.download import fetch_dataset
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.checks import check_dataset_files

N_USERS, N_ITEMS, PER_USER = 40, 80, 12


def ml1m_archive(path):
    """Write a small ml-1m.zip laid out as GroupLens ships it (ml-1m/*.dat, Latin-1, '::')."""
    ratings, users = [], []
    for u in range(1, N_USERS + 1):
        users.append(f"{u}::{'MF'[u % 2]}::25::{u % 21}::{10000 + u}")
        # Users of one cluster share most items, so BPR has something to learn.
        items = [(u % 4) * 20 + k + 1 for k in range(PER_USER - 2)] + [(u * 7) % N_ITEMS + 1, (u * 13) % N_ITEMS + 1]
        for k, item in enumerate(dict.fromkeys(items)):
            ratings.append(f"{u}::{item}::{1 + (u + k) % 5}::{978300000 + 60 * k}")
    movies = [f"{i}::Movie {i}, The ({1950 + i})::{'Drama|Comedy' if i % 2 else 'Film-Noir'}" for i in range(1, N_ITEMS + 1)]
    movies[0] = "1::Misérables, Les (1995)::Drama|Musical"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-1m/", b"")
        for name, lines in (("ratings.dat", ratings), ("users.dat", users), ("movies.dat", movies)):
            archive.writestr(f"ml-1m/{name}", ("\n".join(lines) + "\n").encode("latin-1"))
    return path


def md5(data):
    return hashlib.md5(data).hexdigest()


class ArchiveServer:
    """Serves one archive at /ml-1m.zip on a free loopback port; counts requests.

    ``cut_at``: send the full Content-Length but only this many bytes, then hang up (a
    connection dropped mid-download).
    """

    def __init__(self, body):
        self.body, self.cut_at, self.requests = body, None, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                if self.path != "/ml-1m.zip":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body[: server.cut_at])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ml-1m.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def archive_bytes(tmp_path):
    return ml1m_archive(tmp_path / "fixture-ml-1m.zip").read_bytes()


@pytest.fixture
def server(archive_bytes, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # loopback must not go through a proxy
    served = ArchiveServer(archive_bytes)
    yield served
    served.stop()


def refused_url():
    """A loopback URL where nothing listens: the connection is refused, as when offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-1m.zip"


def ml1m_config(data_path, url, checksum, **more):
    return Config(
        model="BPR", dataset="ml-1m",
        config_dict={"data_path": str(data_path), "dataset_downloads": {"ml-1m": {"url": url, "md5": checksum}}, **more},
    )


def listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------
# The command a user types
# ---------------------------------------------------------------------------


def test_cli_downloads_converts_trains_then_reuses_offline(run_script, server, archive_bytes, tmp_path, capsys):
    data = tmp_path / "data"
    mirror = tmp_path / "mirror.yaml"
    mirror.write_text(f"dataset_downloads:\n  ml-1m: {{url: \"{server.url}\", md5: \"{md5(archive_bytes)}\"}}\n")
    args = ("--model=BPR", "--dataset=ml-1m", f"--data_path={data}", f"--config_files={mirror}", "--epochs=1")

    code, result = run_script(*args)

    assert code == 0 and result["dataset"] == "ml-1m" and "ndcg@20" in result["test_result"]
    assert server.requests == 1
    # Converted RecBole atomic files plus the verified archive; no temporary file left.
    assert listing(data / "ml-1m") == ["ml-1m.inter", "ml-1m.item", "ml-1m.user", "ml-1m.zip"]
    assert (data / "ml-1m" / "ml-1m.zip").read_bytes() == archive_bytes
    inter = (data / "ml-1m" / "ml-1m.inter").read_text(encoding="utf-8").splitlines()
    assert inter[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    with zipfile.ZipFile(data / "ml-1m" / "ml-1m.zip") as archive:
        assert len(inter) - 1 == len(archive.read("ml-1m/ratings.dat").splitlines())
    # No terminal under pytest: plain progress lines instead of a bar.
    err = capsys.readouterr().err
    assert f"downloading {server.url}" in err and "100%" not in err and "75% (" in err
    assert "MD5 checksum matches" in err

    server.stop()  # a second run that tried the network would now fail
    code, again = run_script(*args)
    assert code == 0 and again["test_result"] == result["test_result"]
    assert server.requests == 1


def test_cli_offline_is_one_line_naming_url_and_manual_route(run_cli, tmp_path):
    data, url = tmp_path / "data", refused_url()
    mirror = tmp_path / "mirror.yaml"
    mirror.write_text(f"dataset_downloads:\n  ml-1m: {{url: \"{url}\", md5: \"{'0' * 32}\"}}\n")

    proc = run_cli("--model=HetComp", "--dataset=ml-1m", f"--data_path={data}", f"--config_files={mirror}")

    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert f"downloading {url} failed" in line and "refused" in line.lower()
    assert f"place it at {data / 'ml-1m' / 'ml-1m.zip'}" in line and "--data_path" in line
    assert not data.exists()  # the folders it made for the download are gone again


# ---------------------------------------------------------------------------
# Damaged, partial and manual downloads
# ---------------------------------------------------------------------------


def test_checksum_mismatch_leaves_nothing_that_looks_complete(server, tmp_path):
    data = tmp_path / "data"
    config = ml1m_config(data, server.url, "f" * 32)

    with pytest.raises(ConfigError) as err:
        check_dataset_files(config)

    message = one_line(err)
    assert "MD5 checksum mismatch" in message and "expected ffff" in message
    assert server.url in message and "place it at" in message
    assert server.requests == 1
    assert listing(data / "ml-1m") == []


def test_dropped_connection_is_an_error_and_its_bytes_are_never_reused(server, archive_bytes, tmp_path):
    data, folder = tmp_path / "data", tmp_path / "data" / "ml-1m"
    config = ml1m_config(data, server.url, md5(archive_bytes))
    server.cut_at = len(archive_bytes) // 2

    with pytest.raises(ConfigError) as err:
        check_dataset_files(config)
    assert f"connection closed after {len(archive_bytes) // 2} of {len(archive_bytes)} bytes" in one_line(err)
    assert listing(folder) == []

    # What a killed download could leave: a temporary file and a truncated archive.
    folder.mkdir(parents=True)
    (folder / ".ml-1m.zip.999-dead.part").write_bytes(archive_bytes[: len(archive_bytes) // 2])
    (folder / "ml-1m.zip").write_bytes(archive_bytes[:100])
    server.cut_at = None

    check_dataset_files(config)

    assert server.requests == 2  # downloaded again, neither leftover was taken
    assert (folder / "ml-1m.zip").read_bytes() == archive_bytes
    assert {"ml-1m.inter", "ml-1m.item", "ml-1m.user"} <= set(listing(folder))


def test_archive_placed_by_hand_is_used_without_network(archive_bytes, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ml-1m.zip").write_bytes(archive_bytes)  # the manual route: next to the dataset folders
    config = ml1m_config(data, refused_url(), md5(archive_bytes))

    check_dataset_files(config)

    assert listing(data / "ml-1m") == ["ml-1m.inter", "ml-1m.item", "ml-1m.user"]


def test_converted_files_load_with_recbole(server, archive_bytes, tmp_path):
    from recbole.data import create_dataset

    columns = {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "movie_title", "genre"]}
    config = ml1m_config(tmp_path / "data", server.url, md5(archive_bytes), load_col=columns)
    check_dataset_files(config)

    dataset = create_dataset(config)

    assert dataset.user_num == N_USERS + 1  # + RecBole's padding id
    assert "Misérables," in dataset.field2id_token["movie_title"]
    assert "Film-Noir" in dataset.field2id_token["genre"]


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def test_default_source_is_grouplens_ml1m_and_ml100k_is_bundled():
    config = Config(model="BPR", dataset="ml-100k")
    assert config["download"] is True
    assert config["dataset_downloads"] == {
        "ml-1m": {
            "url": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
            "md5": "c4d9eecfca2ab87c1945afe126590906",
        }
    }
    check_dataset_files(config)  # RecBole's bundled copy: nothing to fetch


def test_download_false_keeps_the_plain_missing_dataset_error(server, archive_bytes, tmp_path):
    config = ml1m_config(tmp_path / "data", server.url, md5(archive_bytes), download=False)
    with pytest.raises(ConfigError, match="dataset 'ml-1m' not found"):
        check_dataset_files(config)
    assert server.requests == 0


def test_malformed_entry_is_one_line(tmp_path):
    config = ml1m_config(tmp_path / "data", "http://127.0.0.1:9/ml-1m.zip", "not-a-checksum")
    with pytest.raises(ConfigError) as err:
        check_dataset_files(config)
    assert "dataset_downloads entry for 'ml-1m'" in one_line(err) and "32 hex digits" in one_line(err)


def test_only_the_writing_rank_fetches_and_every_rank_passes_the_barrier(server, archive_bytes, tmp_path):
    config = ml1m_config(tmp_path / "data", server.url, md5(archive_bytes))
    waited = []

    # A rank > 0: no request, waits for rank 0, then reads what rank 0 wrote.
    assert fetch_dataset(config, writer=False, wait=lambda: waited.append("rank 1")) is True
    assert server.requests == 0 and waited == ["rank 1"]

    # Rank 0 failing still reaches the barrier before raising, so no rank hangs.
    failing = ml1m_config(tmp_path / "data", refused_url(), md5(archive_bytes))
    with pytest.raises(ConfigError, match="failed"):
        fetch_dataset(failing, writer=True, wait=lambda: waited.append("rank 0"))
    assert waited == ["rank 1", "rank 0"]
