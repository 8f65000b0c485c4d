"""Train the DCGAN face generator (Radford et al.) on aligned CelebA (and optionally UTKFace) faces cut by our models.

    python -m recipes.train_dcgan --minutes 20                          # the shipped model: CelebA
    python -m recipes.train_dcgan --sets celeba,utkface --mask-frames --r1 1 --minutes 62   # the mix, tried
    python -m recipes.train_dcgan --sets celeba,utkface --mix 0.5 --mask-frames --r1 1 --minutes 55  # tried

Runs in the project's environment (`make install`: torch, onnx), on CUDA when there is one (`--device`). The faces
are 64×64 crops cut by `train_attributes.face_crop` (our own MTCNN landmarks → `align_face`, standard template,
padding 0.25, 128 px resized to 64): the CelebA ones are the attribute recipe's cache
(`.cache/train-attributes/crops.npz`, built by `train_attributes.prepare`), the UTKFace ones (all but the 15%
`splits.utkface_is_test` holds back) are cut by the same function here and cached in
`.cache/train-dcgan/utkface-crops.npz`; both caches are rebuilt from `--data` when missing. With both sets the mix
is balanced: every epoch is all CelebA crops plus as many UTKFace crops, drawn afresh each epoch (UTKFace has about
twice as many; over the epochs all are seen). UTKFace's images are cropped tighter than our template, so its
aligned crops are small faces in a black frame: trained on as they are, half the generator's faces come out framed
too; `--mask-frames` hides the frame from the discriminator (see `train`), and `--r1` keeps the discriminator from
winning outright. No mix beat the CelebA-only model, which is the one shipped (model-repo/dcgan_faces/card.md).
Training stops at the wall-clock budget (`--minutes`) or
after `--epochs`, whichever comes first, and checkpoints after every epoch (delete `<work>/checkpoint.pt` to start
from scratch). `evaluate` measures quality with our own models: the share of generated faces in which our detector
finds exactly one face, the share framed in black (`framed_share`), and the mean pairwise embedding distance of
generated faces against real ones of the same sets (no mode collapse). It also writes the sample grid into docs/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from recipes.small_cnn import default_device, device_of

REPO = Path(__file__).resolve().parents[2]
LATENT = 100
SIZE = 64
BATCH = 64
WIDTH = 32  # ngf = ndf: 48 took ~98 s an epoch on the 2-core CPU, 32 about 27 s
SEED = 1234
REAL_LABEL = 0.9  # one-sided label smoothing
R1_EVERY = 4  # lazy R1: the penalty on every 4th discriminator step, weighted ×4 (StyleGAN2's trick)


class Generator(nn.Module):
    """latent (N, 100, 1, 1) → 4 → 8 → 16 → 32 → 64 px, transposed 4×4 convolutions, BN + ReLU, tanh output."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()

        def up(cin: int, cout: int, stride: int = 2, padding: int = 1) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.net = nn.Sequential(
            *up(LATENT, width * 8, 1, 0), *up(width * 8, width * 4), *up(width * 4, width * 2), *up(width * 2, width),
            nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """The mirror image: 64 → 32 → 16 → 8 → 4 px, 4×4 convolutions stride 2, BN (not on the first) + LeakyReLU 0.2.
    Input: the RGB image, and with frame masking a fourth channel: where the image is seen (1) or framed (−1)."""

    def __init__(self, width: int = WIDTH, channels: int = 3) -> None:
        super().__init__()

        def down(cin: int, cout: int, bn: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
            return layers + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            *down(channels, width, bn=False), *down(width, width * 2), *down(width * 2, width * 4),
            *down(width * 4, width * 8),
            nn.Conv2d(width * 8, 1, 4, 1, 0, bias=False), nn.Flatten(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)  # logits


class ServedGenerator(nn.Module):
    """What is exported: latent (N, 100) → RGB pixels (N, 64, 64, 3) float32 in 0..255, NHWC."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        images = self.generator(latent.view(-1, LATENT, 1, 1))
        return ((images + 1.0) * 127.5).clamp(0.0, 255.0).permute(0, 2, 3, 1)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: convolutions N(0, 0.02), batch-norm scales N(1, 0.02), shifts 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GanRun:
    """Both networks, their Adam optimisers and the data-order generator, saved after every epoch to resume."""

    def __init__(self, seed: int, args: argparse.Namespace) -> None:
        torch.manual_seed(seed)
        self.device = device = args.device
        # What a checkpoint must have been trained with to be resumed (the optimiser's state carries the rates).
        self.config = {k: getattr(args, k) for k in ("sets", "width", "mask_frames", "d_lr", "r1", "d_warmup", "mix")}
        self.config["init_from"] = str(args.init_from or "")
        self.g = Generator(args.width).to(device)
        self.d = Discriminator(args.width, 4 if args.mask_frames else 3).to(device)
        self.g.apply(init_weights)
        self.d.apply(init_weights)
        if args.init_from:
            load_onnx_generator(self.g, args.init_from)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=args.d_lr, betas=(0.5, 0.999))
        self.generator = torch.Generator().manual_seed(seed)

    def resume(self, checkpoint: Path) -> int:
        """The first epoch still to run (0 without a checkpoint)."""
        if not checkpoint.exists():
            return 0
        # On the CPU: RNG states must be CPU tensors; load_state_dict moves the weights to the networks' device.
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        # Checkpoints from before --r1, --init-from and --d-warmup lack their keys.
        if ({"r1": 0.0, "init_from": "", "d_warmup": 0, "mix": 1.0} | state.get("config", self.config)) != self.config:
            raise SystemExit(f"{checkpoint} was trained with {state['config']}, not {self.config}: another --work")
        for key in ("g", "d", "opt_g", "opt_d"):
            getattr(self, key).load_state_dict(state[key])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.startswith("cuda") and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        return int(state["epoch"]) + 1

    def save(self, checkpoint: Path, epoch: int) -> None:
        state = {key: getattr(self, key).state_dict() for key in ("g", "d", "opt_g", "opt_d")}
        state |= {"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch}
        state["config"] = self.config
        if self.device.startswith("cuda"):
            state["cuda_rng"] = torch.cuda.get_rng_state()
        torch.save(state, checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").replace(checkpoint)


def load_onnx_generator(g: Generator, path: Path) -> None:
    """Start from an exported generator (`export_onnx` keeps the state-dict names under `generator.`)."""
    import onnx
    from onnx import numpy_helper

    prefix = "generator."
    weights = {
        init.name[len(prefix) :]: torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in onnx.load(str(path)).graph.initializer
        if init.name.startswith(prefix)
    }
    missing, unexpected = g.load_state_dict(weights, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise SystemExit(f"{path} does not hold this generator: missing {missing}, unexpected {unexpected}")


def load_faces(data_dir: Path, cache: Path) -> np.ndarray:
    """(N, 64, 64, 3) uint8 aligned CelebA faces: the attribute recipe's cache, rebuilt from `data_dir` when missing."""
    if not cache.exists():
        from recipes.train_attributes import prepare

        prepare(data_dir, cache)
    return np.load(cache)["x"]


def load_utkface(data_dir: Path, cache: Path) -> np.ndarray:
    """(N, 64, 64, 3) uint8 aligned UTKFace faces, cut exactly as the CelebA ones (`train_attributes.face_crop`)
    from the training part of UTKFace (`splits.utkface_is_test` is never trained on); cached, rebuilt when missing.
    Images in which our detector finds no face are left out."""
    if not cache.exists():
        from recipes.splits import utkface_is_test
        from recipes.train_attributes import face_crop
        from services.detector.model import MtcnnDetector
        from services.runtime.modelrepo import load_model

        with (data_dir / "utkface" / "labels.csv").open() as f:
            files = [row["file"] for row in csv.DictReader(f) if not utkface_is_test(row["file"])]
        detector = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))
        crops, kept, started = [], [], time.time()
        for i, name in enumerate(files):
            image = np.asarray(Image.open(data_dir / "utkface" / "images" / name).convert("RGB"))
            crop = face_crop(detector, image)
            if crop is not None:
                crops.append(crop)
                kept.append(name)
            if (i + 1) % 2000 == 0:
                print(f"  UTKFace {i + 1}/{len(files)} ({time.time() - started:.0f}s)", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=np.stack(crops), name=np.array(kept), total=np.array(len(files)))
    return np.load(cache)["x"]


