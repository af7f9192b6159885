// A client certificate made in the browser with WebCrypto: an ECDSA P-384 key (as `lxc` makes), a
// self-signed X.509 v3 certificate (DER written here), and a PKCS#12 (.pfx) bundle the browser can import:
// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key, HMAC-SHA256 integrity with RFC 7292's key derivation.
const subtle = crypto.subtle;

// --- DER ---
const cat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
function len(n) {
  if (n < 0x80) return Uint8Array.of(n);
  const b = [];
  while (n) { b.unshift(n & 0xff); n >>= 8; }
  return Uint8Array.of(0x80 | b.length, ...b);
}
const tlv = (tag, ...content) => { const c = cat(...content); return cat(Uint8Array.of(tag), len(c.length), c); };
const seq = (...c) => tlv(0x30, ...c);
const set = (...c) => tlv(0x31, ...c);
const octets = (b) => tlv(0x04, b);
const nul = () => Uint8Array.of(0x05, 0x00);
const ctx = (n, ...c) => tlv(0xa0 + n, ...c);
const bits = (b) => tlv(0x03, Uint8Array.of(0), b);
const utf8 = (s) => tlv(0x0c, new TextEncoder().encode(s));
const bool = (v) => Uint8Array.of(0x01, 0x01, v ? 0xff : 0);
function uint(bytes) {   // a non-negative INTEGER from big-endian bytes
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.slice(i);
  if (b[0] & 0x80) b = cat(Uint8Array.of(0), b);
  return tlv(0x02, b);
}
const int = (n) => { const b = []; do { b.unshift(n & 0xff); n = Math.floor(n / 256); } while (n); return uint(Uint8Array.from(b)); };
function oid(s) {
  const p = s.split(".").map(Number);
  const out = [40 * p[0] + p[1]];
  for (const v of p.slice(2)) {
    const b = [v & 0x7f];
    let x = v >> 7;
    while (x) { b.unshift(0x80 | (x & 0x7f)); x >>= 7; }
    out.push(...b);
  }
  return tlv(0x06, Uint8Array.from(out));
}
function time(d) {
  const z = (n, w = 2) => String(n).padStart(w, "0");
  const s = `${z(d.getUTCFullYear() % 100)}${z(d.getUTCMonth() + 1)}${z(d.getUTCDate())}${z(d.getUTCHours())}${z(d.getUTCMinutes())}${z(d.getUTCSeconds())}Z`;
  return tlv(0x17, new TextEncoder().encode(s));   // UTCTime: dates before 2050
}
const bmp = (s) => { const b = new Uint8Array(s.length * 2); for (let i = 0; i < s.length; i++) { b[2 * i] = s.charCodeAt(i) >> 8; b[2 * i + 1] = s.charCodeAt(i) & 0xff; } return b; };
const rand = (n) => crypto.getRandomValues(new Uint8Array(n));

