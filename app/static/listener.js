// Hands-free listening in the page (app/listening.py says why, and what the messages are).
// Runs as the js_on_load of the hands-free gr.HTML (web.py), whose value is the session's
// listening key, asked for at the first Record. Record opens the microphone (with the browser's echo cancellation, so the
// answer's own voice is not heard) and a WebSocket to /listen/{key}; an AudioWorklet sends
// the microphone as 16-bit PCM every CHUNK_S. The server's messages: 'asked' -> this
// component's submit event (Gradio then answers, with the camera frame); 'heard' -> its
// input event (the status line shows the words so far); hold / go_on / stop -> the voice
// player (static/voice_player.js). Stop, or a closed connection, closes both.
const CHUNK_S = 0.064;
const WORKLET = `
const CHUNK = Math.round(sampleRate * ${CHUNK_S});
class LunettesMicrophone extends AudioWorkletProcessor {
  constructor() { super(); this.chunk = new Int16Array(CHUNK); this.filled = 0; }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      const v = Math.max(-1, Math.min(1, input[i]));
      this.chunk[this.filled++] = v < 0 ? v * 32768 : v * 32767;
      if (this.filled === CHUNK) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
        this.chunk = new Int16Array(CHUNK);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor('lunettes-microphone', LunettesMicrophone);
`;
const MICROPHONE = {audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true,
                            channelCount: 1}};
let listening = null;  // {stream, context, socket} while the microphone is open

const button = () => element.querySelector('button.lunettes-listen');
const show = () => {  // the button says what a click does
  const control = button();
  if (control) control.textContent = listening ? 'Stop' : 'Record';
};
const problem = (message) => window.lunettesReport?.('microphone', 'ListeningLost', message);

// A 16 kHz context spares resampling; a browser that cannot feed the microphone into one
// (Firefox) gets its own rate, which the server resamples.
async function microphoneInto(stream, rate) {
  const context = rate ? new AudioContext({sampleRate: rate}) : new AudioContext();
  try {
    const source = context.createMediaStreamSource(stream);
    const url = URL.createObjectURL(new Blob([WORKLET], {type: 'text/javascript'}));
    await context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    const node = new AudioWorkletNode(context, 'lunettes-microphone');
    source.connect(node);
    return {context, node};
  } catch (error) {
    context.close();
    if (rate) return microphoneInto(stream, 0);
    throw error;
  }
}

function handle(message) {
  const voice = window.lunettesVoice;
  if (message.kind === 'asked') {
    // The answer (submit) and its voice (play): two triggers, as Gradio's page runs the
    // listeners of one trigger one after the other, each to its end.
    trigger('submit');
    trigger('play');
  }
  else if (message.kind === 'heard') trigger('input');
  else if (message.kind === 'hold') voice?.hold(message.seq);
  else if (message.kind === 'go_on') voice?.goOn(message.seq);
  else if (message.kind === 'stop') voice?.stop(message.seq);
}

async function start() {
  const key = props.value;
  if (listening || !key) return;
  const mine = listening = {};
  show();
  try {
    mine.stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
    const {context, node} = await microphoneInto(mine.stream, 16000);
    mine.context = context;
    if (listening !== mine) throw new Error('stopped meanwhile');
    const address = new URL(`listen/${encodeURIComponent(key)}`, document.baseURI);
    address.protocol = address.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = mine.socket = new WebSocket(address);
    socket.binaryType = 'arraybuffer';
    let open = false;
    socket.onopen = () => {
      socket.send(JSON.stringify({rate: Math.round(context.sampleRate)}));
      open = true;
    };
    node.port.onmessage = (event) => { if (open) socket.send(event.data); };
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (listening !== mine) return;
      stop();
      if (event.code !== 1000) problem(event.reason || `the connection closed (${event.code})`);
    };
    trigger('start_recording');
  } catch (error) {
    if (listening === mine) stop(false);
    else close(mine);
    // getUserMedia's own failures are reported by the page script (web_page.py)
  }
}

function close(mine) {
  mine.socket?.close(1000);
  mine.stream?.getTracks().forEach((track) => track.stop());
  mine.context?.close();
}

function stop(announce = true) {
  const mine = listening;
  if (!mine) return;
  listening = null;
  close(mine);
  show();
  if (announce) trigger('stop_recording');
}

let wanted = false;  // Record was pressed before the key arrived
element.addEventListener('click', (event) => {
  if (!event.target.closest('button.lunettes-listen')) return;
  if (listening) stop();
  else if (props.value) start();
  else {
    wanted = true;
    trigger('click');  // the server answers with the key (web.py)
  }
});
watch('value', () => {  // the key arrived (and the template was drawn again)
  show();
  if (wanted) {
    wanted = false;
    start();
  }
});
show();
