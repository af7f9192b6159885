// The first-run page (an untrusted browser): how to get a client certificate into the trust store, a
// certificate made here, and a trust token form (POST /1.0/certificates with the browser's certificate).
import { api } from "../api.js";
import { fingerprint, makeCertificate, makePkcs12 } from "../certgen.js";
import { button, h } from "../ui.js";

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = h("a", { href: url, download: name, class: "download" }, `Download ${name}`);
  return a;
}

export async function render(root) {
  const host = location.host;
  const out = h("div", { id: "certgen-out" });
  const pw = h("input", { type: "password", id: "pfx-password", placeholder: "a password for the .pfx" });
  const generate = button("Generate certificate", async () => {
    if (!pw.value) throw new Error("Choose a password for the .pfx file first (browsers refuse empty ones)");
    const c = await makeCertificate(`corral-ui@${location.hostname}`);
    const pfx = await makePkcs12(c.certDer, c.keyDer, pw.value, "Corral UI");
    const fp = await fingerprint(c.certDer);
    out.replaceChildren(
      h("p", {}, "Fingerprint: ", h("code", { id: "cert-fingerprint" }, fp)),
      h("p", {}, download("corral-ui.pfx", pfx, "application/x-pkcs12"), " · ", download("corral-ui.crt", c.certPem, "application/x-pem-file"),
        " · ", download("corral-ui.key", c.keyPem, "application/x-pem-file")),
      h("pre", { class: "log", id: "cert-pem" }, c.certPem));
    out.dataset.pfx = btoa(Array.from(pfx, (b) => String.fromCharCode(b)).join(""));   // what the download holds
    out.dataset.ready = "1";
  }, { class: "primary", id: "generate-cert" });
  const token = h("input", { type: "text", id: "trust-token", placeholder: "the token `lxc config trust add` printed", size: 60 });
  const tokenMsg = h("p", { id: "token-result" });
  const useToken = button("Add this browser's certificate", async () => {
    try {
      await api("POST", "/1.0/certificates", { type: "client", password: token.value.trim() });
      tokenMsg.textContent = "Trusted. Reloading…";
      setTimeout(() => location.reload(), 500);
    } catch (e) {
      tokenMsg.className = "error";
      tokenMsg.textContent = `${e.message} (is a certificate selected in the browser? reload the page after importing it)`;
    }
  }, { id: "use-token" });
  root.append(h("div", { class: "firstrun" },
    h("h1", {}, "Log in to Corral"),
    h("p", {}, "Corral's UI authenticates you as the ", h("code", {}, "lxc"), " client does: your browser presents a TLS client certificate ",
      "that is in the server's trust store. This browser presented none, or one the server does not trust."),
    h("h2", {}, "1. Get a certificate"),
    h("p", {}, "Make one here (an ECDSA P-384 key made by your browser; it never leaves it until you save it):"),
    h("div", { class: "toolbar" }, pw, generate), out,
    h("p", {}, "Or with openssl:"),
    h("pre", { class: "cmd" }, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -sha384 -nodes -days 3650 \\\n" +
      "    -subj \"/CN=corral-ui\" -keyout corral-ui.key -out corral-ui.crt\n" +
      "openssl pkcs12 -export -inkey corral-ui.key -in corral-ui.crt -out corral-ui.pfx"),
    h("h2", {}, "2. Import it into the browser"),
    h("p", {}, "Firefox: Settings → Privacy & Security → Certificates → View Certificates → Your Certificates → Import. ",
      "Chrome/Chromium: Settings → Privacy and security → Security → Manage certificates → Import (on Linux: ",
      h("code", {}, "pk12util -d sql:$HOME/.pki/nssdb -i corral-ui.pfx"), "). Then reload this page and pick the certificate when asked."),
    h("h2", {}, "3. Trust it on the server"),
    h("p", {}, "Either add the certificate file on the server:"),
    h("pre", { class: "cmd" }, "lxc config trust add corral-ui.crt"),
    h("p", {}, "or make a trust token there and paste it here (the browser's certificate is added):"),
    h("pre", { class: "cmd" }, "lxc config trust add --name corral-ui"),
    h("div", { class: "toolbar" }, token, useToken), tokenMsg,
    h("p", { class: "muted" }, `Server: https://${host}`)));
  root.dataset.ready = "1";
}
