"""`faceplane`: the REST API from the command line, as tables or JSON.

    faceplane analyze photo.jpg                       faceplane verify a.jpg b.jpg
    faceplane detect photo.jpg --json                 faceplane enroll staff alice alice.jpg --create
    faceplane identify staff photo.jpg --top-k 3      faceplane generate 4 --seed 7 --out faces/
    faceplane anonymize photo.jpg --out anon.png      faceplane cluster party/*.jpg
    faceplane video analyze clip.mp4 --collection staff   # waits for the job, with a progress bar
    faceplane keys create --name app --scopes read,enrol --collections staff   # operators: talks to Redis
    faceplane keys list | faceplane keys revoke <key id>

The API is FACEPLANE_URL (default http://127.0.0.1:8080), the key FACEPLANE_API_KEY; `keys` works on the key
store itself, the Redis at FACEPLANE_REDIS_URL (default: the one `make run` started, whose URL with its password it
keeps in var/secrets.json; else redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceplane_client.client import FaceplaneClient, FaceplaneError
from faceplane_client.types import Face


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def box(face: Face) -> str:
    b = face["box"]
    return f"{b['x']:.0f},{b['y']:.0f} {b['width']:.0f}×{b['height']:.0f}"


def face_rows(faces: list[Face]) -> list[list[str]]:
    rows = []
    for i, f in enumerate(faces):
        top = sorted((f.get("attributes") or {}).items(), key=lambda kv: -kv[1])
        rows.append([
            str(i), box(f), f"{f['confidence']:.2f}",
            f"{f['emotion']['label']}" if "emotion" in f else "",
            f"{f['age']['value']:.0f}" if "age" in f else "",
            f"{f['gender']['label']} {f['gender']['score']:.2f}" if "gender" in f else "",
            f"{f['mask']['label']}" if "mask" in f else "",
            ", ".join(name for name, p in top if p >= 0.5),
            f"{f['quality']['score']:.2f}" if "quality" in f else "",
            f"{f['liveness']['label']} {f['liveness']['score']:.2f}" if "liveness" in f else "",
            "{yaw:.0f}/{pitch:.0f}/{roll:.0f}".format(**f["pose"]) if "pose" in f else "",
            "; ".join(f"{k}: {v}" for k, v in (f.get("errors") or {}).items()),
        ])  # fmt: skip
    return rows


FACE_HEADERS = [
    "#", "box", "conf", "emotion", "age", "gender", "mask", "attributes", "quality", "liveness", "yaw/pitch/roll",
    "errors",
]  # fmt: skip


def run(args: argparse.Namespace, client: FaceplaneClient) -> tuple[Any, str]:
    """(the JSON answer, its table)."""
    if args.command in ("detect", "analyze"):
        answer = client.detect(args.image) if args.command == "detect" else client.analyze(args.image, args.features)
        return answer, table(FACE_HEADERS, face_rows(answer["faces"]))
    if args.command == "verify":
        v = client.verify(args.image1, args.image2, args.require_liveness)
        verdict = "same person" if v["match"] else "different people"
        return v, f"{verdict}: similarity {v['similarity']:.3f} (threshold {v['threshold']:.3f})"
    if args.command == "enroll":
        if args.create:
            try:
                client.create_subject(args.collection, args.subject_id, args.name)
            except FaceplaneError as exc:
                if exc.code != "already_exists":
                    raise
        e = client.enroll(args.collection, args.subject_id, args.image, args.min_quality, args.require_liveness)
        return e, f"enrolled face {e['face_id']} for {args.subject_id} in {args.collection}"
    if args.command == "identify":
        answer = client.identify(args.collection, args.image, args.top_k, args.threshold)
        rows = []
        for i, f in enumerate(answer["faces"]):
            rows += [[str(i), box(f), m["subject_id"], m["name"], f"{m['similarity']:.3f}"] for m in f["matches"]]
            if not f["matches"]:
                rows.append([str(i), box(f), "(nobody enrolled matches)", "", ""])
        return answer, table(["#", "box", "subject", "name", "similarity"], rows)
    if args.command == "cluster":
        clustered = client.cluster(args.images, args.threshold)
        rows = [[str(c["cluster_id"]), str(args.images[f["image"]]), box(f)]
                for c in clustered["clusters"] for f in c["members"]]  # fmt: skip
        rows += [["noise", str(args.images[f["image"]]), box(f)] for f in clustered["noise"]]
        return clustered, table(["cluster", "image", "box"], rows)
    if args.command == "generate":
        pngs, seed = client.generate(args.count, args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, png in enumerate(pngs):
            path = args.out / f"face-{seed}-{i}.png"
            path.write_bytes(png)
            paths.append(str(path))
        return {"seed": seed, "files": paths}, "\n".join(paths) + f"\nseed {seed}"
    if args.command == "video":
        job = client.analyze_video(args.video, args.collection, args.features, args.sample_fps, progress_bar(args))
        if job["status"] == "failed":
            raise FaceplaneError(0, job["error"]["code"], job["error"]["message"])
        result = job["result"]
        rows = [[str(t["track_id"]), f"{t['start_s']:.1f}–{t['end_s']:.1f} s", str(len(t["frames"])),
                 t["identity"]["subject_id"] if t["identity"] else "", json.dumps(t["summary"])]
                for t in result["tracks"]]  # fmt: skip
        head = f"{result['frames_analyzed']} frames analysed of {result['duration_s']:.1f} s, {len(rows)} tracks\n"
        return job, head + table(["track", "time", "frames", "identity", "summary"], rows)
    if args.command == "anonymize":
        data = client.anonymize(args.image, args.method)
        args.out.write_bytes(data)
        return {"file": str(args.out), "bytes": len(data)}, f"wrote {args.out} ({len(data)} bytes)"
    raise AssertionError(args.command)


def progress_bar(args: argparse.Namespace) -> Any:
    """A progress bar on stderr while a video job runs (none with --json)."""
    if args.json:
        return None

    def show(job: dict[str, Any]) -> None:
        width = 30
        filled = round(job["progress"] * width)
        end = "\n" if job["status"] in ("done", "failed") else ""
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {job['progress']:4.0%} {job['status']:<8}", end=end,
              file=sys.stderr, flush=True)  # fmt: skip

    return show


# Where `make run` (deploy/local/stack.py) keeps its Redis's URL, password included, in a checkout.
LOCAL_SECRETS = Path(__file__).resolve().parents[1] / "var" / "secrets.json"


def default_redis_url() -> str:
    url = os.environ.get("FACEPLANE_REDIS_URL")
    if url:
        return url
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(LOCAL_SECRETS.read_text())["redis_url"])
    return "redis://127.0.0.1:6379/0"


def without_password(url: str) -> str:
    """`url` fit for a message: its password, if any, replaced."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def keys(args: argparse.Namespace) -> tuple[Any, str]:
    """API key administration, straight on the key store (where the gateway keeps them)."""
    import asyncio

    import redis.asyncio as redis

    from gateway.keys import KeyStore

    async def act() -> tuple[Any, str]:
        client = redis.from_url(args.redis_url)
        store = KeyStore(client)
        try:
            if args.keys_command == "create":
                key, secret = await store.create(args.name, args.scopes, args.collections, args.rate, args.burst,
                                                 args.concurrency)  # fmt: skip
                answer = {**key.public(), "api_key": secret}
                return answer, f"key {key.key_id} ({', '.join(sorted(key.scopes))}): {secret}\n(shown only now)"
            if args.keys_command == "revoke":
                if not await store.revoke(args.key_id):
                    raise FaceplaneError(404, "not_found", f"no key {args.key_id}")
                return {"key_id": args.key_id, "revoked": True}, f"revoked {args.key_id}"
            listed = [k.public() for k in await store.all()]
            rows = [[k["key_id"], k["name"], ",".join(k["scopes"]), ",".join(k["collections"]),
                     f"{k['rate_per_s']:g}/s", "revoked" if k["revoked"] else "active"] for k in listed]  # fmt: skip
            return listed, table(["id", "name", "scopes", "collections", "rate", "state"], rows)
        except redis.RedisError as exc:
            raise FaceplaneError(503, "key_store_unavailable", f"{without_password(args.redis_url)}: {exc}") from exc
        finally:
            await client.aclose()

    return asyncio.run(act())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="faceplane", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url", default=os.environ.get("FACEPLANE_URL", "http://127.0.0.1:8080"))
    p.add_argument("--api-key", default=os.environ.get("FACEPLANE_API_KEY"))
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("detect", help="faces, boxes, landmarks").add_argument("image", type=Path)
    analyze = sub.add_parser("analyze", help="faces with emotion, age, gender, mask, attributes")
    analyze.add_argument("image", type=Path)
    analyze.add_argument("--features", type=lambda s: s.split(","), help="e.g. emotion,age,gender")
    verify = sub.add_parser("verify", help="are the largest faces of two photos the same person?")
    verify.add_argument("image1", type=Path)
    verify.add_argument("image2", type=Path)
    live = "refuse (spoof_detected) a face the liveness service takes for a printed photo or a screen"
    verify.add_argument("--require-liveness", action="store_true", help=live)
    enroll = sub.add_parser("enroll", help="add a face to a subject of a collection")
    enroll.add_argument("collection")
    enroll.add_argument("subject_id")
    enroll.add_argument("image", type=Path)
    enroll.add_argument("--create", action="store_true", help="create the subject first if it does not exist")
    enroll.add_argument("--name", default="")
    enroll.add_argument("--min-quality", type=float, help="refuse the face if its quality score is below this (0..1)")
    enroll.add_argument("--require-liveness", action="store_true", help=live)
    identify = sub.add_parser("identify", help="who is in the photo, among a collection's subjects")
    identify.add_argument("collection")
    identify.add_argument("image", type=Path)
    identify.add_argument("--top-k", type=int)
    identify.add_argument("--threshold", type=float)
    cluster = sub.add_parser("cluster", help="group the faces of many photos by person")
    cluster.add_argument("images", type=Path, nargs="+")
    cluster.add_argument("--threshold", type=float, help="cosine similarity every two faces of a cluster reach")
    generate = sub.add_parser("generate", help="new faces (PNG files)")
    generate.add_argument("count", type=int)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--out", type=Path, default=Path("."))
    anonymize = sub.add_parser("anonymize", help="the photo with every face replaced (or blurred)")
    anonymize.add_argument("image", type=Path)
    anonymize.add_argument("--method", choices=["generate", "blur"])
    anonymize.add_argument("--out", type=Path, required=True)
    video = sub.add_parser("video", help="analyse a video file in the background: faces tracked and identified")
    video_sub = video.add_subparsers(dest="video_command", required=True)
    video_analyze = video_sub.add_parser("analyze", help="submit a video and wait for its result")
    video_analyze.add_argument("video", type=Path)
    video_analyze.add_argument("--collection", help="identify each track in this collection")
    video_analyze.add_argument("--features", type=lambda s: s.split(","), help="comma list, summarised per track")
    video_analyze.add_argument("--sample-fps", type=float, help="frames analysed per second (default 5)")
    keys_parser = sub.add_parser("keys", help="create, list and revoke API keys (on the key store)")
    keys_parser.add_argument(
        "--redis-url",
        default=default_redis_url(),
        help="default: FACEPLANE_REDIS_URL, else "
        "the Redis `make run` started (var/secrets.json), else redis://127.0.0.1:6379/0",
    )
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", type=lambda s: s.split(","), default=["read"], help="read,enrol,admin")
    create.add_argument("--collections", type=lambda s: s.split(","), default=["*"])
    create.add_argument("--rate", type=float, default=10.0, help="requests per second (token bucket)")
    create.add_argument("--burst", type=int, default=20)
    create.add_argument("--concurrency", type=int, default=8, help="requests at once")
    keys_sub.add_parser("revoke").add_argument("key_id")
    keys_sub.add_parser("list")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "keys":
            answer, text = keys(args)
        else:
            with FaceplaneClient(args.url, args.api_key) as client:
                answer, text = run(args, client)
    except FaceplaneError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}) if args.json else f"error: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    except ValueError as exc:  # a bad key definition
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
