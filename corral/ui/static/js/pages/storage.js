// Storage pools and their volumes.
import { get, run } from "../api.js";
import { button, confirmDo, formDialog, h, notify, table } from "../ui.js";
import { configText, resourcePage, usedBy } from "./resource.js";

async function volumes(box, pool) {
  const base = `/1.0/storage-pools/${encodeURIComponent(pool)}/volumes`;
  const refresh = async () => {
    const list = await get(`${base}?recursion=1`);
    box.replaceChildren(h("h2", {}, `Volumes of ${pool}`),
      h("div", { class: "toolbar" }, button("Create volume", () => formDialog("Create custom volume", [
        { name: "name", label: "Name" }, { name: "size", label: "Size (e.g. 1GiB)" },
        { name: "content_type", label: "Content", type: "select", options: ["filesystem", "block"], value: "filesystem" }],
      async (v) => {
        await run("POST", `${base}/custom`, { name: v.name, type: "custom", content_type: v.content_type, config: v.size ? { size: v.size } : {} });
        notify(`${v.name}: created`); await refresh();
      }), { class: "primary", id: "create-volume" })),
      table(["Name", "Type", "Content", "Location", "Used by", ""], list.map((v) => h("tr", { dataset: { volume: v.name } },
        h("td", {}, v.name), h("td", {}, v.type), h("td", {}, v.content_type), h("td", {}, v.location || ""), h("td", {}, usedBy(v)),
        h("td", { class: "actions" }, v.type === "custom" ? button("Delete", confirmDo(`Delete volume ${v.name}?`, async () => {
          await run("DELETE", `${base}/custom/${encodeURIComponent(v.name)}`); await refresh();
        }), { class: "danger" }) : null))), { id: "volumes" }));
  };
  await refresh();
}

export async function render(root) {
  const vbox = h("div", { id: "volumes-box" });
  await resourcePage(root, {
    title: "Storage pools", noun: "Pool", id: "pools", path: "/1.0/storage-pools",
    columns: [["Name", (p) => p.name], ["Driver", (p) => p.driver], ["State", (p) => p.status || ""], ["Config", configText], ["Used by", usedBy]],
    editable: (p) => ({ description: p.description, config: p.config }),
    create: [{ name: "name", label: "Name" }, { name: "driver", label: "Driver", type: "select", options: ["dir", "btrfs"], value: "dir" }],
    createBody: (v) => ({ name: v.name, driver: v.driver, config: {} }),
    extra: (p) => button("Volumes", () => volumes(vbox, p.name), { dataset: { action: "volumes" } }),
  });
  root.append(vbox);
  const pools = await get("/1.0/storage-pools");
  if (pools.length) await volumes(vbox, decodeURIComponent(pools[0].split("/").pop()));
  return null;
}
