import { get } from "../api.js";
import { button, dialog, h, table } from "../ui.js";
import { resourcePage, usedBy } from "./resource.js";

async function leases(n) {
  const list = await get(`/1.0/networks/${encodeURIComponent(n.name)}/leases`);
  dialog(`Leases of ${n.name}`, table(["Hostname", "MAC", "Address", "Type", "Location"],
    list.map((l) => h("tr", {}, h("td", {}, l.hostname), h("td", {}, l.hwaddr), h("td", {}, l.address), h("td", {}, l.type), h("td", {}, l.location || "")))));
}

export function render(root) {
  return resourcePage(root, {
    title: "Networks", noun: "Network", id: "networks", path: "/1.0/networks",
    columns: [["Name", (n) => n.name], ["Type", (n) => n.type], ["Managed", (n) => (n.managed ? "yes" : "no")],
      ["IPv4", (n) => (n.config || {})["ipv4.address"] || ""], ["IPv6", (n) => (n.config || {})["ipv6.address"] || ""],
      ["State", (n) => n.status || ""], ["Used by", usedBy]],
    editable: (n) => ({ description: n.description, config: n.config }),
    create: [{ name: "name", label: "Name" }, { name: "description", label: "Description" },
      { name: "config", label: "Config (key=value per line)", type: "textarea", value: "ipv4.address=auto\nipv6.address=none" }],
    createBody: (v) => ({ name: v.name, description: v.description, type: "bridge",
      config: Object.fromEntries(v.config.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => [l.split("=")[0], l.slice(l.indexOf("=") + 1)])) }),
    canDelete: (n) => n.managed,
    extra: (n) => (n.managed ? button("Leases", () => leases(n), { dataset: { action: "leases" } }) : null),
  }).then(() => null);
}