export function pem(label, der) {
  let b64 = "";
  const bin = Array.from(der, (c) => String.fromCharCode(c)).join("");
  b64 = btoa(bin).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// ECDSA's raw r||s signature as the DER SEQUENCE X.509 wants.
function ecdsaDer(raw) {
  const half = raw.length / 2;
  return seq(uint(raw.slice(0, half)), uint(raw.slice(half)));
}

export async function makeCertificate(commonName, years = 10) {
  const keys = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
  const spki = new Uint8Array(await subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", keys.privateKey));
  const sigAlg = seq(oid("1.2.840.10045.4.3.3"));   // ecdsa-with-SHA384
  const name = seq(set(seq(oid("2.5.4.10"), utf8("Corral UI"))), set(seq(oid("2.5.4.3"), utf8(commonName))));
  const now = new Date(Date.now() - 60000);
  const end = new Date(now); end.setUTCFullYear(now.getUTCFullYear() + years);
  const serial = rand(16); serial[0] &= 0x7f;
  const ext = seq(
    seq(oid("2.5.29.19"), bool(true), octets(seq())),   // basicConstraints: not a CA
    seq(oid("2.5.29.15"), bool(true), octets(tlv(0x03, Uint8Array.of(7), Uint8Array.of(0x80)))),   // keyUsage: digitalSignature
    seq(oid("2.5.29.37"), octets(seq(oid("1.3.6.1.5.5.7.3.2")))));   // extendedKeyUsage: clientAuth
  const tbs = seq(ctx(0, int(2)), uint(serial), sigAlg, name, seq(time(now), time(end)), name, spki, ctx(3, ext));
  const sig = new Uint8Array(await subtle.sign({ name: "ECDSA", hash: "SHA-384" }, keys.privateKey, tbs));
  const cert = seq(tbs, sigAlg, bits(ecdsaDer(sig)));
  return { certDer: cert, keyDer: pkcs8, certPem: pem("CERTIFICATE", cert), keyPem: pem("PRIVATE KEY", pkcs8) };
}

// RFC 7292 appendix B.2 with SHA-256 (u=32, v=64), for n <= 32 bytes (one round).
async function p12kdf(password, salt, id, iterations) {
  const v = 64;
  const fill = (b) => { if (!b.length) return new Uint8Array(0); const n = v * Math.ceil(b.length / v); const o = new Uint8Array(n); for (let i = 0; i < n; i++) o[i] = b[i % b.length]; return o; };
  const pw = cat(bmp(password), Uint8Array.of(0, 0));
  let a = cat(new Uint8Array(v).fill(id), fill(salt), fill(pw));
  for (let i = 0; i < iterations; i++) a = new Uint8Array(await subtle.digest("SHA-256", a));
  return a;
}

async function pbes2Encrypt(password, data, iterations) {
  const salt = rand(16), iv = rand(16);
  const base = await subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveKey"]);
  const key = await subtle.deriveKey({ name: "PBKDF2", salt, iterations, hash: "SHA-256" }, base, { name: "AES-CBC", length: 256 }, false, ["encrypt"]);
  const enc = new Uint8Array(await subtle.encrypt({ name: "AES-CBC", iv }, key, data));
  const alg = seq(oid("1.2.840.113549.1.5.13"), seq(
    seq(oid("1.2.840.113549.1.5.12"), seq(octets(salt), int(iterations), seq(oid("1.2.840.113549.2.9"), nul()))),
    seq(oid("2.16.840.1.101.3.4.1.42"), octets(iv))));
  return seq(alg, octets(enc));
}

export async function makePkcs12(certDer, keyDer, password, friendly, iterations = 2048) {
  const localKeyId = new Uint8Array(await subtle.digest("SHA-1", certDer));
  const attrs = set(seq(oid("1.2.840.113549.1.9.21"), set(octets(localKeyId))),
    seq(oid("1.2.840.113549.1.9.20"), set(tlv(0x1e, bmp(friendly)))));
  const data = (content) => seq(oid("1.2.840.113549.1.7.1"), ctx(0, octets(content)));
  const keyBag = seq(oid("1.2.840.113549.1.12.10.1.2"), ctx(0, await pbes2Encrypt(password, keyDer, iterations)), attrs);
  const certBag = seq(oid("1.2.840.113549.1.12.10.1.3"), ctx(0, seq(oid("1.2.840.113549.1.9.22.1"), ctx(0, octets(certDer)))), attrs);
  const authSafe = seq(data(seq(certBag)), data(seq(keyBag)));
  const macSalt = rand(16);
  const macKey = await subtle.importKey("raw", await p12kdf(password, macSalt, 3, iterations), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await subtle.sign("HMAC", macKey, authSafe));
  return seq(int(3), data(authSafe), seq(seq(seq(oid("2.16.840.1.101.3.4.2.1"), nul()), octets(mac)), octets(macSalt), int(iterations)));
}

export async function fingerprint(der) {
  return Array.from(new Uint8Array(await subtle.digest("SHA-256", der)), (b) => b.toString(16).padStart(2, "0")).join("");
}
