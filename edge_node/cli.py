"""`edge-node` command line: run the node, classify clips, detect in recordings, list devices,
record clips, enrol a voice. Results go to stdout as JSON Lines; logs go to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import chain
from pathlib import Path

from edge_node import __version__
from edge_node.audio import AudioSourceError, open_source
from edge_node.audio.wav import WavSource, read_wav_mono16k
from edge_node.config import DEFAULT_EXAMPLE, ConfigError, load_config
from edge_node.detector import Detection, DetectorConfigError, DetectorSettings
from edge_node.enroll import EnrollSettings
from edge_node.isolation import DEFAULT_ISOLATION_MODEL, load_isolation
from edge_node.logs import setup_logging
from edge_node.model import DEFAULT_MODEL, Model, ModelError
from edge_node.runtime import single_blas_thread
from edge_node.setting import meta, number

log = logging.getLogger("edge_node")


def emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def wav_files(paths: Sequence[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav")
        else:
            yield path


def resolve_source(spec: str) -> str:
    """`example` is the bundled demo recording."""
    return f"wav:{DEFAULT_EXAMPLE}" if spec == "example" else spec


def cmd_classify(args: argparse.Namespace) -> int:
    model = Model(args.model)
    failures = 0
    for path in wav_files(args.paths):
        try:
            audio = read_wav_mono16k(path)
        except AudioSourceError as exc:
            log.error("%s", exc)
            failures += 1
            continue
        probs = model.predict_waveform(audio)
        best = int(probs.argmax())
        record = {"file": str(path), "label": model.labels[best],
                  "confidence": round(float(probs[best]), 4),
                  "scores": {lab: round(float(p), 4) for lab, p in zip(model.labels, probs,
                                                                        strict=True)}}
        if args.json:
            emit(record)
        else:
            print(f"{path}: {record['label']} ({record['confidence']:.2f})")
    return 1 if failures else 0


def detector_settings(args: argparse.Namespace) -> DetectorSettings:
    overrides = {k: getattr(args, k) for k in ("threshold", "hop_ms", "refractory_s", "mode",
                                                "isolation_threshold")
                 if getattr(args, k, None) is not None}
    try:
        return DetectorSettings(**overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def cmd_detect(args: argparse.Namespace) -> int:
    from edge_node.detector import Detector

    model = Model(args.model)
    settings = detector_settings(args)
    try:
        sweep = [number(t) for t in args.sweep.split(",")] if args.sweep else []
        for threshold in sweep:
            meta(DetectorSettings, "threshold").check("--sweep threshold", threshold)
    except ValueError as exc:
        raise ConfigError(f"--sweep: {exc}") from None
    if sweep and settings.mode != "stream":
        raise SystemExit("--sweep needs the stream mode")
    single_blas_thread()
    isolation = None if args.no_isolation else load_isolation(args.isolation_model,
                                                               model.runtime)
    detector = Detector(model, settings, keep_posteriors=bool(sweep), isolation=isolation)

    def report(detection: Detection, threshold: float | None = None) -> None:
        if args.json:
            emit({**detection.to_json(), **({"threshold": threshold} if sweep else {})})
        else:
            print(f"{'' if threshold is None else f'{threshold:.2f}  '}{detection.time_s:8.2f} s"
                  f"  {detection.label:6s} {detection.confidence:.2f}")

    with WavSource(args.file, block_samples=detector.hop_samples) as source:
        for block in chain(source, [None]):
            found = detector.finish() if block is None else detector.push(block)
            if not sweep:  # a sweep reports every threshold's detections after the pass
                for detection in found:
                    report(detection)
    log.info("%d windows, %d inferences (%.0f%% gated as silent), %d detections held back "
             "as talk by the isolation check", detector.windows, detector.inferences,
             100.0 * (1 - detector.inferences / max(1, detector.windows)), detector.vetoed)
    for threshold in sweep:
        for detection in detector.replay(detector.posteriors or [],
                                         replace(settings, threshold=threshold),
                                         detector.isolation_scores):
            report(detection, threshold)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge_node.node import build_node

    overrides = {"source": resolve_source(args.source) if args.source else None,
                 "model": args.model, "node_id": args.node_id, "log_level": args.log_level,
                 "display.backend": args.display, "ota.public_key": args.ota_public_key,
                 **mqtt_overrides(args)}
    config = load_config(args.config, overrides)
    setup_logging(config.log_level)
    node = build_node(config, lambda: load_config(args.config, overrides))
    log.info("node %s listening on %s", config.node_id, config.source)
    node.run()
    log.info("stopped after %d detections", node.agent.detections)
    return 0


def mqtt_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {f"mqtt.{key}": getattr(args, f"mqtt_{key}")
            for key in ("host", "port", "username", "password")}


def cmd_forget(args: argparse.Namespace) -> int:
    from edge_node.mqtt.wiring import forget

    overrides = {"model": args.model, "node_id": args.node_id, **mqtt_overrides(args)}
    return forget(load_config(args.config, overrides))


def add_mqtt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-id")
    parser.add_argument("--mqtt-host", help="MQTT broker (overrides mqtt.host)")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--mqtt-username")
    parser.add_argument("--mqtt-password")


def cmd_devices(args: argparse.Namespace) -> int:
    from edge_node.audio.mic import list_input_devices

    devices = list_input_devices()
    for device in devices:
        if args.json:
            emit(device)
        else:
            print(f"{device['index']:3d}  {device['name']}  ({device['max_input_channels']} ch, "
                  f"{device['default_sample_rate']:.0f} Hz)")
    if not devices:
        log.warning("no audio input devices found")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from edge_node.audio.mic import record

    config = load_config(args.config, {"source": resolve_source(args.source)})
    with open_source(config.source, config.audio) as source:
        record(source, args.seconds, args.output)
    log.info("wrote %.1f s to %s", args.seconds, args.output)
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge_node.enroll import enroll

    config = load_config(args.config, {"source": resolve_source(args.source)})
    commands = list(Model(args.model).manifest.commands)
    settings = EnrollSettings(takes=args.takes, others=args.others, window_s=args.window,
                              min_dbfs=config.detector.gate_dbfs)
    with open_source(config.source, config.audio) as source:
        written = enroll(source, args.output, commands, args.speaker, settings,
                         say=lambda text: print(text, flush=True))
    log.info("wrote %d recordings to %s: kws-train finetune --user %s", len(written),
             args.output, args.output)
    return 0 if written else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge_node.doctor import report, run_checks

    checks = run_checks(load_config(args.config, {"model": args.model}))
    print(report(checks, args.json))
    return 1 if any(c.ok is False for c in checks) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-node", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the node (prints detections as JSON Lines)")
    run.add_argument("--config", type=Path, help="node.yaml")
    run.add_argument("--source", help="mic | wav:FILE | stdin[:RATE:CH:FORMAT] | example")
    run.add_argument("--model", type=Path, help="model .tflite (manifest beside it)")
    add_mqtt_options(run)
    run.add_argument("--display", help="auto | oled | png:DIR | none (default: display.backend)")
    run.add_argument("--ota-public-key", type=Path,
                     help="fleet public key for model updates (overrides ota.public_key)")
    run.set_defaults(func=cmd_run)

    forget = sub.add_parser("forget", help="remove this node from Home Assistant (MQTT)")
    forget.add_argument("--config", type=Path, help="node.yaml")
    forget.add_argument("--model", type=Path, help="model whose commands to remove")
    add_mqtt_options(forget)
    forget.set_defaults(func=cmd_forget)

    classify = sub.add_parser("classify", help="classify WAV clips (directories recursed)")
    classify.add_argument("paths", nargs="+")
    classify.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    classify.add_argument("--json", action="store_true", help="JSON Lines output")
    classify.set_defaults(func=cmd_classify)

    detect = sub.add_parser("detect", help="run a recording through the streaming detector")
    detect.add_argument("file", type=Path)
    detect.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    detect.add_argument("--json", action="store_true", help="JSON Lines output")
    detect.add_argument("--threshold", type=number)
    detect.add_argument("--sweep", metavar="T1,T2,...",
                        help="report the detections at each of these thresholds (one pass of "
                             "the model; each line says its threshold)")
    detect.add_argument("--hop-ms", type=int)
    detect.add_argument("--refractory-s", type=number)
    detect.add_argument("--mode", choices=("stream", "block"))
    detect.add_argument("--isolation-model", type=Path, default=DEFAULT_ISOLATION_MODEL,
                        help="the isolation check's model (words said on their own only)")
    detect.add_argument("--isolation-threshold", type=number,
                        help="how sure the isolation check must be (0: off)")
    detect.add_argument("--no-isolation", action="store_true",
                        help="report detections without the isolation check")
    detect.set_defaults(func=cmd_detect)

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(func=cmd_devices)

    rec = sub.add_parser("record", help="record a clip (16 kHz mono WAV)")
    rec.add_argument("output", type=Path)
    rec.add_argument("--seconds", type=number, default=3.0)
    rec.add_argument("--source", default="mic")
    rec.add_argument("--config", type=Path, help="node.yaml (audio section)")
    rec.set_defaults(func=cmd_record)

    enr = sub.add_parser("enroll", help="record your voice for `kws-train finetune`: each "
                         "command a few times and a few other phrases, as prompted")
    enr.add_argument("output", type=Path, help="folder of label folders (created or added to)")
    enr.add_argument("--speaker", default="me", help="your name (one speaker id per person)")
    enr.add_argument("--takes", type=int, default=EnrollSettings.takes,
                     help="recordings of each command")
    enr.add_argument("--others", type=int, default=EnrollSettings.others,
                     help="recordings of other phrases")
    enr.add_argument("--window", type=number, default=EnrollSettings.window_s,
                     help="seconds captured after each prompt")
    enr.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="whose commands")
    enr.add_argument("--source", default="mic")
    enr.add_argument("--config", type=Path, help="node.yaml (audio section, detector gate)")
    enr.set_defaults(func=cmd_enroll)

    doctor = sub.add_parser("doctor", help="check the Pi setup (I2S, mic, OLED, broker, model, "
                            "clock) and print what to fix")
    doctor.add_argument("--config", type=Path, help="node.yaml")
    doctor.add_argument("--model", type=Path)
    doctor.add_argument("--json", action="store_true", help="one JSON object per check")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        return args.func(args)
    except (ConfigError, ModelError, AudioSourceError, DetectorConfigError,
            FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
