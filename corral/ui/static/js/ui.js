// Small DOM helpers: an element builder, tables, notices, dialogs and the YAML editor.
import yaml from "../vendor/js-yaml/js-yaml.mjs";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(headers, rows, { id } = {}) {
  return h("table", { class: "list", id },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "None"))));
}

export function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", ...attrs, onclick: async (e) => {
    const b = e.currentTarget;
    b.disabled = true;
    try { await onclick(e); } catch (err) { notify(err.message, "error"); } finally { b.disabled = false; }
  } }, label);
}

// A message at the top of the page; errors stay until dismissed (they are the server's text).
export function notify(text, kind = "info") {
  const box = document.getElementById("notices");
  const n = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "text" }, text), h("button", { type: "button", class: "close", onclick: () => n.remove() }, "×"));
  box.append(n);
  if (kind !== "error") setTimeout(() => n.remove(), 4000);
  return n;
}

export function clearNotices() { document.getElementById("notices").replaceChildren(); }

// A modal dialog; `body` is a node; answers a close function.
export function dialog(title, body, { id } = {}) {
  const close = () => back.remove();
  const back = h("div", { class: "modal-back" },
    h("div", { class: "modal", id, role: "dialog" },
      h("header", {}, h("h2", {}, title), h("button", { type: "button", class: "close", onclick: close }, "×")),
      body));
  document.body.append(back);
  return close;
}

export const toYaml = (obj) => yaml.dump(obj, { lineWidth: -1, noRefs: true, sortKeys: false });

// Edit `data` as YAML and save it with `save(obj)`; a YAML error or the server's refusal is shown in the
// dialog and the text kept, as `lxc config edit` does.
export function yamlEditor(title, data, save) {
  const area = h("textarea", { class: "yaml", spellcheck: "false", rows: 24, id: "yaml-text" }, toYaml(data));
  const err = h("pre", { class: "error", id: "yaml-error", hidden: true });
  let close;
  const onSave = async () => {
    let obj;
    try { obj = yaml.load(area.value) || {}; } catch (e) {
      err.textContent = `YAML: ${e.message}`; err.hidden = false; return;
    }
    try { await save(obj); close(); notify(`${title}: saved`); } catch (e) {
      err.textContent = e.message; err.hidden = false;
    }
  };
  close = dialog(title, h("div", {}, area, err,
    h("div", { class: "actions" }, button("Save", onSave, { class: "primary", id: "yaml-save" }))), { id: "yaml-dialog" });
  return close;
}

// A small form in a dialog: fields [{name, label, type, options, value}]; `submit(values)`.
export function formDialog(title, fields, submit, { id } = {}) {
  const inputs = {};
  const err = h("pre", { class: "error", hidden: true });
  const rows = fields.map((f) => {
    let input;
    if (f.type === "select") {
      input = h("select", { name: f.name, multiple: f.multiple }, f.options.map((o) => {
        const [v, l] = Array.isArray(o) ? o : [o, o];
        return h("option", { value: v, selected: (f.multiple ? (f.value || []).includes(v) : f.value === v) }, l);
      }));
    } else if (f.type === "textarea") {
      input = h("textarea", { name: f.name, rows: 6 }, f.value || "");
    } else {
      input = h("input", { name: f.name, type: f.type || "text", value: f.value ?? "", checked: f.type === "checkbox" && f.value });
    }
    inputs[f.name] = input;
    return h("label", {}, h("span", {}, f.label), input);
  });
  let close;
  const onSubmit = async (e) => {
    e.preventDefault();
    const values = {};
    for (const f of fields) {
      const i = inputs[f.name];
      if (f.type === "checkbox") values[f.name] = i.checked;
      else if (f.type === "file") values[f.name] = i.files[0];
      else if (f.multiple) values[f.name] = [...i.selectedOptions].map((o) => o.value);
      else values[f.name] = i.value;
    }
    const b = e.submitter;
    if (b) b.disabled = true;
    try { await submit(values, err); close(); } catch (x) { err.textContent = x.message; err.hidden = false; } finally { if (b) b.disabled = false; }
  };
  close = dialog(title, h("form", { class: "form", onsubmit: onSubmit }, rows, err,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create"))), { id });
  return close;
}

export function confirmDo(text, fn) {
  return async () => { if (window.confirm(text)) await fn(); };
}

export const fmtBytes = (n) => {
  if (n === undefined || n === null) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
};

export const fmtDate = (s) => (s && !s.startsWith("0001") ? new Date(s).toLocaleString() : "");

export function statusBadge(status) {
  return h("span", { class: `badge ${String(status).toLowerCase()}` }, status);
}