def frame_mask(images: np.ndarray, dark: int = 2) -> np.ndarray:
    """(N, H, W) bool: the aligner's black border. Pixels no brighter than `dark` in every channel that touch the
    image edge (a dark patch inside the face is not frame), grown by one pixel for the blended edge of the warp."""
    frames = np.zeros(images.shape[:3], bool)
    grow = np.ones((3, 3), np.uint8)
    for i, image in enumerate(images):
        count, labels = cv2.connectedComponents((image.max(axis=2) <= dark).astype(np.uint8), connectivity=4)
        if count == 1:
            continue
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        frame = np.isin(labels, edge[edge > 0]).astype(np.uint8)
        frames[i] = cv2.dilate(frame, grow).astype(bool)
    return frames


def framed_share(images: np.ndarray, least: float = 0.2) -> float:
    """The share of images whose black frame (`frame_mask`) covers at least `least` of them: small faces in a frame,
    as UTKFace's crops all are (frame 66-71% of the crop for the middle 80%) and 4-5% of CelebA's."""
    return round(float((frame_mask(images).mean(axis=(1, 2)) >= least).mean()), 4)


def latents(count: int, seed: int) -> np.ndarray:
    """The latent vectors for `seed`: z ~ N(0, 1), (count, 100) float32 (the same seed gives the same faces)."""
    return np.random.default_rng(seed).standard_normal((count, LATENT)).astype(np.float32)


def grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """(N, H, W, 3) uint8 → one image, `columns` wide, 2 px gaps."""
    n, h, w, _ = images.shape
    rows = (n + columns - 1) // columns
    out = np.full((rows * (h + 2) + 2, columns * (w + 2) + 2, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        out[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = image
    return out


def sample(g: Generator, z: np.ndarray) -> np.ndarray:
    was_training = g.training
    g.eval()
    with torch.no_grad():
        images = ServedGenerator(g)(torch.from_numpy(z).to(device_of(g)))
        images = images.round().to(torch.uint8).cpu().numpy()
    g.train(was_training)
    return images


def judged(images: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
    """What the discriminator is shown: the images as they are, or with frame masking (`seen`: 1 inside the
    image) the frame filled with black and, as a fourth channel, where the frame is."""
    if seen is None:
        return images
    return torch.cat([images * seen - (1.0 - seen), 2 * seen - 1], 1)


def r1_penalty(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al.'s R1: the squared gradient norm of the discriminator's logit at the real images, which
    keeps it from growing sharp where the data are (the mix's discriminator otherwise wins outright). Taken over
    all the discriminator is shown: with --mask-frames the black frame and the frame channel too."""
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3)).mean()


def train(sets: list[np.ndarray], work: Path, args: argparse.Namespace) -> int:
    """Train until `--epochs` or the budget; returns the number of epochs done. Checkpoint: `work/checkpoint.pt`.
    An epoch is every face of one set; of several, as many faces of each as the smallest has (times `--mix` for
    every set after the first), drawn afresh.

    With `--mask-frames` the discriminator never judges the aligner's black frame (`frame_mask`): each generated
    face in a batch is framed with the frame of the real face beside it, both frames are filled with black, and
    the discriminator is told where the frame is (a fourth input channel). So a set cropped tighter than our
    template (UTKFace: 68% of each crop is frame) can teach the middle of the face only, while the generator draws
    whole faces (AmbientGAN's idea: learn the full picture from partly observed ones). Without the fourth channel a
    generated face in a black frame of its own looks like a framed real one, and the generator learns to draw
    frames again (10 of 64 samples after 21 epochs)."""
    run, device, epochs = GanRun(SEED, args), args.device, args.epochs
    checkpoint = work / "checkpoint.pt"
    start_epoch = run.resume(checkpoint)
    pixels = np.concatenate(sets)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1.0  # NCHW, -1..1
    seen = torch.from_numpy(~frame_mask(pixels)).float().unsqueeze(1).to(device) if args.mask_frames else None
    offsets = np.cumsum([0, *(len(faces) for faces in sets)])[:-1].tolist()
    smallest = min(len(faces) for faces in sets)
    per_epoch = [smallest] + [min(len(faces), round(smallest * args.mix)) for faces in sets[1:]]
    loss_fn = nn.BCEWithLogitsLoss()
    fixed = latents(64, 0)
    deadline, epoch_seconds = time.time() + args.minutes * 60, 0.0
    epoch = start_epoch
    for epoch in range(start_epoch, epochs):
        if epoch > start_epoch and time.time() + epoch_seconds > deadline:
            print(f"time budget reached after {epoch} epochs", flush=True)
            return epoch
        started, sum_d, sum_g, sum_r1, steps = time.time(), 0.0, 0.0, 0.0, 0
        if len(sets) == 1:
            order = torch.randperm(len(x), generator=run.generator)
        else:
            chosen = torch.cat([offset + torch.randperm(len(faces), generator=run.generator)[:count]
                                for offset, faces, count in zip(offsets, sets, per_epoch, strict=True)])  # fmt: skip
            order = chosen[torch.randperm(len(chosen), generator=run.generator)]
        for i in range(0, len(order) - BATCH + 1, BATCH):  # drop the last partial batch (batch norm)
            batch = order[i : i + BATCH].to(device)
            flip = (torch.rand(BATCH, generator=run.generator) < 0.5).to(device)[:, None, None, None]
            mask = None if seen is None else torch.where(flip, seen[batch].flip(3), seen[batch])
            real = judged(torch.where(flip, x[batch].flip(3), x[batch]), mask)
            fake = run.g(torch.randn(BATCH, LATENT, 1, 1, device=device))
            framed = judged(fake, mask)
            # Discriminator: real → 0.9, fake → 0.
            penalise = args.r1 > 0 and steps % R1_EVERY == 0
            real.requires_grad_(penalise)
            on_real = run.d(real)
            loss_d = loss_fn(on_real, torch.full((BATCH,), REAL_LABEL, device=device)) + loss_fn(
                run.d(framed.detach()), torch.zeros(BATCH, device=device)
            )
            sum_d += loss_d.item()  # the classification loss alone, comparable with runs without R1
            if penalise:
                penalty = r1_penalty(on_real, real)
                sum_r1 += penalty.item()
                loss_d = loss_d + R1_EVERY * args.r1 / 2 * penalty
            run.opt_d.zero_grad()
            loss_d.backward()
            run.opt_d.step()
            # Generator: make the discriminator call the fakes real (target 1). Not during the first --d-warmup
            # steps: a new discriminator's first judgements would wreck a generator started with --init-from.
            loss_g = loss_fn(run.d(framed), torch.ones(BATCH, device=device))
            if epoch > 0 or steps >= args.d_warmup:
                run.opt_g.zero_grad()
                loss_g.backward()
                run.opt_g.step()
            sum_g, steps = sum_g + loss_g.item(), steps + 1
            if epoch == start_epoch and steps == 10:
                print(f"  10 steps in {time.time() - started:.1f}s", flush=True)
        epoch_seconds = time.time() - started
        run.save(checkpoint, epoch)
        torch.save({k: v.cpu() for k, v in run.g.state_dict().items()}, work / f"generator_{epoch + 1:03d}.pt")
        Image.fromarray(grid(sample(run.g, fixed))).save(work / f"samples_{epoch + 1:03d}.png")
        r1 = f" R1 {sum_r1 / -(-steps // R1_EVERY):.3f}" if args.r1 > 0 else ""
        print(f"epoch {epoch + 1}/{epochs} loss D {sum_d / steps:.3f} G {sum_g / steps:.3f}{r1} ({epoch_seconds:.0f}s)",
              flush=True)  # fmt: skip
    return epochs if epochs > start_epoch else start_epoch


def export_onnx(g: Generator, out_dir: Path) -> Path:
    """`model.onnx`: input `latent` (N, 100), output `images` (N, 64, 64, 3) RGB 0..255, dynamic batch, IR 8."""
    import onnx
    import onnxruntime as ort

    served = ServedGenerator(g).eval()
    path = out_dir / "model.onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        served, (torch.zeros(1, LATENT),), str(path), input_names=["latent"], output_names=["images"],
        dynamic_axes={"latent": {0: "batch"}, "images": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    proto = onnx.load(str(path))
    proto.ir_version = 8
    onnx.save(proto, str(path))
    z = latents(16, 0)
    with torch.no_grad():
        expected = served(torch.from_numpy(z)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"latent": z})[0]
    diff = float(np.abs(got - expected).max())
    print(f"ONNX vs torch max diff {diff:.2e}", flush=True)
    assert diff < 1e-3, diff
    return path


def pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Mean cosine distance over all distinct pairs of L2-normalised embeddings."""
    sims = embeddings @ embeddings.T
    n = len(embeddings)
    if n < 2:
        return float("nan")
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def evaluate(model_repo: Path, onnx_path: Path, real_sets: dict[str, np.ndarray], docs: Path) -> dict:
    """Detector share (500 faces, seed 0, upscaled to 128 px bicubic), diversity (200 generated vs 200 real
    faces of the training mix, an equal share from each set; mean pairwise cosine distance of our embeddings),
    speed in ORT with one thread, and the sample grid."""
    import onnxruntime as ort

    from services.detector.align import align_face
    from services.detector.model import MtcnnDetector
    from services.embedder.model import EmbeddingModel
    from services.runtime.modelrepo import load_model

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def generate(z: np.ndarray) -> np.ndarray:
        return session.run(None, {"latent": z})[0].round().clip(0, 255).astype(np.uint8)

    docs.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(generate(latents(64, 0)))).save(docs / "dcgan_samples.png")

    detector = MtcnnDetector(load_model(model_repo, "mtcnn"))
    embedder_model = load_model(model_repo, "dlib_resnet")
    embedder, template = EmbeddingModel(embedder_model), np.array(embedder_model.config.crop.template)

    def detect_and_crop(images: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
        counts, crops = [], []
        for image in images:
            big = cv2.resize(image, (128, 128), interpolation=cv2.INTER_CUBIC)
            found = detector.detect(big)
            counts.append(len(found))
            if found:
                face = max(found, key=lambda f: f.area)
                crops.append(align_face(big, face.landmarks, 150, template=template))
        return counts, crops

    generated = generate(latents(500, 0))
    counts, crops = detect_and_crop(generated)
    fake_embeddings = embedder.embed(np.stack(crops[:200])) if crops else np.zeros((0, embedder.dim), np.float32)
    rng, per_set = np.random.default_rng(0), 200 // len(real_sets)
    real_counts, real_embeddings, per_source = [], [], {}
    for name, faces in real_sets.items():
        set_counts, set_crops = detect_and_crop(faces[rng.choice(len(faces), per_set, replace=False)])
        set_embeddings = embedder.embed(np.stack(set_crops))
        real_counts += set_counts
        real_embeddings.append(set_embeddings)
        per_source[name] = {
            "exactly_one_face_share": round(float((np.array(set_counts) == 1).mean()), 4),
            "framed_share": framed_share(faces[:500]),
            "diversity": round(pairwise_cosine_distance(set_embeddings), 4),
            "faces": len(set_embeddings),
        }
    real_embeddings = np.concatenate(real_embeddings)

    speed = {}
    for batch in (1, 16):
        z = latents(batch, 1)
        for _ in range(3):
            generate(z)
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < 2.0:
            generate(z)
            runs += 1
        speed[f"ms_per_face_batch{batch}"] = round((time.perf_counter() - started) * 1000 / runs / batch, 3)

    counts_arr = np.array(counts)
    return {
        "generated": len(counts),
        "exactly_one_face_share": round(float((counts_arr == 1).mean()), 4),
        "no_face_share": round(float((counts_arr == 0).mean()), 4),
        "several_faces_share": round(float((counts_arr > 1).mean()), 4),
        "framed_share": framed_share(generated),
        "real_exactly_one_face_share": round(float((np.array(real_counts) == 1).mean()), 4),
        "diversity_generated": round(pairwise_cosine_distance(fake_embeddings), 4),
        "diversity_generated_faces": len(fake_embeddings),
        "diversity_real": round(pairwise_cosine_distance(real_embeddings), 4),
        "diversity_real_faces": len(real_embeddings),
        "real_per_source": per_source,
        "speed_ort_1_thread": speed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--faces", type=Path, default=REPO / ".cache" / "train-attributes" / "crops.npz")
    parser.add_argument("--utkface-faces", type=Path, default=REPO / ".cache" / "train-dcgan" / "utkface-crops.npz")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-dcgan")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget for training")
    parser.add_argument("--sets", default="celeba", help="celeba, or celeba,utkface for the balanced mix")
    parser.add_argument("--width", type=int, default=WIDTH, help="ngf = ndf")
    parser.add_argument("--mix", type=float, default=1.0,
                        help="faces of each further set per epoch, as a share of the first set's")  # fmt: skip
    parser.add_argument("--use-epoch", type=int, default=0, help="export this epoch's generator (0: the last)")
    parser.add_argument("--steps", default="train,export,evaluate")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--d-lr", type=float, default=2e-4, help="the discriminator's learning rate")
    parser.add_argument("--r1", type=float, default=0.0, help="R1 penalty weight γ on real images (0: none)")
    parser.add_argument("--init-from", type=Path, help="start the generator from this exported model.onnx")
    parser.add_argument("--d-warmup", type=int, default=0,
                        help="steps of the first epoch in which the discriminator trains alone")  # fmt: skip
    parser.add_argument("--mask-frames", action=argparse.BooleanOptionalAction, default=False,
                        help="the discriminator never judges the aligner's black frame (see train)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "dcgan_faces")
    args = parser.parse_args()
    torch.set_num_threads(2)
    steps = set(args.steps.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    loaders = {"celeba": lambda: load_faces(args.data, args.faces),
               "utkface": lambda: load_utkface(args.data, args.utkface_faces)}  # fmt: skip
    real = {name: loaders[name]() for name in args.sets.split(",")}
    print(", ".join(f"{len(faces)} aligned {name} faces" for name, faces in real.items()), flush=True)
    if "train" in steps:
        train(list(real.values()), args.work, args)
    metrics: dict = {}
    if "export" in steps:
        epoch = args.use_epoch or max(int(p.stem.split("_")[1]) for p in args.work.glob("generator_*.pt"))
        g = Generator(args.width)
        g.load_state_dict(torch.load(args.work / f"generator_{epoch:03d}.pt"))
        path = export_onnx(g, args.out)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        metrics |= {"epoch": epoch, "sha256": digest, "bytes": path.stat().st_size}
    if "evaluate" in steps:
        metrics |= {"train_faces": {name: len(faces) for name, faces in real.items()}}
        metrics |= evaluate(REPO / "model-repo", args.out / "model.onnx", real, REPO / "docs")
    if metrics:
        (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
