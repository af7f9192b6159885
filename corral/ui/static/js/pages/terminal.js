// A terminal on an operation's websockets (exec or console): xterm.js on the "0" stream, resizes on
// "control", as `lxc exec` / `lxc console` do.
import { Terminal } from "../../vendor/xterm/xterm.mjs";
import { FitAddon } from "../../vendor/xterm/addon-fit.mjs";
import { api, opSocket } from "../api.js";
import { h } from "../ui.js";

function open(ws) {
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("websocket connection failed"));
  });
}

// path: /1.0/instances/NAME/exec or /console; body: the POST body without sizes. Answers a close function.
export async function attach(box, path, body, onEnd, { hangup = false } = {}) {
  const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const op = await api("POST", path, { ...body, width: term.cols, height: term.rows });
  const fds = op.metadata.fds;
  const control = await open(opSocket(op.id, fds.control));
  const data = await open(opSocket(op.id, fds["0"]));
  const enc = new TextEncoder();
  data.onmessage = (e) => {
    if (typeof e.data === "string") { if (e.data) term.write(e.data); } else if (e.data.byteLength) term.write(new Uint8Array(e.data));
  };
  const ended = () => { term.write("\r\n\x1b[2m[session ended]\x1b[0m\r\n"); if (onEnd) onEnd(); };
  data.onclose = ended;
  const input = term.onData((s) => { if (data.readyState === WebSocket.OPEN && s) data.send(enc.encode(s)); });
  const resize = () => {
    fit.fit();
    if (control.readyState === WebSocket.OPEN) {
      control.send(JSON.stringify({ command: "window-resize", args: { width: String(term.cols), height: String(term.rows) } }));
    }
  };
  const ro = new ResizeObserver(resize);
  ro.observe(box);
  term.focus();
  box.dataset.connected = "1";
  window.corralTerm = term;   // tests read the screen through it
  return () => {
    ro.disconnect(); input.dispose(); data.onclose = null;
    try {
      // as a closed terminal does: SIGHUP to the command (an exec; a console has no process of its own)
      if (hangup && control.readyState === WebSocket.OPEN) control.send(JSON.stringify({ command: "signal", signal: 1 }));
      data.close(); control.close();
    } catch { /* already closed */ }
    term.dispose();
  };
}

// The visible text of the terminal (for tests and copy).
export function screenText(term) {
  const buf = term.buffer.active;
  const lines = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
  return lines.join("\n");
}

export function terminalBox(id) {
  return h("div", { class: "terminal-box", id });
}
