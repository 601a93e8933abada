"""Recognition speed, side by side in one run: the article's path vs ours.

- per-window latency (median, p95) of
  - the article's path: a new Interpreter for every inference + scipy STFT 129x124 + its float
    CNN (1.6 M parameters);
  - ours: the interpreter created once, incremental features (only the new frames, and
    embeddings, of a 100 ms hop), the bundled int8 model;
- CPU share of one core and peak RSS of the streaming node (`edge-node run`) on audio paced in
  real time, piped to its stdin as a Pi's microphone through arecord is, and replayed from a
  WAV file, and whether scipy and TensorFlow were imported; with `--candidate MODEL`, the same
  for a model not (yet) bundled, run right after the bundled one so the two compare side by
  side; with `--before REV`, each run also for that git revision of the code, right before;
- with `--audio-thread`, the audio thread's cost per hop in the real node with MQTT on (a real
  Mosquitto) just after an outage (a detection queue of `--queued` rows to re-send), with
  `--before REV` also for that git revision of the code, run alternately on the same machine.

Run: `.venv/bin/python -m bench.recognition [--seconds 30] [--candidate MODEL.tflite]
     [--before REV]`
     `.venv/bin/python -m bench.recognition --audio-thread [--before REV]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge_node.audio.wav import read_wav_mono16k, write_wav
from edge_node.config import DEFAULT_EXAMPLE
from edge_node.features import FeatureSpec, make_extractor
from edge_node.model import DEFAULT_MODEL, Model, load_interpreter_class, read_manifest
from training.evaluation.benchmarks import machine, write_section

ARTICLE_MODEL = DEFAULT_MODEL.with_name("article_cnn.tflite")
HOP = 1600


def feature_parts(spec: FeatureSpec) -> str:
    """Which features a profile computes, e.g. "logmel + speech-embedding"."""
    if spec.profile == "concat":
        return " + ".join(part["profile"] for part in spec.params["parts"])
    return spec.profile


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    return float(np.median(samples_ms)), float(np.percentile(samples_ms, 95))


def article_window(audio: np.ndarray, interpreter_class: type) -> None:
    """What the article did for every window: STFT, then load the model and run it."""
    spectrogram = make_extractor({"profile": "stft129x124"}).compute(audio)
    interpreter = interpreter_class(model_path=str(ARTICLE_MODEL))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], spectrogram.reshape(inp["shape"]).astype(np.float32))
    interpreter.invoke()
    interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def latency(audio: np.ndarray, windows: int, runtime: str | None,
            rounds: int = 10) -> dict[str, float]:
    """Both paths over the same windows, alternating in rounds so machine noise hits both alike.

    Each round runs a run of windows through one path, then the same windows through the
    other: each path is measured in its own steady state, as on a node that runs only that
    path (window by window interleaving would let the article's 6.5 MB model reload evict
    our few kilobytes from the CPU caches before every window of ours).
    """
    _, interpreter_class = load_interpreter_class(runtime)
    ours = Model(DEFAULT_MODEL, runtime=runtime)
    stream = ours.stream()
    stream.push(audio[:16000])
    article_ms, ours_ms = [], []
    per_round = max(1, windows // rounds)
    for r in range(rounds):
        starts = [16000 + ((r * per_round + i) * HOP) % (audio.size - 16000 - HOP)
                  for i in range(per_round)]
        for start in starts:
            t0 = time.perf_counter()
            article_window(audio[start + HOP - 16000 : start + HOP], interpreter_class)
            article_ms.append((time.perf_counter() - t0) * 1e3)
        for start in starts:
            t0 = time.perf_counter()
            stream.push(audio[start : start + HOP])
            stream.scores()
            ours_ms.append((time.perf_counter() - t0) * 1e3)
    a50, a95 = percentiles(article_ms)
    o50, o95 = percentiles(ours_ms)
    return {"runtime": ours.runtime, "article_median_ms": a50, "article_p95_ms": a95,
            "ours_median_ms": o50, "ours_p95_ms": o95, "speedup_median": a50 / o50}


NODE_PROBE = """
import json, re, sys
from edge_node.cli import main
code = main(sys.argv[1:])
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"max_rss_kb": peak_kb, "tensorflow_imported": "tensorflow" in sys.modules,
                  "scipy_imported": "scipy" in sys.modules, "exit": code}), file=sys.stderr)
