// Warnings: list, acknowledge, delete.
import { api, get } from "../api.js";
import { button, fmtDate, h, statusBadge, table } from "../ui.js";

export async function render(root) {
  const box = h("div");
  const refresh = async () => {
    const list = await get("/1.0/warnings?recursion=1");
    box.replaceChildren(table(["Type", "Severity", "Status", "Project", "Location", "Count", "Last seen", "Message", ""], list.map((w) => h("tr", { dataset: { uuid: w.uuid } },
      h("td", {}, w.type), h("td", {}, w.severity), h("td", {}, statusBadge(w.status)), h("td", {}, w.project), h("td", {}, w.location),
      h("td", {}, String(w.count)), h("td", {}, fmtDate(w.last_seen_at)), h("td", {}, w.last_message),
      h("td", { class: "actions" },
        w.status !== "acknowledged" ? button("Acknowledge", async () => { await api("PUT", `/1.0/warnings/${w.uuid}`, { status: "acknowledged" }); await refresh(); }, { dataset: { action: "acknowledge" } }) : null,
        button("Delete", async () => { await api("DELETE", `/1.0/warnings/${w.uuid}`); await refresh(); }, { class: "danger" })))), { id: "warnings" }));
  };
  root.append(h("h1", {}, "Warnings"), h("div", { class: "toolbar" }, button("Refresh", refresh)), box);
  await refresh();
  root.dataset.ready = "1";
  return null;
}
