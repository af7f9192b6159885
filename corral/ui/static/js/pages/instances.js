// Instances: the list (state, addresses, location), create from an image with profiles, lifecycle actions.
import { api, get, run, state, wsUrl } from "../api.js";
import { button, confirmDo, formDialog, h, notify, statusBadge, table } from "../ui.js";

export function addresses(st, family) {
  const out = [];
  for (const [dev, net] of Object.entries((st && st.network) || {})) {
    if (dev === "lo") continue;
    for (const a of net.addresses || []) {
      if (a.family === family && a.scope === "global") out.push(`${a.address} (${dev})`);
    }
  }
  return out;
}

export async function changeState(name, action, extra = {}) {
  await run("PUT", `/1.0/instances/${encodeURIComponent(name)}/state`, { action, timeout: 30, ...extra });
}

export function actionButtons(inst, after) {
  const n = inst.name;
  const act = (label, action, extra) => button(label, async () => {
    await changeState(n, action, extra); notify(`${n}: ${action}`); await after();
  }, { dataset: { action, instance: n } });
  const st = inst.status;
  return [
    st !== "Running" && st !== "Frozen" ? act("Start", "start") : null,
    st === "Running" ? act("Stop", "stop", { force: true }) : null,
    st === "Running" ? act("Restart", "restart", { force: true }) : null,
    st === "Running" ? act("Freeze", "freeze") : null,
    st === "Frozen" ? act("Unfreeze", "unfreeze") : null,
    button("Delete", confirmDo(`Delete instance ${n}?`, async () => {
      if (inst.status !== "Stopped") await changeState(n, "stop", { force: true });
      await run("DELETE", `/1.0/instances/${encodeURIComponent(n)}`); notify(`${n}: deleted`);
      if (location.hash.startsWith("#/instances/")) location.hash = "#/instances"; else await after();
    }), { class: "danger", dataset: { action: "delete", instance: n } }),
  ];
}

function row(inst, after, clustered) {
  const link = h("a", { href: `#/instances/${encodeURIComponent(inst.name)}` }, inst.name);
  return h("tr", { dataset: { instance: inst.name } },
    h("td", {}, link), h("td", {}, inst.type), h("td", { class: "state" }, statusBadge(inst.status)),
    h("td", { class: "ipv4" }, addresses(inst.state, "inet").join("\n")),
    h("td", { class: "ipv6" }, addresses(inst.state, "inet6").join("\n")),
    clustered ? h("td", { class: "location" }, inst.location) : null,
    h("td", {}, String((inst.snapshots || []).length)),
    h("td", { class: "actions" }, actionButtons(inst, after)));
}

async function imageChoices() {
  const images = await get("/1.0/images?recursion=1");
  const out = [];
  for (const img of images) {
    const desc = (img.properties && img.properties.description) || img.fingerprint.slice(0, 12);
    for (const a of img.aliases || []) out.push([`alias:${a.name}`, `${a.name} — ${desc}`]);
    out.push([`fp:${img.fingerprint}`, `${img.fingerprint.slice(0, 12)} — ${desc}`]);
  }
  return out;
}

export async function createDialog(after) {
  const clustered = !!(state.server.environment || {}).server_clustered;
  const [images, profiles, members] = await Promise.all([imageChoices(), get("/1.0/profiles"),
    clustered ? get("/1.0/cluster/members") : Promise.resolve([])]);
  const profileNames = profiles.map((p) => decodeURIComponent(p.split("/").pop().split("?")[0]));
  const target = clustered ? [{ name: "target", label: "Cluster member", type: "select",
    options: [["", "(chosen by the server)"], ...members.map((m) => decodeURIComponent(m.split("/").pop()))], value: "" }] : [];
  formDialog("Create instance", [
    { name: "name", label: "Name" }, ...target,
    { name: "image", label: "Image", type: "select", options: images, value: images.length ? images[0][0] : "" },
    { name: "type", label: "Type", type: "select", options: [["container", "Container"], ["virtual-machine", "Virtual machine"]], value: "container" },
    { name: "profiles", label: "Profiles", type: "select", multiple: true, options: profileNames, value: ["default"] },
    { name: "start", label: "Start it", type: "checkbox", value: true },
  ], async (v) => {
    if (!v.image) throw new Error("No image: import one on the Images page first");
    const [kind, ref] = [v.image.split(":")[0], v.image.slice(v.image.indexOf(":") + 1)];
    const source = kind === "alias" ? { type: "image", alias: ref } : { type: "image", fingerprint: ref };
    const body = { source, type: v.type, profiles: v.profiles };
    if (v.name) body.name = v.name;
    const done = await run("POST", `/1.0/instances${v.target ? `?target=${encodeURIComponent(v.target)}` : ""}`, body);
    const name = v.name || ((done.resources && done.resources.instances) || [""])[0].split("/").pop();
    if (v.start) await changeState(name, "start");
    notify(`${name}: created${v.start ? " and started" : ""}`);
    await after();
  }, { id: "create-instance" });
}

// What a row shows: a row is redrawn only when this changes (a live update leaves the others alone).
const rowKey = (i) => JSON.stringify([i.status, i.type, i.location, addresses(i.state, "inet"), addresses(i.state, "inet6"), (i.snapshots || []).length]);

export async function render(root) {
  const clustered = !!(state.server.environment || {}).server_clustered;
  const headers = ["Name", "Type", "State", "IPv4", "IPv6", clustered ? "Location" : null, "Snapshots", ""].filter((x) => x !== null);
  const body = h("div", { id: "instances-table" });
  const rows = new Map();   // name -> {key, tr}
  let tbody = null;
  const refresh = async () => {
    const list = await api("GET", "/1.0/instances?recursion=2");
    list.sort((a, b) => a.name.localeCompare(b.name));
    if (!tbody || !list.length || !rows.size) {   // first draw, or to/from the empty table
      rows.clear();
      const t = table(headers, list.map((i) => {
        const tr = row(i, refresh, clustered);
        rows.set(i.name, { key: rowKey(i), tr });
        return tr;
      }), { id: "instances" });
      tbody = list.length ? t.querySelector("tbody") : null;
      body.replaceChildren(t);
    } else {
      const seen = new Set();
      let prev = null;
      for (const i of list) {
        seen.add(i.name);
        const had = rows.get(i.name);
        let tr = had && had.tr;
        if (!had || had.key !== rowKey(i)) {
          const fresh = row(i, refresh, clustered);
          if (tr) tr.replaceWith(fresh);
          tr = fresh;
          rows.set(i.name, { key: rowKey(i), tr });
        }
        if (tr.previousElementSibling !== prev || !tr.isConnected) {
          if (prev) prev.after(tr); else tbody.prepend(tr);
        }
        prev = tr;
      }
      for (const [n, r] of rows) if (!seen.has(n)) { r.tr.remove(); rows.delete(n); }
    }
    root.dataset.count = String(list.length);
  };
  root.append(h("h1", {}, `Instances`, h("span", { class: "muted" }, ` · project ${state.project}`)),
    h("div", { class: "toolbar" }, button("Create instance", () => createDialog(refresh), { class: "primary", id: "create-instance-btn" }),
      button("Refresh", refresh)), body);
  await refresh();
  root.dataset.ready = "1";
  // live: instance lifecycle events of the project (anyone's changes) redraw what changed
  let timer = null;
  const ws = new WebSocket(wsUrl("/1.0/events?type=lifecycle"));
  ws.onmessage = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (!String((ev.metadata || {}).action || "").startsWith("instance-")) return;
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch(() => {}), 250);
  };
  return () => { clearTimeout(timer); ws.onmessage = null; ws.close(); };
}
