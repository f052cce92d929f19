// Classic (non-module) watchdog loaded before app.js: if the app module fails to load or
// throws while starting, show what happened instead of leaving "Loading…" on screen.
(function () {
  var firstError = '';
  window.addEventListener('error', function (e) {
    if (!firstError) firstError = (e && e.message) || 'a script failed to load';
  }, true);
  function check() {
    if (window.pocketlogDashboard) return;
    var app = document.getElementById('app');
    if (!app) return;
    var p = document.createElement('div');
    p.className = 'error-box';
    p.setAttribute('role', 'alert');
    p.textContent = 'The dashboard failed to start' + (firstError ? ': ' + firstError : '.') +
      ' Reload the page; if it persists, check the server log.';
    app.replaceChildren(p);
  }
  window.addEventListener('load', function () { setTimeout(check, 3000); });
})();
