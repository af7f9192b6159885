// Cluster members (when clustered).
import { get, run } from "../api.js";
import { button, h, notify, statusBadge, table } from "../ui.js";

export async function render(root) {
  const info = await get("/1.0/cluster");
  root.append(h("h1", {}, "Cluster"));
  if (!info.enabled) { root.append(h("p", { class: "muted", id: "not-clustered" }, "This server is not clustered.")); root.dataset.ready = "1"; return null; }
  const box = h("div");
  const refresh = async () => {
    const members = await get("/1.0/cluster/members?recursion=1");
    box.replaceChildren(table(["Name", "URL", "Roles", "Architecture", "Failure domain", "Status", "Message", ""],
      members.map((m) => h("tr", { dataset: { member: m.server_name } },
        h("td", {}, m.server_name), h("td", {}, m.url), h("td", {}, (m.roles || []).join(", ")), h("td", {}, m.architecture),
        h("td", {}, m.failure_domain), h("td", {}, statusBadge(m.status)), h("td", {}, m.message),
        h("td", { class: "actions" },
          m.status === "Evacuated" ? button("Restore", async () => { await run("POST", `/1.0/cluster/members/${encodeURIComponent(m.server_name)}/state`, { action: "restore" }); notify("restored"); await refresh(); })
            : button("Evacuate", async () => { await run("POST", `/1.0/cluster/members/${encodeURIComponent(m.server_name)}/state`, { action: "evacuate" }); notify("evacuated"); await refresh(); })))), { id: "members" }));
  };
  root.append(h("p", {}, `Server name: ${info.server_name}`), box);
  await refresh();
  root.dataset.ready = "1";
  return null;
}
