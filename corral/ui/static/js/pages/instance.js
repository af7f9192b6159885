// One instance: overview, snapshots, configuration (YAML), terminal (exec) and text console.
import { get, getWithEtag, run, state } from "../api.js";
import { button, confirmDo, fmtBytes, fmtDate, formDialog, h, notify, statusBadge, table, toYaml, yamlEditor } from "../ui.js";
import { actionButtons, addresses } from "./instances.js";
import { attach, screenText, terminalBox } from "./terminal.js";

window.corralScreenText = () => (window.corralTerm ? screenText(window.corralTerm) : "");

const TABS = [["overview", "Overview"], ["snapshots", "Snapshots"], ["config", "Configuration"], ["terminal", "Terminal"], ["console", "Console"]];

function editable(inst) {
  const { architecture, config, devices, ephemeral, profiles, description } = inst;
  return { architecture, config, devices, ephemeral, profiles, description };
}

async function overview(root, name, redraw) {
  const inst = await get(`/1.0/instances/${encodeURIComponent(name)}?recursion=1`);
  const st = await get(`/1.0/instances/${encodeURIComponent(name)}/state`);
  const clustered = !!(state.server.environment || {}).server_clustered;
  root.append(h("div", { class: "toolbar" }, actionButtons({ ...inst, status: st.status }, redraw)),
    h("dl", { class: "props" },
      h("dt", {}, "Status"), h("dd", { id: "instance-status" }, statusBadge(st.status)),
      h("dt", {}, "Type"), h("dd", {}, inst.type),
      h("dt", {}, "Architecture"), h("dd", {}, inst.architecture),
      clustered ? [h("dt", {}, "Location"), h("dd", { id: "instance-location" }, inst.location)] : null,
      h("dt", {}, "Profiles"), h("dd", {}, (inst.profiles || []).join(", ")),
      h("dt", {}, "IPv4"), h("dd", {}, addresses(st, "inet").join(", ")),
      h("dt", {}, "IPv6"), h("dd", {}, addresses(st, "inet6").join(", ")),
      h("dt", {}, "Processes"), h("dd", {}, String(st.processes ?? "")),
      h("dt", {}, "Memory"), h("dd", {}, st.memory ? fmtBytes(st.memory.usage) : ""),
      h("dt", {}, "Created"), h("dd", {}, fmtDate(inst.created_at)),
      h("dt", {}, "Last used"), h("dd", {}, fmtDate(inst.last_used_at))));
}

async function snapshots(root, name) {
  const base = `/1.0/instances/${encodeURIComponent(name)}/snapshots`;
  const box = h("div");
  const refresh = async () => {
    const snaps = await get(`${base}?recursion=1`);
    box.replaceChildren(table(["Name", "Created", "Stateful", ""], snaps.map((s) => h("tr", { dataset: { snapshot: s.name } },
      h("td", {}, s.name), h("td", {}, fmtDate(s.created_at)), h("td", {}, s.stateful ? "yes" : "no"),
      h("td", { class: "actions" },
        button("Restore", confirmDo(`Restore ${name} to ${s.name}?`, async () => {
          await run("PUT", `/1.0/instances/${encodeURIComponent(name)}`, { restore: s.name }); notify(`restored ${s.name}`);
        }), { dataset: { action: "restore" } }),
        button("Delete", confirmDo(`Delete snapshot ${s.name}?`, async () => {
          await run("DELETE", `${base}/${encodeURIComponent(s.name)}`); await refresh();
        }), { class: "danger" })))), { id: "snapshots" }));
  };
  root.append(h("div", { class: "toolbar" }, button("Create snapshot", () => formDialog("Create snapshot",
    [{ name: "name", label: "Name" }], async (v) => {
      await run("POST", base, v.name ? { name: v.name } : {}); await refresh();
    }), { class: "primary", id: "create-snapshot" })), box);
  await refresh();
}

async function config(root, name) {
  const path = `/1.0/instances/${encodeURIComponent(name)}`;
  const { data } = await getWithEtag(path);
  const pre = h("pre", { class: "log", id: "instance-yaml" });
  pre.textContent = toYaml(editable(data));
  root.append(h("div", { class: "toolbar" }, button("Edit YAML", async () => {
    const cur = await getWithEtag(path);
    yamlEditor(`Instance ${name}`, editable(cur.data), async (obj) => {
      await run("PUT", path, obj, { etag: cur.etag });   // the server validates; its error text is shown in the editor
      const now = await get(path);
      pre.textContent = toYaml(editable(now));
    });
  }, { class: "primary", id: "edit-yaml" })),
  h("p", { class: "muted" }, "config, devices and profiles as `lxc config edit` shows them; expanded values are on the Overview."), pre);
}

async function terminal(root, name, kind) {
  const box = terminalBox(kind === "console" ? "console" : "terminal");
  const status = h("p", { class: "muted" });
  root.append(status, box);
  const path = `/1.0/instances/${encodeURIComponent(name)}/${kind === "console" ? "console" : "exec"}`;
  const body = kind === "console" ? { type: "console" }
    : { command: ["/bin/sh", "-l"], environment: { TERM: "xterm-256color", HOME: "/root", USER: "root" }, interactive: true, "wait-for-websocket": true };
  status.textContent = kind === "console" ? "Text console (the instance's /dev/console)" : "Shell: /bin/sh -l as root";
  return attach(box, path, body, () => { status.textContent += " — ended"; }, { hangup: kind !== "console" });
}

export async function render(root, params) {
  const name = params[0];
  const tab = params[1] || "overview";
  root.append(h("h1", {}, h("a", { href: "#/instances" }, "Instances"), " / ", name),
    h("div", { class: "tabs" }, TABS.map(([t, l]) => h("a", { href: `#/instances/${encodeURIComponent(name)}/${t}`, class: t === tab ? "active" : "", id: `tab-${t}` }, l))));
  const body = h("div", { id: `instance-${tab}` });
  root.append(body);
  const redraw = async () => { body.replaceChildren(); await overview(body, name, redraw); };
  let close = null;
  if (tab === "overview") await redraw();
  else if (tab === "snapshots") await snapshots(body, name);
  else if (tab === "config") await config(body, name);
  else close = await terminal(body, name, tab);
  root.dataset.ready = "1";
  return close;
}
