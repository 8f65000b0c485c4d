"""Load a model from model-repo/<name>/: its config.toml (files, parameters, labels, crop), its card, its weights."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from services.runtime.backends import BackendKind, BackendOptions, InferenceBackend, create_backend, served_name


class CropConfig(BaseModel):
    """The crop the model was trained on (see CropSpec in common.proto): `aligned`, five landmarks onto a template
    (size, padding, template), or `box`, the detector's face box scaled about its centre (size, scale, square,
    level_eyes, inside)."""

    name: str
    kind: Literal["aligned", "box"] = "aligned"
    size: int = Field(gt=0, le=1024)
    padding: float = Field(default=0.0, ge=0.0, le=1.0)
    # Five (x, y) landmark positions as fractions of the crop side; empty: the standard template with padding.
    template: list[tuple[float, float]] = Field(default=[], min_length=0, max_length=5)
    # box: the multiplier of the box's sides about its centre.
    scale: float = Field(default=1.0, gt=0.0)
    # box: a square on the box's longer side before scaling.
    square: bool = False
    # box: turned about its centre so that the detector's eye line is level.
    level_eyes: bool = False
    # box: shifted, and shrunk when needed, to stay inside the image (MiniFASNet's AffineCrop); else the border is
    # replicated outside the image.
    inside: bool = False

    @field_validator("template")
    @classmethod
    def _five_points_in_the_crop(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if value and (len(value) != 5 or not all(-0.5 <= c <= 1.5 for point in value for c in point)):
            raise ValueError("a template is five (x, y) points given as fractions of the crop side")
        return value

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> CropConfig:
        if self.kind == "box" and (self.template or self.padding):
            raise ValueError("a box crop takes no template or padding (those are an aligned crop's)")
        if self.kind == "aligned" and (self.scale != 1.0 or self.square or self.level_eyes or self.inside):
            raise ValueError("an aligned crop takes no scale, square, level_eyes or inside (those are a box crop's)")
        if self.inside and self.level_eyes:
            raise ValueError("an inside crop is not turned (MiniFASNet's AffineCrop is upright)")
        return self

    def flat_template(self) -> list[float]:
        return [c for point in self.template for c in point]


class RefineConfig(BaseModel):
    """A step between the crop and the network: landmarks found again inside the crop, and the crop warped onto the
    alignment the network was trained with (dlib_resnet: dlib's 5-point shape predictor and get_face_chip, run by
    services/embedder/shape.py)."""

    method: Literal["dlib_shape_5"]
    # The predictor's arrays, a file of the model folder (model-repo/recipes/dlib_shape_export.py writes them).
    predictor: str
    # The face box the predictor starts from: its centre x, centre y and side, as fractions of the crop side.
    box: tuple[float, float, float]
    # The chip the network takes: its side in pixels and dlib's padding (get_face_chip's `size` and `padding`).
    chip_size: int = Field(gt=0, le=1024)
    chip_padding: float = Field(default=0.25, ge=0.0, le=1.0)
    # A crop whose chip corners would move by more than this fraction of its side is passed on unchanged.
    max_change: float = Field(default=0.25, gt=0.0, le=1.0)


class BatchingConfig(BaseModel):
    max_batch_size: int = Field(default=1, ge=1)
    max_delay_ms: float = Field(default=0.0, ge=0.0)


class ModelConfig(BaseModel):
    name: str
    version: str
    # Logical name -> ONNX file inside the model folder.
    files: dict[str, str]
    labels: list[str] = []
    crop: CropConfig | None = None
    refine: RefineConfig | None = None
    batching: BatchingConfig = BatchingConfig()
    # Read as a table here, typed by the code that runs the model: each family's params class (`params_of`).
    params: dict[str, Any] = {}
    # The backends the files run on; empty: every backend. An int8 variant (recipes.quantize) runs on ONNX Runtime
    # in-process only: the torch backend and TF Serving have no quantised operators, and it was measured nowhere else.
    runs_on: list[BackendKind] = []


@dataclass(frozen=True)
class LoadedModel:
    config: ModelConfig
    backends: dict[str, InferenceBackend]
    card: str
    directory: Path | None = None  # the model folder, for files that are not networks (RefineConfig.predictor)


# What every [params] class is: unknown keys are refused (a misspelt key would otherwise fall back to a default
# unnoticed) and a checked table is not changed afterwards.
PARAMS_CONFIG = ConfigDict(extra="forbid", frozen=True)


class ModelParams(BaseModel):
    """Base of a model family's [params] class (EmbedderParams, GeneratorParams, ...), read by `params_of`."""

    model_config = PARAMS_CONFIG


