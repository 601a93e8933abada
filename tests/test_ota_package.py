"""Model packages and the fleet owner's tools: keygen, sign, verify (no broker needed)."""

from __future__ import annotations

import json
import stat
from dataclasses import replace

import pytest

from edge_node.model import DEFAULT_MODEL
from edge_node.ota.package import Package, PackageError, load_public_key, verify_manifest
from edge_node.ota.transfer import parse_offer
from provisioning.cli import main
from tests.support.ota_packages import MANIFEST, bad_packages, make_keys

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


def test_keygen_sign_and_verify_round_trip(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    key = tmp_path / "k" / "fleet.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    out = tmp_path / "model.kwspkg"
    assert main(["sign", str(DEFAULT_MODEL), "--key", str(key), "--version", "2.1.0",
                 "--out", str(out)]) == 0
    package = Package.read(out)
    assert package.model == DEFAULT_MODEL.read_bytes()
    assert package.manifest["size"] == DEFAULT_MODEL.stat().st_size
    assert package.manifest["labels"] == MANIFEST["labels"]
    manifest = verify_manifest(package.manifest, package.signature,
                               load_public_key(tmp_path / "k" / "fleet.pub"))
    assert manifest.version == "2.1.0"


def test_every_bad_signature_is_refused(keys, tmp_path):
    public = load_public_key(keys.public)
    bad = bad_packages(keys, tmp_path)
    for name in ("unsigned", "wrong key", "tampered manifest"):
        package, reason = bad[name]
        with pytest.raises(PackageError, match=reason):
            verify_manifest(package.manifest, package.signature, public)
    package = bad["wrong key"][0]
    with pytest.raises(PackageError, match="base64"):
        verify_manifest(package.manifest, "not base64!", public)


def test_a_package_whose_model_does_not_match_its_manifest_is_unreadable(keys, tmp_path):
    package, _ = bad_packages(keys, tmp_path)["wrong key"]
    out = replace(package, model=package.model[:-1] + b"\0").write(tmp_path / "x.kwspkg")
    with pytest.raises(PackageError, match="sha256"):
        Package.read(out)
    (tmp_path / "junk").write_bytes(b"PK not a zip")
    with pytest.raises(PackageError, match="not a readable model package"):
        Package.read(tmp_path / "junk")


@pytest.mark.parametrize("change, problem", [
    ({"transfer": "../etc"}, "transfer"),
    ({"size": 10}, "differs"),
    ({"chunk_size": 0}, "chunk size"),
    ({"chunks": 99}, "cannot hold"),
    ({"auto_install": "yes"}, "auto_install"),
    ({"manifest": {"name": "x"}}, "bad manifest"),
    ({"manifest": "nope"}, "JSON object"),
    ({"chunk_size": 1 << 17, "chunks": 1}, "chunk size"),
])
def test_offers_are_checked_before_anything_is_downloaded(change, problem):
    size = DEFAULT_MODEL.stat().st_size
    offer = {"transfer": "0123456789abcdef", "size": size, "chunk_size": 4096,
             "chunks": -(-size // 4096), "manifest": {**MANIFEST, "size": size},
             "signature": "", **change}
    with pytest.raises(PackageError, match=problem):
        parse_offer(json.dumps(offer).encode(), "kws/x/model", 1 << 20, 1 << 16)


def test_an_oversize_claim_is_refused_by_the_limit():
    size = 200 << 20
    offer = {"transfer": "0123456789abcdef", "size": size, "chunk_size": 1 << 16,
             "chunks": size >> 16, "manifest": {**MANIFEST, "size": size}, "signature": ""}
    with pytest.raises(PackageError, match="exceeds this node's limit"):
        parse_offer(json.dumps(offer).encode(), "kws/x/model", 64 << 20, 1 << 16)
