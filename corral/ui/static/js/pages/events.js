// The live event log: /1.0/events over a websocket (lifecycle, operation and logging events).
import { state, wsUrl } from "../api.js";
import { button, h } from "../ui.js";

export async function render(root) {
  const log = h("pre", { class: "log", id: "event-log" });
  const status = h("span", { class: "muted", id: "event-status" }, "connecting…");
  const types = h("select", { id: "event-types" }, ["lifecycle,operation", "lifecycle", "operation", "logging", "lifecycle,operation,logging"].map((t) => h("option", { value: t }, t)));
  let ws = null;
  const connect = () => {
    if (ws) ws.close();
    ws = new WebSocket(wsUrl(`/1.0/events?type=${types.value}`));
    ws.onopen = () => { status.textContent = `connected (project ${state.project})`; };
    ws.onclose = () => { status.textContent = "disconnected"; };
    ws.onmessage = (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      const m = ev.metadata || {};
      const what = ev.type === "lifecycle" ? `${m.action} ${m.source}` : ev.type === "operation" ? `${m.description} ${m.status}` : `${m.level} ${m.message}`;
      const line = `${new Date(ev.timestamp).toLocaleTimeString()} ${ev.type.padEnd(9)} ${ev.location ? `[${ev.location}] ` : ""}${what}\n`;
      log.textContent = (line + log.textContent).slice(0, 200000);
    };
  };
  types.addEventListener("change", connect);
  root.append(h("h1", {}, "Events"), h("div", { class: "toolbar" }, h("label", {}, "Types ", types), status,
    button("Clear", () => { log.textContent = ""; })), log);
  connect();
  root.dataset.ready = "1";
  return () => { if (ws) { ws.onclose = null; ws.close(); } };
}
