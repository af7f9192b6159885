import { resourcePage, usedBy } from "./resource.js";

export function render(root) {
  return resourcePage(root, {
    title: "Profiles", noun: "Profile", id: "profiles", path: "/1.0/profiles",
    columns: [["Name", (p) => p.name], ["Description", (p) => p.description], ["Devices", (p) => Object.keys(p.devices || {}).join(", ")], ["Used by", usedBy]],
    editable: (p) => ({ description: p.description, config: p.config, devices: p.devices }),
    create: [{ name: "name", label: "Name" }, { name: "description", label: "Description" }],
    createBody: (v) => ({ name: v.name, description: v.description }),
    canDelete: (p) => p.name !== "default",
  }).then(() => null);
}
