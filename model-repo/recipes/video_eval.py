"""Video jobs on real clips: tracking coverage, identification, throughput and job latency.

    .venv/bin/python -m recipes.video_eval --data ../shared/datasets --json bench/results/video.json

Starts Redis, the detector and the embedder, the gateway and one video worker as processes on loopback (what
`make run` starts, deploy/local/stack.py), then sends each clip to `POST /v1/videos` and polls for its result:
- video/youtube_faces: every frame analysed (`sample_fps` 30, the clips' rate); per clip, the share of frames in
  which the labelled face (its box from `<clip>.labeled_faces.txt`: centre and size) is matched at IoU ≥ 0.5 by
  the one track that matches it most often — the target is ≥ 90%;
- video/hamilton: its two reference photos enrolled in a collection, `sample_fps` 5; each track's identity and
  length, and whether both people were identified.
Throughput is frames analysed per second of job time (submission to `done`), which includes queueing and
decoding; the machine is shared, so the figures are dated and their load noted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from deploy.local.stack import Stack, free_port
from gateway.tracking import iou

SERVICES = ["detector", "embedder"]
HAMILTON_PEOPLE = {"alex-lacamoire": "Alex Lacamoire", "lin-manuel-miranda": "Lin-Manuel Miranda"}


def labelled_boxes(path: Path) -> list[dict[str, float]]:
    """The labelled face of each frame: lines `file, -, x centre, y centre, width, height, -, -`."""
    boxes = []
    for line in path.read_text().splitlines():
        _, _, cx, cy, w, h, *_ = line.split(",")
        x, y, width, height = float(cx), float(cy), float(w), float(h)
        boxes.append({"x": x - width / 2, "y": y - height / 2, "width": width, "height": height})
    return boxes


def run_job(api: httpx.Client, clip: Path, **params: object) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    accepted = api.post("/v1/videos", files={"video": (clip.name, clip.read_bytes())}, params=params)
    accepted.raise_for_status()
    job_id = accepted.json()["job_id"]
    while (job := api.get(f"/v1/videos/{job_id}").json())["status"] not in ("done", "failed"):
        time.sleep(0.1)
    if job["status"] != "done":
        raise RuntimeError(f"{clip.name}: {job}")
    return job["result"], time.perf_counter() - started


def coverage(result: dict[str, Any], truth: list[dict[str, float]], fps: float) -> dict[str, Any]:
    """The best track's share of the frames, and (its ceiling) the share in which any track matches the label:
    the difference is the tracker's (a track broken in two), the rest the detector's (a face missed or boxed
    otherwise than the label)."""
    best, anywhere = 0, set()
    for track in result["tracks"]:
        hits = {round(f["t"] * fps) for f in track["frames"]
                if iou(f["box"], truth[min(len(truth) - 1, round(f["t"] * fps))]) >= 0.5}  # fmt: skip
        best, anywhere = max(best, len(hits)), anywhere | hits
    analysed = result["frames_analyzed"]
    spans = [[t["start_s"], t["end_s"], len(t["frames"])] for t in result["tracks"]]
    shares = {"coverage": round(best / analysed, 4), "matched_by_any_track": round(len(anywhere) / analysed, 4)}
    shares["tracks_start_end_frames"] = spans
    return {"frames": analysed, "tracks": len(result["tracks"]), "covered": best, **shares}


def evaluate(data: Path) -> dict[str, Any]:
    names = ["gateway", "redis", *SERVICES]
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(ports={n: free_port() for n in names}, log_dir=Path(tmp) / "log", data_dir=Path(tmp) / "redis",
                      services=SERVICES, video_worker=True, start_timeout_s=180)  # fmt: skip
        stack.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['gateway']}", timeout=120) as api:
                return measure(api, data)
        finally:
            stack.stop()


def measure(api: httpx.Client, data: Path) -> dict[str, Any]:
    clips: dict[str, Any] = {}
    frames, seconds = 0, 0.0
    for clip in sorted((data / "video" / "youtube_faces").glob("*.avi")):
        truth = labelled_boxes(clip.with_suffix(".labeled_faces.txt"))
        result, latency = run_job(api, clip, sample_fps=30)
        clips[clip.stem] = {**coverage(result, truth, result["fps"]), "job_s": round(latency, 2)}
        frames, seconds = frames + result["frames_analyzed"], seconds + latency
        print(f"{clip.stem:<18} {clips[clip.stem]}", flush=True)

    hamilton = data / "video" / "hamilton"
    collection = f"hamilton-{uuid.uuid4().hex[:8]}"
    for subject, name in HAMILTON_PEOPLE.items():
        api.post(
            f"/v1/collections/{collection}/subjects", json={"subject_id": subject, "name": name}
        ).raise_for_status()
        photo = (hamilton / f"{subject}.png").read_bytes()
        path = f"/v1/collections/{collection}/subjects/{subject}/faces"
        files = {"image": ("p.png", photo, "image/png")}
        enrolled = api.post(path, files=files, params={"allow_multiple": "true"})
        enrolled.raise_for_status()
    result, latency = run_job(api, hamilton / "short_hamilton_clip.mp4", collection=collection, sample_fps=5)
    tracks = [
        {"track_id": t["track_id"], "start_s": t["start_s"], "end_s": t["end_s"], "frames": len(t["frames"]),
         "identity": t["identity"]["subject_id"] if t["identity"] else None,
         "similarity": t["identity"]["similarity"] if t["identity"] else None}
        for t in result["tracks"]
    ]  # fmt: skip
    found = sorted({t["identity"] for t in tracks if t["identity"]})
    hamilton_out = {"frames": result["frames_analyzed"], "tracks": tracks, "identified": found,
                    "both_identified": found == sorted(HAMILTON_PEOPLE), "job_s": round(latency, 2)}  # fmt: skip
    print(f"hamilton           {len(tracks)} tracks, identified {found}, {latency:.1f} s", flush=True)
    frames, seconds = frames + result["frames_analyzed"], seconds + latency
    return {
        "youtube_faces": clips,
        "hamilton": hamilton_out,
        "throughput_frames_per_s": round(frames / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DATA", "../shared/datasets")))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = evaluate(args.data.resolve())
    out = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}",
        "services": SERVICES,
        "command": "python -m recipes.video_eval",
        **results,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