class ModelConfigError(ValueError):
    """A model folder's config.toml does not hold what the code that runs the model needs."""


Params = TypeVar("Params")


def params_of(model: LoadedModel, kind: type[Params]) -> Params:
    """The model's [params] table checked as `kind` (a ModelParams, or a pydantic dataclass with PARAMS_CONFIG): each
    family's code calls it as it takes the loaded model, so a service stops at start-up on a table it cannot read,
    with the folder and every bad key named."""
    try:
        return TypeAdapter(kind).validate_python(model.config.params)
    except ValidationError as exc:
        where = (model.directory or Path(model.config.name)) / "config.toml"
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ModelConfigError(f"{where} [params] ({kind.__name__}): {problems}") from exc


def _problem(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "[params]"
    if error["type"] in ("missing", "missing_argument"):
        return f"{key}: missing"
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{key}: unknown key"
    given = repr(error["input"])
    given = given if len(given) <= 60 else f"{given[:57]}..."
    return f"{key}: {error['msg'].removeprefix('Value error, ')} (got {given})"


def read_config(model_dir: Path) -> ModelConfig:
    with (model_dir / "config.toml").open("rb") as f:
        return ModelConfig.model_validate(tomllib.load(f))


def load_model(model_repo: Path, name: str, backend: BackendOptions | None = None) -> LoadedModel:
    """The model folder's config, card and one backend per file (ONNX Runtime in-process unless told otherwise)."""
    options = backend or BackendOptions()
    model_dir = model_repo / name
    config = read_config(model_dir)
    if config.runs_on and options.kind not in config.runs_on:
        raise ModelConfigError(
            f"{model_dir / 'config.toml'}: {name} runs on {', '.join(config.runs_on)} only, not {options.kind}"
        )
    card = (model_dir / "card.md").read_text()
    backends = {
        key: create_backend(options, model_dir / filename, served_name(config.name, key))
        for key, filename in config.files.items()
    }
    return LoadedModel(config=config, backends=backends, card=card, directory=model_dir)


INT8_SUFFIX = "_int8"


def preferred_model(model_repo: Path, name: str, backend: BackendKind, int8: bool) -> str:
    """The folder a service runs for its model setting `name`: the model's int8 variant (`<name>_int8`, made by
    recipes.quantize and shipped as the default where it costs at most 0.3 points on its dev figure) when `int8`
    is on and the variant runs on `backend`, else `name` itself."""
    variant = model_repo / f"{name}{INT8_SUFFIX}"
    if not int8 or not (variant / "config.toml").exists():
        return name
    runs_on = read_config(variant).runs_on
    return variant.name if not runs_on or backend in runs_on else name


def served_files(model_repo: Path, models: list[str] | None = None) -> dict[str, Path]:
    """Served name → ONNX file, for every file of every model folder (or of the named ones) that a model server may
    hold (not those that run in-process only, `runs_on`): what a model server must hold for the services to run
    on it."""
    out = {}
    for config_path in sorted(model_repo.glob("*/config.toml")):
        config = read_config(config_path.parent)
        if config.runs_on and not set(config.runs_on) - {"onnx", "torch"}:
            continue
        if models is None or config.name in models:
            for key, filename in config.files.items():
                out[served_name(config.name, key)] = config_path.parent / filename
    return out
