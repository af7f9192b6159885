// Images: list, import a file (upload progress), delete, aliases.
import { get, run, upload, waitOp } from "../api.js";
import { button, confirmDo, dialog, fmtBytes, fmtDate, formDialog, h, notify, table } from "../ui.js";

async function importDialog(refresh) {
  const file = h("input", { type: "file", id: "image-file" });
  const rootfs = h("input", { type: "file", id: "image-rootfs" });
  const alias = h("input", { type: "text", id: "image-alias", placeholder: "alias (optional)" });
  const pub = h("input", { type: "checkbox", id: "image-public" });
  const bar = h("progress", { class: "progress", max: 100, value: 0, id: "image-progress" });
  const msg = h("p", { class: "muted", id: "image-progress-text" });
  const err = h("pre", { class: "error", hidden: true });
  let close;
  const go = button("Upload", async () => {
    const f = file.files[0];
    if (!f) throw new Error("Choose an image file (a unified tarball, or the metadata tarball of a split image)");
    err.hidden = true;
    try {
      const r = rootfs.files[0];
      let body = f;
      const headers = { "X-LXD-public": pub.checked ? "1" : "0" };
      if (r) {   // a split image, as `lxc image import META ROOTFS` sends it: multipart, metadata then rootfs
        body = new FormData();
        body.append("metadata", f, f.name);
        body.append(/\.(img|qcow2)$/.test(r.name) ? "rootfs.img" : "rootfs", r, r.name);
      } else {
        Object.assign(headers, { "X-LXD-filename": f.name, "Content-Type": "application/octet-stream" });
      }
      const op = await upload("/1.0/images", body, headers,
        (p) => { bar.value = Math.round(p * 100); msg.textContent = `Uploading: ${Math.round(p * 100)}%`; });
      msg.textContent = "Unpacking on the server…";
      const done = await waitOp(op);
      const fp = done.metadata && done.metadata.fingerprint;
      if (alias.value && fp) await run("POST", "/1.0/images/aliases", { name: alias.value, target: fp });
      notify(`image ${fp ? fp.slice(0, 12) : ""} imported`);
      close(); await refresh();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  }, { class: "primary", id: "image-upload" });
  close = dialog("Import image", h("div", { class: "form" },
    h("label", {}, h("span", {}, "Image or metadata "), file), h("label", {}, h("span", {}, "Rootfs (split image) "), rootfs),
    h("label", {}, h("span", {}, "Alias "), alias),
    h("label", {}, h("span", {}, "Public "), pub), bar, msg, err, h("div", { class: "actions" }, go)), { id: "import-image" });
}

function aliasDialog(img, refresh) {
  formDialog(`Add alias to ${img.fingerprint.slice(0, 12)}`, [{ name: "name", label: "Alias" }, { name: "description", label: "Description" }],
    async (v) => { await run("POST", "/1.0/images/aliases", { name: v.name, description: v.description, target: img.fingerprint }); await refresh(); });
}

export async function render(root) {
  const box = h("div");
  const refresh = async () => {
    const list = await get("/1.0/images?recursion=1");
    box.replaceChildren(table(["Aliases", "Fingerprint", "Description", "Type", "Architecture", "Size", "Public", "Uploaded", ""],
      list.map((i) => h("tr", { dataset: { fingerprint: i.fingerprint } },
        h("td", {}, (i.aliases || []).map((a) => h("span", { class: "badge" }, a.name, " ",
          h("button", { type: "button", class: "close", title: "remove alias", dataset: { alias: a.name }, onclick: confirmDo(`Remove alias ${a.name}?`, async () => {
            await run("DELETE", `/1.0/images/aliases/${encodeURIComponent(a.name)}`); await refresh();
          }) }, "×")))),
        h("td", {}, h("code", {}, i.fingerprint.slice(0, 12))), h("td", {}, (i.properties || {}).description || ""),
        h("td", {}, i.type), h("td", {}, i.architecture), h("td", {}, fmtBytes(i.size)), h("td", {}, i.public ? "yes" : "no"),
        h("td", {}, fmtDate(i.uploaded_at)),
        h("td", { class: "actions" }, button("Add alias", () => aliasDialog(i, refresh), { dataset: { action: "add-alias" } }),
          button("Delete", confirmDo(`Delete image ${i.fingerprint.slice(0, 12)}?`, async () => {
            await run("DELETE", `/1.0/images/${i.fingerprint}`); await refresh();
          }), { class: "danger", dataset: { action: "delete" } })))), { id: "images" }));
  };
  root.append(h("h1", {}, "Images"), h("div", { class: "toolbar" },
    button("Import image", () => importDialog(refresh), { class: "primary", id: "import-image-btn" }), button("Refresh", refresh)), box);
  await refresh();
  root.dataset.ready = "1";
}
