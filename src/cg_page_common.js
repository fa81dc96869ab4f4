/*
 * Shared by the status dashboard (cg_dashboard.html) and a team's own page
 * (cg_self.html), put into each page's script by bin/gen-c-string.
 */
function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(v, d) {
  if (v === null || v === undefined || v !== v) return "-";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return d === undefined ? String(v) : v.toFixed(d);
}
/*
 * This location's JSON: ?format=json and q, arguments of the page's own
 * making ("sort=rate&limit=200"; a value from elsewhere, a client's name,
 * goes in through encodeURIComponent()); an error has the HTTP status.
 */
function get(q) {
  return fetch(location.pathname + "?format=json" + (q ? "&" + q : ""), {
    cache: "no-store", headers: { Accept: "application/json" }
  }).then(function (r) {
    if (!r.ok) {
      var e = new Error("HTTP " + r.status);
      e.status = r.status;
      throw e;
    }
    return r.json();
  });
}
