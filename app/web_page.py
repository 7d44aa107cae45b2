"""What the web page runs in the browser: keyboard shortcuts, camera and microphone problems
reported to the server, the follow-up window after a push-to-talk answer, a few styles. Loaded
by the hidden page-script component in web.py; the voice player's and the hands-free
listener's scripts are files of their own (static/voice_player.js, static/listener.js).

`trigger('change', {...})` sends an event to the server (web_actions.media_problem).
"""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
VOICE_PLAYER_JS = STATIC / "voice_player.js"
LISTENER_JS = STATIC / "listener.js"


def voice_player_script() -> str:
    """The page's voice player (app/voice_player.py), as the js_on_load of its component."""
    return VOICE_PLAYER_JS.read_text(encoding="utf-8")


def listener_script() -> str:
    """Hands-free listening in the page (app/listening.py), the js_on_load of its component."""
    return LISTENER_JS.read_text(encoding="utf-8")


PAGE_SCRIPT = r"""
if (!window.lunettesPage) {
  window.lunettesPage = true;
  const report = (device, name, message) =>
    trigger('change', {device: device, name: String(name), message: String(message || '')});
  window.lunettesReport = report;  // the hands-free listener's lost connection, too
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia) {
    // Browsers give the camera and microphone only to secure pages (https, localhost).
    report('camera', 'InsecureContext', 'navigator.mediaDevices is not available');
  } else {
    const open = media.getUserMedia.bind(media);
    media.getUserMedia = (constraints) => open(constraints).catch((error) => {
      report(constraints && constraints.video ? 'camera' : 'microphone', error.name, error.message);
      throw error;
    });
  }
  // Name each recorder's buttons after their recorder: two "Record" buttons are one too many
  // for a screen reader. Re-run on every change: the page redraws buttons (Record -> Stop).
  const prefixes = {'push-to-talk': 'Push to talk', 'hands-free': 'Hands-free listening',
                    'camera': 'Camera', 'spoken-answer': 'Spoken answer'};
  const nameControls = () => {
    for (const [id, prefix] of Object.entries(prefixes)) {
      document.querySelectorAll(`#${id} button, #${id} select`).forEach((control) => {
        const text = (control.innerText || '').trim();
        const label = control.getAttribute('aria-label') || '';
        const own = text || (label && !label.startsWith(`${prefix}: `) ? label : control.dataset.ownLabel || control.title || '');
        if (!own) return;
        control.dataset.ownLabel = own;
        if (label !== `${prefix}: ${own}`) control.setAttribute('aria-label', `${prefix}: ${own}`);
      });
    }
  };
  // Once a frame at most: the chat changes with every token written, and reading a button's
  // innerText makes the browser lay the page out there and then, on each change.
  let naming = false;
  const nameSoon = () => {
    if (naming) return;
    naming = true;
    requestAnimationFrame(() => { naming = false; nameControls(); });
  };
  new MutationObserver(nameSoon).observe(document.body, {
    childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['aria-label'],
  });
  nameControls();
  const pauseVoice = () => {  // at once; the server's own stop follows
    window.lunettesVoice?.stop();
    document.querySelectorAll('#spoken-answer audio').forEach((audio) => audio.pause());
  };
  document.addEventListener('click', (event) => {
    if (event.target.closest && event.target.closest('#stop-button, #stop-speaking, #clear-button')) {
      pauseVoice();
    }
  }, true);
  // Follow-up window: once the answer to a push-to-talk question has been written and said
  // (its voice quiet for QUIET_MS), the microphone stays open hands-free, with no button: a
  // question heard then is answered, and the window lasts FOLLOW_UP_MS past the last
  // question, answer or voice. The person's own click on hands-free (theirs from then on),
  // or on Stop, Stop speaking or Clear, or Escape, ends it.
  const FOLLOW_UP_MS = 8000;
  const QUIET_MS = 1200;  // the first sentence's voice can start after the answer is written
  const ownLabel = (button) => (button.dataset.ownLabel || button.innerText || '').trim();
  const handsFree = (label) =>
    [...document.querySelectorAll('#hands-free button')].find((b) => ownLabel(b) === label);
  const count = (selector, text) => [...document.querySelectorAll(selector)]
    .filter((node) => !text || (node.innerText || '').includes(text)).length;
  const answered = () => count('#conversation .bot-row .thought', '⏱️');
  const voicePlaying = () => Boolean(window.lunettesVoice?.playing());
  const activity = () => [count('#conversation .user-row'), answered(), voicePlaying()].join();
  let followUp = null;  // {answers, quietSince, until (0: not open yet), seen}
  const endFollowUp = (closeMicrophone) => {
    if (followUp && followUp.until && closeMicrophone) handsFree('Stop')?.click();
    followUp = null;
  };
  document.addEventListener('click', (event) => {
    const button = event.target.closest && event.target.closest('button');
    if (!button || !event.isTrusted) return;  // the window's own clicks are not the person's
    if (button.closest('#push-to-talk') && ownLabel(button) === 'Stop') {
      if (!(followUp && followUp.until)) {  // (in an open window, its question extends it)
        followUp = {answers: answered(), quietSince: 0, until: 0, seen: ''};
      }
    } else if (button.closest('#hands-free')) {
      endFollowUp(false);
    } else if (button.closest('#stop-button, #stop-speaking, #clear-button')) {
      endFollowUp(true);
    }
  }, true);
  setInterval(() => {
    if (!followUp) return;
    const now = Date.now();
    if (!followUp.until) {  // its answer, written and said, opens the window
      if (answered() <= followUp.answers || voicePlaying()) {
        followUp.quietSince = 0;
      } else if (!followUp.quietSince) {
        followUp.quietSince = now;
      } else if (now - followUp.quietSince >= QUIET_MS) {
        const record = handsFree('Record');
        if (!record) { followUp = null; return; }  // already listening hands-free
        record.click();
        followUp.until = now + FOLLOW_UP_MS;
      }
      return;
    }
    const seen = activity();
    if (seen !== followUp.seen) {  // a question, an answer or the voice: still talking
      followUp.seen = seen;
      followUp.until = now + FOLLOW_UP_MS;
    } else if (now > followUp.until && !voicePlaying()) {
      endFollowUp(true);
    }
  }, 250);
  document.addEventListener('keydown', (event) => {
    const alt = event.altKey && !event.ctrlKey && !event.metaKey;
    if (alt && event.code === 'KeyL') {
      event.preventDefault();  // Alt+L: look and ask
      document.querySelector('#look-and-ask')?.click();
    } else if (alt && event.code === 'KeyM') {
      event.preventDefault();  // Alt+M: to the message box
      document.querySelector('#message textarea')?.focus();
    } else if (event.key === 'Escape') {
      endFollowUp(true);
      pauseVoice();  // Escape: stop the answer and the voice
      document.querySelector('#stop-button')?.click();
    }
  });
}
"""

PAGE_STYLE = """
<style>
#look-and-ask { font-size: 1.2rem; min-height: 3.2rem; }
#conversation .image-frame img { max-height: 14rem; width: auto; object-fit: contain; }
#conversation button[aria-label="Share"] { display: none; }
.lunettes-status { margin: 0.25rem 0; font-size: 1rem; min-height: 1.5em; }
:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }
</style>
"""
