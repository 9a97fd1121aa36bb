// The web chat: one request per turn or command, the reply's words, feeling and voice inline.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), statusLine = $("status");

function userId() {
  let id = localStorage.getItem("heartline-user");
  if (!id) {
    id = crypto.randomUUID().replaceAll("-", "");
    localStorage.setItem("heartline-user", id);
  }
  return id;
}

function bubble(kind, text) {
  const div = document.createElement("div");
  div.className = `turn ${kind}`;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function showReply(result) {
  const div = bubble("bot", result.response);
  div.dataset.testid = "reply";
  if (result.emotion_analysis) {
    const fused = result.emotion_analysis.fused_emotion;
    const emotion = document.createElement("div");
    emotion.className = "emotion";
    emotion.textContent = `I sense: ${fused.primary_emotion} (${Math.round(fused.confidence * 100)}%, ${fused.source.replace("_", " ")})`;
    div.appendChild(emotion);
  }
  if (result.reply_audio && result.reply_audio.url) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = result.reply_audio.url;
    div.appendChild(audio);
    audio.play().catch(() => {});  // autoplay may be blocked until the user interacts
  }
}

// Sends one message (text, audio, image) and returns the server's answer as {ok, body}.
async function post(fields) {
  const form = new FormData();
  form.append("user", userId());
  form.append("message_id", crypto.randomUUID());
  for (const [name, value] of Object.entries(fields)) {
    if (value instanceof Blob) form.append(name, value, value.name || name);
    else if (value) form.append(name, value);
  }
  try {
    const response = await fetch("/api/turn", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
    return { ok: response.ok, body };
  } catch (error) {
    return { ok: false, body: { error: "I couldn't reach Heartline. Is it still running?" } };
  }
}

async function command(text) {
  const { ok, body } = await post({ text });
  if (ok) bubble("bot", body.response);
  else bubble("error", body.error);
  return body;
}

// -- recording ---------------------------------------------------------------------------

async function record(button, idleLabel) {
  // Resolves with the recorded File when the user presses the button again.
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const type = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus"].find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const done = new Promise((resolve) => {
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      const mime = recorder.mimeType || "audio/webm";
      resolve(new File(chunks, mime.includes("ogg") ? "voice-note.ogg" : "voice-note.webm", { type: mime }));
    };
  });
  button.classList.add("recording");
  button.textContent = "■ Stop";
  button.onclick = () => recorder.stop();
  recorder.start();
  const file = await done;
  button.classList.remove("recording");
  button.textContent = idleLabel;
  return file;
}

let recorded = null;

$("record").addEventListener("click", async function start() {
  const button = $("record");
  button.removeEventListener("click", start);
  try {
    statusLine.textContent = "Recording… press Stop when you're done.";
    recorded = await record(button, "🎙 Record");
    statusLine.textContent = "Voice note ready: press Send.";
  } catch (error) {
    statusLine.textContent = "No microphone available (the browser needs permission).";
  } finally {
    button.onclick = null;
    button.addEventListener("click", start);
  }
});

// -- camera mood ---------------------------------------------------------------------------

let cameraFrame = null, cameraTimer = null;

async function startCamera() {
  const video = $("preview");
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  await video.play();
  video.hidden = false;
  const grab = () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => { cameraFrame = blob && new File([blob], "camera.jpg", { type: "image/jpeg" }); },
                  "image/jpeg", 0.8);
  };
  grab();
  cameraTimer = setInterval(grab, 4000);
}

function stopCamera() {
  clearInterval(cameraTimer);
  const video = $("preview");
  if (video.srcObject) video.srcObject.getTracks().forEach((track) => track.stop());
  video.srcObject = null; video.hidden = true; cameraFrame = null;
}

$("camera").addEventListener("change", async (event) => {
  if (!event.target.checked) return stopCamera();
  const agreed = confirm("Camera mood: every few seconds this page takes a frame from your camera, " +
    "and the latest one goes with your next message so Heartline can see your expression. " +
    "Frames are not stored. Turn it on?");
  if (!agreed) { event.target.checked = false; return; }
  try { await startCamera(); } catch (error) {
    event.target.checked = false;
    statusLine.textContent = "No camera available (the browser needs permission).";
  }
});

// -- chatting ------------------------------------------------------------------------------

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  const audio = recorded || $("audio").files[0];
  const image = $("image").files[0] || cameraFrame;
  if (!text && !audio && !image) return;
  bubble("user", [text, audio && "🎙 voice note", $("image").files[0] && "📷 selfie"].filter(Boolean).join(" · "));
  $("text").value = ""; $("audio").value = ""; $("image").value = ""; recorded = null;
  $("send").disabled = true;
  statusLine.textContent = "Heartline is listening…";
  const { ok, body } = await post({ text, audio, image });
  if (!ok) bubble("error", body.error);
  else showReply(body);
  $("send").disabled = false;
  statusLine.textContent = "";
});

$("persona").addEventListener("change", (event) => {
  if (event.target.value !== "custom") return command(`/persona ${event.target.value}`);
  const role = prompt("Who should I be? For example: a calm coach who asks good questions");
  if (role && role.trim()) command(`/persona custom ${role.trim()}`);
});
$("voice").addEventListener("change", (event) => command(`/voice ${event.target.checked ? "on" : "off"}`));

// -- teaching Heartline your voice ------------------------------------------------------------

const training = $("training"), trainingStatus = $("training-status");

$("open-training").addEventListener("click", () => training.showModal());
$("consent").addEventListener("change", async (event) => {
  if (!event.target.checked) return;
  const { body } = await post({ text: "/voice train" });
  trainingStatus.textContent = body.response || body.error;
  $("clip").disabled = false; $("finish").disabled = false;
});
$("clip").addEventListener("click", async function start() {
  const button = $("clip");
  button.removeEventListener("click", start);
  try {
    const clip = await record(button, "🎙 Record a clip");
    trainingStatus.textContent = "Checking that clip…";
    const { ok, body } = await post({ audio: clip });
    trainingStatus.textContent = ok ? body.response : body.error;
  } catch (error) {
    trainingStatus.textContent = "No microphone available (the browser needs permission).";
  } finally {
    button.onclick = null;
    button.addEventListener("click", start);
  }
});
$("finish").addEventListener("click", async () => {
  trainingStatus.textContent = "Learning your voice… this can take a minute.";
  const { ok, body } = await post({ text: "/voice done" });
  trainingStatus.textContent = ok ? body.response : body.error;
});
$("cancel-training").addEventListener("click", async () => {
  if ($("consent").checked && !$("finish").disabled) await post({ text: "/voice cancel" });
  $("consent").checked = false; $("clip").disabled = true; $("finish").disabled = true;
  training.close();
});
$("delete-voice").addEventListener("click", async () => {
  const { body } = await post({ text: "/voice delete" });
  trainingStatus.textContent = body.response || body.error;
});
