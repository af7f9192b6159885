// The REST API, as the lxc client uses it: every call is /1.0/... on this origin (the browser presents
// its client certificate), with ?project= for the current project.
const HOST_WIDE = /^\/1\.0(\/(projects|cluster|certificates|warnings|storage-pools\/?$|operations\/[^/]+)|\/?$)/;

export const state = { project: localStorage.getItem("corral.project") || "default", server: null };

export function setProject(name) {
  state.project = name;
  localStorage.setItem("corral.project", name);
}

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export function withProject(path, project = state.project) {
  if (HOST_WIDE.test(path.split("?")[0]) || /[?&]project=/.test(path)) return path;
  return path + (path.includes("?") ? "&" : "?") + "project=" + encodeURIComponent(project);
}

async function parse(resp) {
  let body = null;
  const text = await resp.text();
  try { body = JSON.parse(text); } catch { body = null; }
  if (!resp.ok || (body && body.type === "error")) {
    throw new ApiError((body && body.error) || `${resp.status} ${resp.statusText}`, resp.status);
  }
  return { body, etag: resp.headers.get("ETag") };
}

// GET/POST/PUT/PATCH/DELETE; answers the envelope's metadata (an operation for async calls).
export async function api(method, path, body, { etag, raw, headers } = {}) {
  const h = { ...(headers || {}) };
  let data;
  if (raw !== undefined) data = raw;
  else if (body !== undefined) { data = JSON.stringify(body); h["Content-Type"] = "application/json"; }
  if (etag) h["If-Match"] = etag;
  const resp = await fetch(withProject(path), { method, headers: h, body: data, credentials: "same-origin" });
  const { body: env } = await parse(resp);
  return env ? env.metadata : null;
}

export const get = (path) => api("GET", path);

// GET with the ETag, for edit-then-PUT.
export async function getWithEtag(path) {
  const resp = await fetch(withProject(path), { credentials: "same-origin" });
  const { body, etag } = await parse(resp);
  return { data: body.metadata, etag };
}

// Wait for an operation to end; throws its error text on failure.
export async function waitOp(op) {
  const id = typeof op === "string" ? op : op.id;
  const done = await api("GET", `/1.0/operations/${id}/wait?timeout=600`);
  if (done.status_code >= 400 || done.status === "Failure") throw new ApiError(done.err || "operation failed", 500);
  return done;
}

// An async call followed by its operation's end.
export async function run(method, path, body, opts) {
  const op = await api(method, path, body, opts);
  return op && op.id ? waitOp(op) : op;
}

export function wsUrl(path) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${withProject(path)}`;
}

// An operation's websocket for one of its secrets.
export function opSocket(opId, secret) {
  const ws = new WebSocket(wsUrl(`/1.0/operations/${opId}/websocket?secret=${encodeURIComponent(secret)}`));
  ws.binaryType = "arraybuffer";
  return ws;
}

// An upload with progress (XMLHttpRequest: fetch has no upload progress); answers the envelope.
export function upload(path, blob, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", withProject(path));
    for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let env = null;
      try { env = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 400 || !env || env.type === "error") reject(new ApiError((env && env.error) || xhr.statusText, xhr.status));
      else resolve(env.metadata);
    };
    xhr.onerror = () => reject(new ApiError("upload failed (connection error)", 0));
    xhr.send(blob);
  });
}

export const nameOf = (url) => decodeURIComponent(url.split("?")[0].split("/").pop());