"""

SOURCES = {"stdin": "raw PCM piped in real time, as `arecord ... | edge-node run --source stdin`",
           "wav": "`--source wav:...`: the node replays a file at real-time pace"}
"""How the streaming node gets its audio: stdin is a Pi's live path (a microphone through
arecord), wav also loads what reading a file needs."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def feed_in_real_time(pipe: IO[bytes], audio: np.ndarray) -> None:
    """Write `audio` as 16-bit PCM one 100 ms hop at a time, no faster than a microphone
    (closing the pipe, the end of the stream, is left to `communicate`)."""
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    start = time.monotonic()
    try:
        for hop, at in enumerate(range(0, pcm.size, HOP)):
            delay = start + hop * HOP / 16000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pipe.write(pcm[at : at + HOP].tobytes())
            pipe.flush()
    except BrokenPipeError:
        pass  # the node died; its exit code and stderr tell why


def streaming_node(seconds: float, runtime: str | None, model: Path = DEFAULT_MODEL,
                   source: str = "stdin", tree: Path | None = None,
                   warmup_s: float = 5.0) -> dict[str, Any]:
    """Run the real node (code from `tree`, default this one) on `seconds` of real-time audio
    from `source` (see SOURCES): steady-state CPU share (start-up and imports excluded: sampled
    from /proc after `warmup_s`) and peak RSS."""
    example = read_wav_mono16k(DEFAULT_EXAMPLE)
    repeats = int(np.ceil(seconds * 16000 / example.size))
    audio = np.tile(example, repeats)[: int(seconds * 16000)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "stream.wav"
        write_wav(wav, audio)
        env = {**os.environ}
        if runtime:
            env["EDGE_NODE_TFLITE_RUNTIME"] = runtime
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        spec = "stdin" if source == "stdin" else f"wav:{wav}"
        proc = subprocess.Popen([sys.executable, "-c", NODE_PROBE, "--log-level", "WARNING",
                                 "run", "--source", spec, "--display", "none",
                                 "--model", str(model)],
                                stdin=subprocess.PIPE if source == "stdin" else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                cwd=tree)
        feeder = None
        if proc.stdin is not None:
            feeder = threading.Thread(target=feed_in_real_time, args=(proc.stdin, audio))
            feeder.start()
        time.sleep(warmup_s)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(max(1.0, seconds - warmup_s - 2.0))
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        if feeder is not None:
            feeder.join()
        out, err = (stream.decode() for stream in proc.communicate(timeout=seconds + 60))
    probe = json.loads(err.strip().splitlines()[-1])
    return {"audio_s": seconds, "source": source, "cpu_s": cpu1 - cpu0,
            "cpu_share": (cpu1 - cpu0) / (t1 - t0), "max_rss_mb": probe["max_rss_kb"] / 1024,
            "tensorflow_imported": probe["tensorflow_imported"],
            "scipy_imported": probe["scipy_imported"],
            "detections": len(out.splitlines())}


HOP_PROBE = """
import json, sys, time
from edge_node.agent import Agent
from edge_node.events import Detected, EventHub
hops, detected = [], []
process, publish = Agent.process, EventHub.publish
def timed_process(self, block):
    t0 = time.perf_counter()
    process(self, block)
    hops.append((time.perf_counter() - t0) * 1e3)
def timed_publish(self, event):
    t0 = time.perf_counter()
    publish(self, event)
    if type(event) is Detected:
        detected.append((time.perf_counter() - t0) * 1e3)
Agent.process, EventHub.publish = timed_process, timed_publish
from edge_node.cli import main
code = main(sys.argv[1:])
print(json.dumps({"hops_ms": hops, "detected_ms": detected, "exit": code}), file=sys.stderr)
"""


def fill_queue(path: Path, rows: int) -> None:
    """A detection queue as an outage leaves it: `rows` detections waiting to be sent."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY CHECK (id = 0), "
               "last_seq INTEGER NOT NULL)")
    record = {"command": "stop", "confidence": 0.9, "timestamp": 0.0, "model_version": "x",
              "node_id": "bench"}
    db.executemany("INSERT INTO outbox VALUES (?, ?)",
                   ((i, json.dumps({**record, "seq": i})) for i in range(1, rows + 1)))
    db.execute("INSERT INTO counter VALUES (0, ?)", (rows,))
    db.commit()
    db.close()


def audio_thread(tree: Path, seconds: float, queued: int) -> dict[str, Any]:
    """The real node (`edge-node run`, code from `tree`) on `seconds` of the demo recording,
    paced in real time, MQTT to a real Mosquitto, starting with `queued` detections to re-send:
    each hop's time in the audio loop, and each `Detected` event's time with its subscribers
    (stdout, MQTT: what a new detection waits for on the audio thread)."""
    from tests.support.mqtt_broker import Broker

    example = read_wav_mono16k(DEFAULT_EXAMPLE)
    audio = np.tile(example, int(np.ceil(seconds * 16000 / example.size)))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "stream.wav"
        write_wav(wav, audio[: int(seconds * 16000)])
        fill_queue(Path(tmp) / "state" / "bench-queue.sqlite3", queued)
        (Path(tmp) / "node.yaml").write_text(
            f"node_id: bench\nmqtt: {{state_dir: {tmp}/state}}\n")
        broker = Broker(Path(tmp) / "broker").start()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", HOP_PROBE, "--log-level", "WARNING", "run",
                 "--config", f"{tmp}/node.yaml", "--source", f"wav:{wav}", "--display", "none",
                 "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)],
                cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                text=True, timeout=seconds + 120)
        finally:
            broker.stop()
    probe = json.loads(proc.stderr.strip().splitlines()[-1])
    hops, detected = probe["hops_ms"], probe["detected_ms"]
    h50, h95 = percentiles(hops)
    d50, d95 = percentiles(detected) if detected else (float("nan"), float("nan"))
    return {"hops": len(hops), "hop_median_ms": h50, "hop_p95_ms": h95, "hop_max_ms": max(hops),
            "detections": len(detected), "detected_median_ms": d50, "detected_p95_ms": d95,
            "detected_max_ms": max(detected, default=float("nan"))}


@contextlib.contextmanager
def code_trees(before: str | None) -> Iterator[dict[str, Path]]:
    """This tree by name, and with `before` that git revision checked out beside it (in a
    temporary worktree, removed afterwards), so both codes run on the same machine at once."""
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    trees = {f"{head} (this tree)": repo}
    with tempfile.TemporaryDirectory() as tmp:
        if not before:
            yield trees
            return
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(old),
                        before], check=True, capture_output=True)
        try:
            yield {f"before ({before})": old, **trees}
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old)],
                           check=True)


def audio_thread_section(seconds: float, queued: int, before: str | None, rounds: int) -> None:
    """Before/after figures of `audio_thread`, alternating rounds, into BENCHMARKS.md."""
    with code_trees(before) as trees:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                row = audio_thread(tree, seconds, queued)
                results[name].append(row)
                print(json.dumps({"code": name, **row}))
    body = [f"Machine: {machine()}. `python -m bench.recognition --audio-thread` "
            f"({rounds} alternating rounds per code; each: `edge-node run` on {seconds:.0f} s of "
            f"the demo recording paced in real time, MQTT on to a local Mosquitto, starting "
            f"with {queued:,} detections queued by an outage). Hop: one 100 ms block through "
            f"the audio loop (features, model, detector, hub). Detected: the `Detected` event "
            f"with its subscribers (stdout, MQTT), on the audio thread.", "",
            "| code | hops | hop median / p95 / max (ms) | detections | "
            "Detected median / p95 / max (ms) |", "|---|---|---|---|---|"]
    for name, rows in results.items():
        hops = sum(r["hops"] for r in rows)
        dets = sum(r["detections"] for r in rows)
        med = float(np.median([r["hop_median_ms"] for r in rows]))
        p95 = float(np.median([r["hop_p95_ms"] for r in rows]))
        top = max(r["hop_max_ms"] for r in rows)
        dmed = float(np.median([r["detected_median_ms"] for r in rows]))
        dp95 = float(np.median([r["detected_p95_ms"] for r in rows]))
        dtop = max(r["detected_max_ms"] for r in rows)
        body.append(f"| {name} | {hops} | {med:.2f} / {p95:.2f} / {top:.1f} | {dets} | "
                    f"{dmed:.3f} / {dp95:.3f} / {dtop:.1f} |")
    write_section("audio-thread", "Audio thread: cost per hop with MQTT on", "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio-thread", action="store_true",
                        help="only the audio thread's per-hop cost with MQTT on")
    parser.add_argument("--before", metavar="REV",
                        help="also run this git revision's code, beside this tree's")
    parser.add_argument("--queued", type=int, default=10000,
                        help="with --audio-thread: detections waiting when the node starts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0, help="real-time streaming run")
    parser.add_argument("--runtimes", default="ai-edge-litert,tflite-runtime")
    parser.add_argument("--sources", default="stdin,wav",
                        help=f"how the streaming node gets its audio: {', '.join(SOURCES)}")
    parser.add_argument("--candidate", type=Path,
                        help="also run the streaming node with this model, beside the bundled one")
    args = parser.parse_args()
    if args.audio_thread:
        audio_thread_section(args.seconds, args.queued, args.before, args.rounds)
        return
    audio = np.tile(read_wav_mono16k(DEFAULT_EXAMPLE), 3)
    ours_manifest = read_manifest(DEFAULT_MODEL)
    rows, nodes = [], []
    for runtime in args.runtimes.split(","):
        row = latency(audio, args.windows, runtime)
        rows.append(row)
        print(json.dumps(row))
    models = [DEFAULT_MODEL] + ([args.candidate] if args.candidate else [])
    with code_trees(args.before) as trees:
        for runtime in args.runtimes.split(","):
            for model in models:
                role = "bundled" if model == DEFAULT_MODEL else "candidate"
                for source in args.sources.split(","):
                    for code, tree in trees.items():
                        node = streaming_node(args.seconds, runtime, model, source, tree)
                        node.update(code=code, runtime=runtime,
                                    model=f"{role} {read_manifest(model).version}")
                        nodes.append(node)
                        print(json.dumps(node))
    article_manifest = read_manifest(ARTICLE_MODEL)
    body = [
        f"Machine: {machine()}. `python -m bench.recognition` ({args.windows} windows per "
        f"path, alternating in rounds of {args.windows // 10}; streaming run on "
        f"{args.seconds:.0f} s of real-time audio).",
        "",
        f"Article path: new interpreter per inference + scipy STFT 129x124 + its float CNN "
        f"(`{ARTICLE_MODEL.name}`, {article_manifest.extra.get('parameters', '?'):,} parameters). "
        f"Ours: interpreter reused + incremental `{ours_manifest.features.profile}` features "
        f"({feature_parts(ours_manifest.features)}) + `{DEFAULT_MODEL.name}` "
        f"({ours_manifest.extra.get('quantization')}, "
        f"{ours_manifest.extra.get('parameters', '?'):,} parameters, "
        f"{DEFAULT_MODEL.stat().st_size:,} bytes).",
        "",
        "| runtime | article median / p95 (ms) | ours median / p95 (ms) | speed-up (median) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        body.append(f"| {r['runtime']} | {r['article_median_ms']:.2f} / {r['article_p95_ms']:.2f} "
                    f"| {r['ours_median_ms']:.3f} / {r['ours_p95_ms']:.3f} | "
                    f"{r['speedup_median']:.1f}x |")
    body += ["", "Streaming node (`edge-node run`, real-time pacing, hop 100 ms; peak RSS is the "
             "node's VmHWM), its audio from " + "; ".join(
                 f"{name}: {SOURCES[name]}" for name in args.sources.split(",")) + ":",
             "", "| code | runtime | model | source | steady CPU (share of one core) | peak RSS | "
             "scipy imported | TensorFlow imported |", "|---|---|---|---|---|---|---|---|"]
    for n in nodes:
        body.append(f"| {n['code']} | {n['runtime']} | {n['model']} | {n['source']} | "
                    f"{100 * n['cpu_share']:.1f}% | {n['max_rss_mb']:.1f} MB | "
                    f"{'yes' if n['scipy_imported'] else 'no'} | "
                    f"{'yes' if n['tensorflow_imported'] else 'no'} |")
    write_section("recognition", "Recognition speed: article vs ours", "\n".join(body))
    print(f"max RSS of this benchmark process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
