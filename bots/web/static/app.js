// The web chat: one form, one request per turn, the reply's words, feeling and voice shown inline.
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
  const fused = result.emotion_analysis.fused_emotion;
  const emotion = document.createElement("div");
  emotion.className = "emotion";
  emotion.textContent = `I sense: ${fused.primary_emotion} (${Math.round(fused.confidence * 100)}%, ${fused.source.replace("_", " ")})`;
  div.appendChild(emotion);
  if (result.reply_audio && result.reply_audio.url) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = result.reply_audio.url;
    div.appendChild(audio);
    audio.play().catch(() => {});  // autoplay may be blocked until the user interacts
  }
}

let recorded = null;

async function send(event) {
  event.preventDefault();
  const form = new FormData();
  const text = $("text").value.trim();
  const audio = recorded || $("audio").files[0];
  const image = $("image").files[0];
  if (!text && !audio && !image) return;
  form.append("user", userId());
  form.append("message_id", crypto.randomUUID());
  form.append("persona", $("persona").value);
  form.append("voice", $("voice").checked ? "on" : "off");
  if (text) form.append("text", text);
  if (audio) form.append("audio", audio, audio.name || "voice-note.webm");
  if (image) form.append("image", image);
  bubble("user", [text, audio && "🎙 voice note", image && "📷 selfie"].filter(Boolean).join(" · "));
  $("text").value = ""; $("audio").value = ""; $("image").value = ""; recorded = null;
  $("send").disabled = true;
  statusLine.textContent = "Heartline is listening…";
  try {
    const response = await fetch("/api/turn", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
    if (!response.ok) bubble("error", body.error || `The server answered ${response.status}.`);
    else showReply(body);
  } catch (error) {
    bubble("error", "I couldn't reach Heartline. Is it still running?");
  } finally {
    $("send").disabled = false;
    statusLine.textContent = "";
  }
}

let recorder = null;

async function toggleRecording() {
  const button = $("record");
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus"].find((t) => MediaRecorder.isTypeSupported(t));
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      const mime = recorder.mimeType || "audio/webm";
      recorded = new File(chunks, mime.includes("ogg") ? "voice-note.ogg" : "voice-note.webm", { type: mime });
      button.classList.remove("recording");
      button.textContent = "🎙 Record";
      statusLine.textContent = "Voice note ready: press Send.";
    };
    recorder.start();
    button.classList.add("recording");
    button.textContent = "■ Stop";
    statusLine.textContent = "Recording…";
  } catch (error) {
    statusLine.textContent = "No microphone available (the browser needs permission).";
  }
}

$("composer").addEventListener("submit", send);
$("record").addEventListener("click", toggleRecording);
