"""DVC on object storage: `dvc push` to an S3 remote, then a fresh `git clone` + `dvc pull` restores data
and models so that `dvc repro` has nothing to do.

The S3 endpoint is moto's server on 127.0.0.1, started by the test. The remote's URL is committed;
the endpoint and the keys are not: the pushing repo keeps them in `.dvc/config.local` (`dvc remote
modify --local`), the clone gets them from the environment only (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), the way CI does.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support import SEQUENCE_TARGETS, TOOLS, clone_pipeline, run, sandbox_env, stage_outcomes

sys.path.insert(0, str(TOOLS))

from mlflow_server import free_port  # noqa: E402

BUCKET = "seqlab-dvc"
REMOTE_URL = f"s3://{BUCKET}/store"
# moto accepts any key pair; these stand for real secrets and must never reach a committed file.
ACCESS_KEY, SECRET_KEY = "AKIASEQLABTEST", "seqlab-test-secret"
OUTPUTS = ("data/params.ok", "data/kth/train.npz", "data/binary_add/train.npz", "models/kth.pt", "models/binary_add.pt")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port with an empty bucket; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"moto server exited:\n{log.read_text()[-2000:]}"
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(f"{url}/moto-api/reset", data=b"", timeout=2):
                    break
            assert time.monotonic() < deadline, f"moto server not ready:\n{log.read_text()[-2000:]}"
            time.sleep(0.3)
        _s3(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


@pytest.fixture(scope="module")
def pushed(pipeline_template, s3_endpoint, tmp_path_factory):
    """A reproduced repo with the S3 remote committed (URL only) and its cache pushed."""
    base = tmp_path_factory.mktemp("dvc-s3")
    env = sandbox_env(base)
    origin = clone_pipeline(pipeline_template, base / "origin")
    run(["dvc", "remote", "add", "-d", "storage", REMOTE_URL], origin, env)
    for key, value in (("endpointurl", s3_endpoint), ("access_key_id", ACCESS_KEY),
                       ("secret_access_key", SECRET_KEY)):
        run(["dvc", "remote", "modify", "--local", "storage", key, value], origin, env)
    run(["git", "add", "-A"], origin, env)
    run(["git", "commit", "-qm", "DVC remote on S3"], origin, env)
    run(["dvc", "push"], origin, env)
    return origin, base, env


@pytest.fixture(scope="module")
def pulled(pushed, s3_endpoint):
    """A fresh `git clone` of the pushed repo that pulled with credentials from the environment only."""
    origin, base, env = pushed
    clone = base / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], base, env)
    assert not any((clone / p).exists() for p in OUTPUTS)  # a checkout holds no DVC outputs
    env = {**env, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    # The template reproduced only the sequence stages; a plain `dvc pull` would fail on the OCR outs.
    run(["dvc", "pull", "--with-deps", *SEQUENCE_TARGETS], clone, env)
    return clone, env


def test_push_uploads_the_cache_to_the_bucket(pushed, s3_endpoint):
    origin, _, env = pushed
    pages = _s3(s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys and all(k.startswith("store/files/md5/") for k in keys), keys[:5]
    # every object the workspace's outputs need is there: DVC compares the cache with the remote
    status = run(["dvc", "status", "--cloud", "--with-deps", *SEQUENCE_TARGETS], origin, env)
    assert "Cache and remote 'storage' are in sync" in status.stdout, status.stdout


def test_credentials_stay_out_of_git(pushed, pulled):
    origin, _, env = pushed
    clone, _ = pulled
    committed = run(["git", "show", "HEAD:.dvc/config"], origin, env).stdout
    assert REMOTE_URL in committed
    for secret in (ACCESS_KEY, SECRET_KEY, "127.0.0.1"):
        assert secret not in committed
        assert secret not in (clone / ".dvc" / "config").read_text()
    assert SECRET_KEY in (origin / ".dvc" / "config.local").read_text()  # where --local put them
    assert ".dvc/config.local" not in run(["git", "ls-files"], origin, env).stdout.splitlines()
    assert not (clone / ".dvc" / "config.local").exists()


def test_fresh_clone_pulls_everything_and_repro_does_no_work(pushed, pulled):
    from seqlab.core.checkpoint import file_digest

    origin, *_ = pushed
    clone, env = pulled
    for rel in OUTPUTS:
        assert file_digest(clone / rel) == file_digest(origin / rel), rel
    status = run(["dvc", "status", "--with-deps", *SEQUENCE_TARGETS], clone, env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    repro = run(["dvc", "repro", *SEQUENCE_TARGETS], clone, env)
    stages = stage_outcomes(repro.stdout)
    assert not stages["ran"] and not stages["cached"], repro.stdout
    assert {"train@kth", "train@binary_add", "evaluate@kth", "evaluate@binary_add"} <= stages["unchanged"]
