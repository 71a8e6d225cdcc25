// Event actions and cues shared by the alert queue and the event detail page.
import { api } from "./api.js";

/** Acknowledge or resolve an event; returns the updated EventOut (fetched again when the API answers without it). */
export async function changeStatus(eventId, action, note) {
  const path = `/api/events/${encodeURIComponent(eventId)}/${action}`;
  const answer = await api(path, { method: "POST", body: action === "resolve" ? (note ? { note } : {}) : undefined });
  if (answer && answer.id === eventId && answer.status) return answer;
  return api(`/api/events/${encodeURIComponent(eventId)}`);
}

/** A short two-tone beep with WebAudio (created on the user's gesture that turns sound on). */
export class Beeper {
  constructor() {
    this.context = null;
  }

  enable() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!this.context && Context) this.context = new Context();
    this.context?.resume();
  }

  beep(severity = "info") {
    if (!this.context) return;
    const now = this.context.currentTime;
    const tones = severity === "critical" ? [880, 660, 880] : [660, 880];
    tones.forEach((frequency, i) => {
      const oscillator = this.context.createOscillator();
      const gain = this.context.createGain();
      oscillator.frequency.value = frequency;
      oscillator.type = "sine";
      gain.gain.setValueAtTime(0.0001, now + i * 0.16);
      gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.16 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.16 + 0.14);
      oscillator.connect(gain).connect(this.context.destination);
      oscillator.start(now + i * 0.16);
      oscillator.stop(now + i * 0.16 + 0.15);
    });
  }
}

/** Attach a clip (HLS playlist URL) to a <video>: hls.js where MSE exists, else the browser's native HLS. */
export function playClip(video, playlistUrl, onError = () => {}) {
  if (video.hls) {
    video.hls.destroy();
    video.hls = null;
  }
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ xhrSetup: (xhr) => { xhr.withCredentials = true; } });
    hls.on(Hls.Events.ERROR, (_name, data) => {
      if (data.fatal) onError(`clip cannot be played (${data.details}${data.response ? ` ${data.response.code}` : ""})`);
    });
    hls.loadSource(playlistUrl);
    hls.attachMedia(video);
    video.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = playlistUrl;
  } else {
    onError("this browser cannot play HLS and hls.js is not installed (run python -m vigil.web.vendor)");
    return;
  }
  video.play().catch(() => {});  // autoplay may be refused; the controls remain
}
