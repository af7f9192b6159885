// Operations (running and recent), with cancel.
import { api, get } from "../api.js";
import { button, fmtDate, h, statusBadge, table } from "../ui.js";

export async function render(root) {
  const box = h("div");
  const refresh = async () => {
    const ops = await get("/1.0/operations?recursion=1");
    const all = Object.values(ops || {}).flat();
    all.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
    box.replaceChildren(table(["ID", "Class", "Description", "Status", "Created", "Location", ""], all.map((o) => h("tr", {},
      h("td", {}, h("code", {}, o.id)), h("td", {}, o.class), h("td", {}, o.description), h("td", {}, statusBadge(o.status)),
      h("td", {}, fmtDate(o.created_at)), h("td", {}, o.location || ""),
      h("td", {}, o.may_cancel ? button("Cancel", async () => { await api("DELETE", `/1.0/operations/${o.id}`); await refresh(); }) : null))), { id: "operations" }));
  };
  root.append(h("h1", {}, "Operations"), h("div", { class: "toolbar" }, button("Refresh", refresh)), box);
  await refresh();
  const t = setInterval(() => refresh().catch(() => {}), 3000);
  root.dataset.ready = "1";
  return () => clearInterval(t);
}
