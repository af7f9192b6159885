import { setProject, state } from "../api.js";
import { refreshProjects } from "../app.js";
import { button } from "../ui.js";
import { configText, resourcePage, usedBy } from "./resource.js";

export function render(root) {
  return resourcePage(root, {
    title: "Projects", noun: "Project", id: "projects", path: "/1.0/projects",
    columns: [["Name", (p) => p.name + (p.name === state.project ? " (current)" : "")], ["Description", (p) => p.description], ["Config", configText], ["Used by", usedBy]],
    editable: (p) => ({ description: p.description, config: p.config }),
    create: [{ name: "name", label: "Name" }, { name: "description", label: "Description" },
      { name: "features", label: "Own images and profiles", type: "checkbox", value: true }],
    createBody: (v) => ({ name: v.name, description: v.description,
      config: v.features ? { "features.images": "true", "features.profiles": "true", "features.storage.volumes": "true" } : {} }),
    canDelete: (p) => p.name !== "default",
    extra: (p) => (p.name === state.project ? null : button("Switch to", async () => {
      setProject(p.name); await refreshProjects(); location.hash = "#/instances";
    }, { dataset: { action: "switch" } })),
  }).then(async () => { await refreshProjects(); return null; });
}
