// The spoken answer's player (app/voice_player.py says why and what the messages are).
// Runs as the js_on_load of a hidden gr.HTML whose value is the server's newest message:
// `props.value`, read by `watch('value', ...)`. Web Audio plays each piece as soon as it
// arrives, gapless after the one before. window.lunettesVoice is the page's view of it: the
// page script (web_page.py) asks whether it is playing and stops it at a click, at once.
// Each start, stop and hold is announced as a 'lunettes-voice' event on window, with the
// page's clock (performance.now) of the moment: the benches and tests read them.
if (!window.lunettesVoice) {
  const MUTE_MS = 1500;  // the server's own stop follows a click well within this
  const announce = (state, at) =>
    window.dispatchEvent(new CustomEvent('lunettes-voice', {detail: {state, at}}));
  const voice = {
    context: null,
    sources: [],       // the pieces scheduled and not yet ended
    until: 0,          // the context's time at which the last scheduled piece ends
    stoppedAt: 0,      // seq of the last stop: an older piece arrived late, and is dropped
    mutedUntil: 0,     // a click stopped it here: pieces on their way meanwhile are dropped
    controlAt: 0,      // seq of the last hold or go_on obeyed
    held: false,
    played: 0,         // pieces started so far (tests read it)
    ensureContext() {
      if (!this.context) this.context = new AudioContext();
      if (this.context.state === 'suspended' && !this.held) this.context.resume();
      return this.context;
    },
    playing() {
      return this.sources.length > 0 && !this.held;
    },
    play(message) {
      if (message.seq < this.stoppedAt || performance.now() < this.mutedUntil) return;
      const context = this.ensureContext();
      const bytes = Uint8Array.from(atob(message.pcm), (c) => c.charCodeAt(0));
      const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
      if (!pcm.length) return;
      const buffer = context.createBuffer(1, pcm.length, message.rate);
      const samples = buffer.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      const starting = this.sources.length === 0;
      const when = Math.max(context.currentTime + 0.01, this.until);
      source.start(when);
      this.until = when + buffer.duration;
      this.sources.push(source);
      this.played += 1;
      source.onended = () => {
        this.sources = this.sources.filter((s) => s !== source);
        if (!this.sources.length) announce('end', performance.now());
      };
      if (starting) announce('start', performance.now() + (when - context.currentTime) * 1000);
    },
    stop(seq) {  // seq: the server's stop; none: the page's own (a click), before the server's
      if (seq === undefined) this.mutedUntil = performance.now() + MUTE_MS;
      else {
        this.stoppedAt = Math.max(this.stoppedAt, seq);
        this.mutedUntil = 0;
      }
      const had = this.sources.length > 0;
      for (const source of this.sources) {
        source.onended = null;
        try { source.stop(); } catch (error) { /* not started yet */ }
      }
      this.sources = [];
      this.until = 0;
      if (this.held && this.context) this.context.resume();
      this.held = false;
      if (had) announce('stop', performance.now());
    },
    hold(seq) {
      if (seq < this.controlAt) return;
      this.controlAt = seq;
      if (!this.held && this.context) {
        this.held = true;
        this.context.suspend();
        if (this.sources.length) announce('hold', performance.now());
      }
    },
    goOn(seq) {
      if (seq < this.controlAt) return;
      this.controlAt = seq;
      if (this.held) {
        this.held = false;
        this.context.resume();
        if (this.sources.length) announce('go_on', performance.now());
      }
    },
  };
  window.lunettesVoice = voice;
  // Browsers start audio only after the person has touched the page: the first touch, click
  // or key makes the player ready (a hands-free wearer has clicked Record by then).
  const ready = () => voice.ensureContext();
  for (const kind of ['pointerdown', 'keydown']) {
    document.addEventListener(kind, ready, {capture: true, once: true});
  }
}
watch('value', () => {
  let message;
  try {
    message = JSON.parse(props.value || 'null');
  } catch (error) {
    return;
  }
  if (!message) return;
  const voice = window.lunettesVoice;
  if (message.kind === 'play') voice.play(message);
  else if (message.kind === 'stop') voice.stop(message.seq);
  else if (message.kind === 'hold') voice.hold(message.seq);
  else if (message.kind === 'go_on') voice.goOn(message.seq);
});
