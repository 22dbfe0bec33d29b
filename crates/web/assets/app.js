// cw's pages: "/" focuses the search box; the search form follows the URL; the overview
// refreshes its clusters in place.
(function () {
  'use strict';
  document.addEventListener('keydown', function (e) {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var tag = t && t.tagName;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (t && t.isContentEditable)) return;
    var q = document.getElementById('q');
    if (!q) return;
    e.preventDefault();
    q.focus();
    q.select();
  });

  // The search form shows the query and filters of the URL (what the page answers), also
  // when the browser brings the page back with the edits a reader made before leaving it.
  window.addEventListener('pageshow', function () {
    var form = document.querySelector('form.search');
    if (form) form.reset();
  });

  var fleet = document.getElementById('fleet');
  if (!fleet || !fleet.dataset.refresh || !window.fetch) return;
  var updated = document.getElementById('updated');
  function refresh() {
    // Never pull the page from under a reader's keyboard focus.
    if (fleet.contains(document.activeElement)) return;
    fetch(fleet.dataset.refresh, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { window.location.reload(); return null; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        fleet.innerHTML = html;
        if (updated) updated.textContent = 'Updated at ' + new Date().toLocaleTimeString() + '; refreshes every 10 seconds.';
      })
      .catch(function () {
        if (updated) updated.textContent = 'Could not refresh; trying again in 10 seconds.';
      });
  }
  window.setInterval(refresh, 10000);
})();
