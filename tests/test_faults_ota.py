"""OTA faults: a full disk during a download, a forged offer from the future, labels that
cannot be topic levels, a zip bomb. Real Mosquitto, real node processes, the real pusher and
command line, a real tmpfs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from edge_node.model import DEFAULT_MODEL
from edge_node.ota.package import PackageError, build_package, load_private_key, sign_manifest
from edge_node.ota.transfer import parse_offer
from tests.support.mqtt_broker import Subscriber
from tests.support.ota_node import OtaNode, model_status, node_config
from tests.support.ota_packages import MANIFEST, good, make_keys
from tests.support.small_fs import small_fs

pytestmark = pytest.mark.integration

REPO = DEFAULT_MODEL.parents[2]


def test_full_disk_during_an_ota_download_fails_cleanly_and_the_next_push_installs(
        ota_broker, ota_keys, ota_pusher, tmp_path):
    with small_fs(tmp_path / "models", 64) as models:
        config = node_config(tmp_path / "den", "den", ota_broker, ota_keys.public,
                             models_dir=str(models))
        node = OtaNode(tmp_path / "den", config)
        try:
            sub = Subscriber(ota_broker, "kws/den/model/status")
            model_status(sub, "den", lambda s: s["state"] == "idle", "idle")
            offer, results = ota_pusher.push(good(ota_keys, "7.0.0"), "kws/den/model", {"den"},
                                             timeout=30, chunk_size=8192)
            assert not results[0].ok
            failed = model_status(sub, "den", lambda s: s["state"] == "failed", "failed")
            assert "No space left" in failed["reason"], failed
            assert failed["offered_transfer"] == offer.transfer
            assert not list((models / "staging").glob("*.part")), "staging removed"
            assert node.versions_heard() == {MANIFEST["version"]}, "still listening"
            subprocess.run(["mount", "-o", "remount,size=4m", str(models)], check=True)
            offer, results = ota_pusher.push(good(ota_keys, "7.0.1"), "kws/den/model", {"den"},
                                             timeout=60, chunk_size=8192)
            assert results[0].ok, results
            assert node.versions_heard() == {"7.0.1"}
            assert "Traceback" not in node.proc.log()
        finally:
            node.close()


def test_a_forged_offer_from_the_far_future_cannot_block_later_pushes(
        ota_broker, ota_keys, ota_pusher, tmp_path):
    """`pushed_at` is outside the signature: neither a bad signature nor a replayed good one
    dated far ahead may make the fleet owner's next push look older."""
    node = OtaNode(tmp_path / "loft", node_config(tmp_path / "loft", "loft", ota_broker,
                                                   ota_keys.public))
    try:
        sub = Subscriber(ota_broker, "kws/loft/model/status")
        model_status(sub, "loft", lambda s: s["state"] == "idle", "idle")
        real = ota_pusher.offer_for(good(ota_keys, "8.0.0"), "kws/loft/model", 8192, True, "")
        forged = {**real.to_json(), "transfer": "f" * 16, "pushed_at": 1e15,
                  "signature": real.signature[:-8] + "AAAAAAA="}
        replayed = {**ota_pusher.offer_for(good(ota_keys, "7.9.0"), "kws/loft/model", 8192, False,
                                           "").to_json(), "transfer": "e" * 16, "pushed_at": 1e15}
        for hostile, state in ((forged, "failed"), (replayed, "idle")):
            ota_pusher.client.publish("kws/loft/model/offer", json.dumps(hostile), qos=1,
                                      retain=True).wait_for_publish(5)
            model_status(sub, "loft", lambda s, h=hostile, st=state: s["offered_transfer"]
                         == h["transfer"] and s["state"] == st,
                         f"{state}: {hostile['transfer']}")
        offer, results = ota_pusher.push(good(ota_keys, "8.0.0"), "kws/loft/model", {"loft"},
                                         timeout=60, chunk_size=8192)
        assert results[0].ok, results
        assert node.versions_heard() == {"8.0.0"}
    finally:
        node.close()


def test_labels_with_plus_or_hash_are_refused_at_sign_and_at_install(
        ota_broker, ota_keys, ota_pusher, tmp_path):
    bad = {**MANIFEST, "labels": ["go+", "stop#", *MANIFEST["labels"][2:]]}
    model = tmp_path / "bad.tflite"
    model.write_bytes(DEFAULT_MODEL.read_bytes())
    model.with_suffix(".json").write_text(json.dumps(bad))
    signed = subprocess.run([sys.executable, "-m", "provisioning.cli", "sign", str(model),
                             "--key", str(ota_keys.private), "--version", "9.0.0", "--out",
                             str(tmp_path / "bad.kwspkg")], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert signed.returncode != 0 and "cannot be MQTT topic levels" in signed.stderr
    assert "Traceback" not in signed.stderr and not (tmp_path / "bad.kwspkg").exists()

    node = OtaNode(tmp_path / "shed", node_config(tmp_path / "shed", "shed", ota_broker,
                                                   ota_keys.public))
    try:
        sub = Subscriber(ota_broker, "kws/shed/model/status")
        model_status(sub, "shed", lambda s: s["state"] == "idle", "idle")
        package = good(ota_keys, "9.0.0")
        manifest = {**package.manifest, "labels": bad["labels"]}
        offer = ota_pusher.offer_for(package, "kws/shed/model", 8192, True, "")
        hostile = {**offer.to_json(), "manifest": manifest,
                   "signature": sign_manifest(manifest, load_private_key(ota_keys.private))}
        ota_pusher.client.publish("kws/shed/model/offer", json.dumps(hostile), qos=1,
                                  retain=True).wait_for_publish(5)
        status = model_status(sub, "shed", lambda s: "topic levels" in s["error"], "refused")
        assert status["installed_version"] == MANIFEST["version"]
        assert node.versions_heard() == {MANIFEST["version"]}
    finally:
        node.close()


def zip_bomb(path, inflated: int) -> None:
    """A package whose model member inflates to `inflated` bytes of zeros (a few KB on disk)."""
    real = build_package(DEFAULT_MODEL, load_private_key(make_keys(path.parent / "k").private))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(real.manifest))
        zf.writestr("signature", real.signature)
        with zf.open("model.tflite", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(inflated >> 20):
                member.write(block)


def test_a_zip_bomb_package_is_refused_before_decompression(tmp_path):
    bomb = tmp_path / "bomb.kwspkg"
    zip_bomb(bomb, 1 << 30)
    assert bomb.stat().st_size < 4 << 20
    code = ("import resource, sys\n"
            "from provisioning.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code, "push-model", str(bomb), "--node", "x",
                           "--mqtt-host", "127.0.0.1", "--mqtt-port", "1", "--username", ""],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "would inflate to 1073741824 bytes" in done.stderr, \
        done.stderr
    peak_kb = int(done.stdout.split()[-1])
    assert peak_kb < 400 * 1024, f"peak memory {peak_kb} KB: it was inflated"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_an_offer_whose_manifest_holds_a_non_finite_number_is_refused(ota_keys, ota_pusher, value):
    offer = ota_pusher.offer_for(good(ota_keys, "9.9.9"), "kws/x/model", 8192)
    data = offer.to_json()
    data["manifest"] = {**data["manifest"], "features": {
        **data["manifest"]["features"], "params": {"fmin": value}}}
    payload = json.dumps(data).encode()  # Python writes NaN / Infinity, and reads them back
    with pytest.raises(PackageError, match="manifest.features.params.fmin: .* not a finite"):
        parse_offer(payload, "kws/x/model", 1 << 26, 1 << 20)
