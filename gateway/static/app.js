// faceplane demo: plain JavaScript against the REST API of the same origin.
"use strict";

const $ = (id) => document.getElementById(id);

document.querySelectorAll("nav button").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll("nav button, .tab").forEach((el) => el.classList.remove("active"));
    button.classList.add("active");
    $(button.dataset.tab).classList.add("active");
  });
});

// The key stays in this browser (localStorage) and goes with every call.
$("api-key").value = localStorage.getItem("faceplane-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("faceplane-api-key", $("api-key").value));

async function call(path, options = {}) {
  const key = $("api-key").value;
  const headers = { ...(options.headers || {}), ...(key ? { Authorization: `Bearer ${key}` } : {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || { code: String(response.status), message: response.statusText };
    throw new Error(`${error.code}: ${error.message}`);
  }
  return body;
}

function form(fields) {
  const data = new FormData();
  for (const [name, value] of Object.entries(fields)) data.append(name, value);
  return data;
}

function show(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

// ---- analyze: boxes and landmarks over the photo, one card per face
function describe(face) {
  const parts = [];
  if (face.emotion) parts.push(`${face.emotion.label}`);
  if (face.age) parts.push(`age ${Math.round(face.age.value)}`);
  if (face.gender) parts.push(`${face.gender.label} (${face.gender.score.toFixed(2)})`);
  if (face.mask) parts.push(face.mask.label === "mask" ? "mask" : "no mask");
  const attributes = Object.entries(face.attributes || {}).filter(([, p]) => p >= 0.5).map(([name]) => name.replace(/_/g, " "));
  if (attributes.length) parts.push(attributes.join(", "));
  if (face.quality) parts.push(`quality ${face.quality.score.toFixed(2)} (sharpness ${face.quality.sharpness.toFixed(2)}, brightness ${face.quality.brightness.toFixed(2)})`);
  if (face.liveness) parts.push(`${face.liveness.label === "real" ? "real face" : "spoof?"} (${face.liveness.score.toFixed(2)})`);
  if (face.pose) parts.push(`yaw ${Math.round(face.pose.yaw)}° pitch ${Math.round(face.pose.pitch)}° roll ${Math.round(face.pose.roll)}°`);
  if (face.errors) parts.push(`missing: ${Object.keys(face.errors).join(", ")}`);
  return parts.join(" · ");
}

function draw(bitmap, faces) {
  const canvas = $("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const line = Math.max(2, bitmap.width / 400);
  ctx.lineWidth = line;
  ctx.font = `${Math.max(14, bitmap.width / 60)}px system-ui`;
  faces.forEach((face, i) => {
    const { x, y, width, height } = face.box;
    ctx.strokeStyle = ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--box");
    ctx.strokeRect(x, y, width, height);
    ctx.fillText(String(i + 1), x, Math.max(12, y - line * 2));
    ctx.fillStyle = "#f59e0b";
    for (const [px, py] of Object.values(face.landmarks || {})) {
      ctx.beginPath();
      ctx.arc(px, py, line * 1.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
  canvas.dataset.boxes = String(faces.length);
}

async function analyze(file) {
  show("analyze-status", "analysing …");
  $("faces").replaceChildren();
  try {
    // The browser shows the photo upright (EXIF applied); the API's boxes are in that orientation too.
    const [bitmap, answer] = await Promise.all([
      createImageBitmap(file, { imageOrientation: "from-image" }),
      call("/v1/analyze?features=emotion,age,gender,mask,attributes,quality,liveness,pose", { method: "POST", body: form({ image: file }) }),
    ]);
    draw(bitmap, answer.faces);
    for (const [i, face] of answer.faces.entries()) {
      const item = document.createElement("li");
      item.innerHTML = `<b>${i + 1}</b>`;
      item.append(describe(face));
      $("faces").append(item);
    }
    show("analyze-status", `${answer.faces.length} face${answer.faces.length === 1 ? "" : "s"}`);
  } catch (error) {
    show("analyze-status", error.message, true);
  }
}

$("analyze-file").addEventListener("change", (event) => event.target.files[0] && analyze(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) analyze(event.dataTransfer.files[0]);
});

// ---- verify
$("verify-go").addEventListener("click", async () => {
  const [a, b] = [$("verify-1").files[0], $("verify-2").files[0]];
  if (!a || !b) return show("verify-result", "choose two photos", true);
  show("verify-result", "comparing …");
  try {
    const v = await call("/v1/verify", { method: "POST", body: form({ image1: a, image2: b }) });
    show("verify-result", `${v.match ? "Same person" : "Different people"} — similarity ${v.similarity.toFixed(3)} (threshold ${v.threshold.toFixed(3)})`);
  } catch (error) {
    show("verify-result", error.message, true);
  }
});

// ---- enrol & identify
const collectionPath = () => `/v1/collections/${encodeURIComponent($("collection").value)}`;

$("enrol-go").addEventListener("click", async () => {
  const file = $("enrol-file").files[0];
  const subject = $("subject").value;
  if (!file || !subject) return show("identify-status", "a person id and a photo are needed", true);
  try {
    await call(`${collectionPath()}/subjects`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ subject_id: subject, name: $("subject-name").value }),
    }).catch((error) => { if (!error.message.startsWith("already_exists")) throw error; });
    const e = await call(`${collectionPath()}/subjects/${encodeURIComponent(subject)}/faces`, { method: "POST", body: form({ image: file }) });
    show("identify-status", `enrolled face ${e.face_id} for ${subject}`);
  } catch (error) {
    show("identify-status", error.message, true);
  }
});

$("identify-go").addEventListener("click", async () => {
  const file = $("identify-file").files[0];
  if (!file) return show("identify-status", "choose a photo", true);
  $("identify-result").replaceChildren();
  try {
    const answer = await call(`${collectionPath()}/identify`, { method: "POST", body: form({ image: file }) });
    for (const [i, face] of answer.faces.entries()) {
      const item = document.createElement("li");
      const best = face.matches[0];
      item.innerHTML = `<b>${i + 1}</b>`;
      item.append(best ? `${best.name || best.subject_id} (similarity ${best.similarity.toFixed(3)})` : "nobody enrolled");
      $("identify-result").append(item);
    }
    show("identify-status", `${answer.faces.length} face(s)`);
  } catch (error) {
    show("identify-status", error.message, true);
  }
});

// ---- generate
$("generate-go").addEventListener("click", async () => {
  const body = { count: Number($("count").value) };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  try {
    const answer = await call("/v1/generate", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    $("generated").replaceChildren(...answer.images.map((png) => Object.assign(new Image(), { src: `data:image/png;base64,${png}`, alt: "generated face" })));
    show("generate-status", `seed ${answer.seed}`);
  } catch (error) {
    show("generate-status", error.message, true);
  }
});

// ---- live: webcam frames over a websocket; the server drops frames it cannot keep up with
let live = null;

async function startLive() {
  const video = $("video");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  video.srcObject = stream;
  await video.play();
  const key = $("api-key").value;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream?features=emotion,age,gender${key ? `&key=${encodeURIComponent(key)}` : ""}`;
  const socket = new WebSocket(url);
  const grab = document.createElement("canvas");
  let answered = 0;
  let waiting = false;
  live = { stream, socket, timer: null };
  socket.onmessage = (event) => {
    waiting = false;
    const answer = JSON.parse(event.data);
    if (answer.error && answer.frame === undefined) return show("live-status", `${answer.error.code}: ${answer.error.message}`, true);
    answered += 1;
    const overlay = $("overlay");
    overlay.width = video.videoWidth;
    overlay.height = video.videoHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.lineWidth = 3;
    ctx.font = "16px system-ui";
    for (const face of answer.faces || []) {
      const { x, y, width, height } = face.box;
      ctx.strokeStyle = ctx.fillStyle = "#22c55e";
      ctx.strokeRect(x, y, width, height);
      ctx.fillText(`#${face.track_id} ${describe(face)}`, x, Math.max(16, y - 6));
    }
    $("live-status").dataset.answered = String(answered);
    show("live-status", `${answered} frames answered, ${answer.dropped} dropped, ${(answer.faces || []).length} face(s)`);
  };
  socket.onopen = () => {
    // Up to 10 frames a second, and never more than one waiting for its answer.
    live.timer = setInterval(() => {
      if (waiting || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
      grab.width = video.videoWidth;
      grab.height = video.videoHeight;
      grab.getContext("2d").drawImage(video, 0, 0);
      grab.toBlob((blob) => { waiting = true; socket.send(blob); }, "image/jpeg", 0.8);
    }, 100);
  };
  socket.onclose = () => stopLive();
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
}

function stopLive() {
  if (!live) return;
  clearInterval(live.timer);
  live.stream.getTracks().forEach((track) => track.stop());
  if (live.socket.readyState === WebSocket.OPEN) live.socket.close();
  live = null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("live-start").addEventListener("click", () => startLive().catch((error) => show("live-status", error.message, true)));
$("live-stop").addEventListener("click", stopLive);

// ---- video: a job (POST /v1/videos), polled until it is done; one card per tracked face
let videoRun = null; // the upload being followed: choosing another video stops following the last
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function summarise(summary) {
  return Object.entries(summary).map(([name, s]) => (s.label !== undefined
    ? `${name} ${s.label} (${Math.round(s.share * 100)}% of frames)`
    : `${name} ${Object.entries(s).map(([k, v]) => (k === "value" ? Math.round(v) : `${k} ${v.toFixed(2)}`)).join(", ")}`));
}

function showTracks(result) {
  for (const track of result.tracks) {
    const item = document.createElement("li");
    const who = track.identity ? `${track.identity.name || track.identity.subject_id} (similarity ${track.identity.similarity.toFixed(3)})` : "unknown";
    item.innerHTML = `<b>#${track.track_id}</b>`;
    item.append([`${track.start_s.toFixed(1)}–${track.end_s.toFixed(1)} s`, who, ...summarise(track.summary)].join(" · "));
    $("video-tracks").append(item);
  }
  const n = result.tracks.length;
  show("video-status", `${n} track${n === 1 ? "" : "s"}, ${result.frames_analyzed} frames analysed of ${result.duration_s.toFixed(1)} s`);
}

async function analyseVideo(file) {
  const run = {};
  videoRun = run;
  const features = [...document.querySelectorAll("#video-features input:checked")].map((box) => box.value);
  const collection = $("video-collection").value;
  const query = new URLSearchParams({ ...(collection ? { collection } : {}), ...(features.length ? { features: features.join(",") } : {}) });
  const progress = $("video-progress");
  $("video-tracks").replaceChildren();
  progress.value = 0;
  progress.hidden = false;
  show("video-status", "uploading …");
  try {
    const { job_id: id } = await call(`/v1/videos?${query}`, { method: "POST", body: form({ video: file }) });
    for (;;) {
      const job = await call(`/v1/videos/${id}`);
      if (videoRun !== run) return;
      progress.value = job.progress;
      if (job.status === "done") return showTracks(job.result);
      if (job.status === "failed") return show("video-status", `${job.error.code}: ${job.error.message}`, true);
      show("video-status", `${job.status} … ${Math.round(job.progress * 100)}%`);
      await sleep(500);
    }
  } catch (error) {
    if (videoRun !== run) return;
    progress.hidden = true;
    show("video-status", error.message, true);
  }
}

$("video-go").addEventListener("click", () => {
  const file = $("video-file").files[0];
  if (!file) return show("video-status", "choose a video", true);
  analyseVideo(file);
});
