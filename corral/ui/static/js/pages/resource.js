// The shape of the profile, network, project and storage pages: a table, create, edit as YAML, delete.
import { get, getWithEtag, run } from "../api.js";
import { button, confirmDo, formDialog, h, notify, table, yamlEditor } from "../ui.js";

// opts: {title, id, path (collection), columns: [[header, fn(obj)]], editable(obj) -> PUT body,
//        create: [fields] and createBody(values), canDelete(obj), extra(obj) -> more action nodes}
export async function resourcePage(root, opts) {
  const box = h("div");
  const item = (o) => `${opts.path}/${encodeURIComponent(o.name)}`;
  const refresh = async () => {
    const list = await get(`${opts.path}?recursion=1`);
    list.sort((a, b) => a.name.localeCompare(b.name));
    box.replaceChildren(table([...opts.columns.map((c) => c[0]), ""], list.map((o) => h("tr", { dataset: { name: o.name } },
      opts.columns.map(([, fn]) => h("td", {}, fn(o))),
      h("td", { class: "actions" },
        opts.editable ? button("Edit", async () => {
          const cur = await getWithEtag(item(o));
          yamlEditor(`${opts.noun} ${o.name}`, opts.editable(cur.data), async (obj) => {
            await run("PUT", item(o), obj, { etag: cur.etag }); await refresh();   // as lxc edit: If-Match
          });
        }, { dataset: { action: "edit" } }) : null,
        opts.extra ? opts.extra(o, refresh) : null,
        !opts.canDelete || opts.canDelete(o) ? button("Delete", confirmDo(`Delete ${opts.noun.toLowerCase()} ${o.name}?`, async () => {
          await run("DELETE", item(o)); notify(`${o.name}: deleted`); await refresh();
        }), { class: "danger", dataset: { action: "delete" } }) : null))), { id: opts.id }));
  };
  root.append(h("h1", {}, opts.title),
    h("div", { class: "toolbar" },
      opts.create ? button(`Create ${opts.noun.toLowerCase()}`, () => formDialog(`Create ${opts.noun.toLowerCase()}`, opts.create,
        async (v) => { await run("POST", opts.path, opts.createBody(v)); notify(`${v.name}: created`); await refresh(); }),
      { class: "primary", id: `create-${opts.id}` }) : null,
      button("Refresh", refresh)), box);
  await refresh();
  root.dataset.ready = "1";
  return refresh;
}

export const usedBy = (o) => String((o.used_by || []).length);
export const configText = (o) => Object.entries(o.config || {}).map(([k, v]) => `${k}=${v}`).join("\n");
