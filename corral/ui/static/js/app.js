// The UI's entry: who am I (GET /1.0), the project switcher, and a hash router over the pages.
import { api, get, setProject, state } from "./api.js";
import { clearNotices, h, notify } from "./ui.js";

const PAGES = {
  instances: () => import("./pages/instances.js"),
  instance: () => import("./pages/instance.js"),
  images: () => import("./pages/images.js"),
  profiles: () => import("./pages/profiles.js"),
  storage: () => import("./pages/storage.js"),
  networks: () => import("./pages/networks.js"),
  projects: () => import("./pages/projects.js"),
  cluster: () => import("./pages/cluster.js"),
  operations: () => import("./pages/operations.js"),
  events: () => import("./pages/events.js"),
  warnings: () => import("./pages/warnings.js"),
  login: () => import("./pages/login.js"),
};

let cleanup = null;
let seq = 0;

export async function refreshProjects() {
  const sel = document.getElementById("project-select");
  const projects = await get("/1.0/projects?recursion=1");
  const names = projects.map((p) => p.name);
  // a restricted certificate may not see "default": start in the first project it may use
  if (!names.includes(state.project)) setProject(names.includes("default") || !names.length ? "default" : names[0]);
  sel.replaceChildren(...names.map((n) => h("option", { value: n, selected: n === state.project }, n)));
}

async function route() {
  const mine = ++seq;
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  clearNotices();
  const parts = (location.hash.replace(/^#\/?/, "") || "instances").split("/").map(decodeURIComponent);
  let name = parts[0];
  if (state.server.auth !== "trusted") name = "login";
  if (name === "instances" && parts.length > 1) name = "instance";
  const load = PAGES[name] || PAGES.instances;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === parts[0]);
  const root = document.getElementById("page");
  try {
    const mod = await load();
    if (mine !== seq) return;
    const fresh = h("div", { class: `page page-${name}`, id: `page-${name}` });
    root.replaceChildren(fresh);
    cleanup = (await mod.render(fresh, parts.slice(1))) || null;
    performance.mark("corral:page-ready", { detail: name });   // bench/ui.py reads it
  } catch (e) {
    if (mine === seq) { root.replaceChildren(h("p", { class: "error" }, e.message)); notify(e.message, "error"); }
  }
}

async function start() {
  state.server = await api("GET", "/1.0");
  const info = document.getElementById("server-info");
  if (state.server.auth === "trusted") {
    const env = state.server.environment || {};
    info.textContent = `${env.server_name || ""} · ${env.server || "corral"} ${env.server_version || ""}${env.server_clustered ? " · clustered" : ""}`;
    document.getElementById("nav-cluster").hidden = !env.server_clustered;
    await refreshProjects();
    document.getElementById("project-select").addEventListener("change", (e) => {
      setProject(e.target.value);
      route();
    });
  } else {
    document.body.classList.add("untrusted");
    info.textContent = "not logged in";
  }
  window.addEventListener("hashchange", route);
  await route();
}

start().catch((e) => {
  document.getElementById("page").replaceChildren(h("p", { class: "error" }, `Cannot reach the server: ${e.message}`));
});

