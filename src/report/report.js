// auditwatch forensics report: filters, timeline tooltips and brushing. Vanilla JS, no
// network. Page text is only ever read with textContent and written with textContent, so
// nothing from the audit log is parsed as HTML here.
(function () {
  'use strict';
  var $ = function (s, r) { return (r || document).querySelector(s); };
  var $$ = function (s, r) { return Array.prototype.slice.call((r || document).querySelectorAll(s)); };

  var alerts = $$('article.alert');
  var svg = $('#timeline');
  var marks = {};
  $$('#timeline .m').forEach(function (m) { marks[m.getAttribute('data-a')] = m; });
  var f = {
    cat: $('#f-cat'), sev: $('#f-sev'), tenant: $('#f-tenant'), actor: $('#f-actor'),
    from: $('#f-from'), to: $('#f-to'), text: $('#f-text')
  };
  var keys = ['cat', 'sev', 'tenant', 'actor', 'from', 'to', 'text'];
  var info = alerts.map(function (a) {
    var tenants = [];
    try { tenants = JSON.parse(a.getAttribute('data-tenants') || '[]'); } catch (e) { tenants = []; }
    return {
      el: a, id: a.id, cat: a.getAttribute('data-cat'), sev: a.getAttribute('data-sev'),
      t: +a.getAttribute('data-t'), tenants: tenants,
      actor: (a.getAttribute('data-actor') || '').toLowerCase(), text: null, shown: true
    };
  });

  // Times are UTC: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS`; a bound
  // covers its whole last unit (`To 03:25` includes 03:25:59).
  function parseT(input) {
    var v = input.value.trim();
    input.classList.remove('bad');
    if (!v) return null;
    var m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?Z?$/.exec(v);
    var t = m ? Date.parse(m[1] + 'T' + (m[2] || '00') + ':' + (m[3] || '00') + ':' + (m[4] || '00') + (m[5] || '') + 'Z') : NaN;
    if (isNaN(t)) { input.classList.add('bad'); return null; }
    return { t: t, step: m[5] ? 1 : m[4] ? 1000 : m[2] ? 60000 : 86400000 };
  }
  function fmtT(ms) { return new Date(ms).toISOString().slice(0, 19).replace('T', ' '); }

  function apply() {
    var cat = f.cat.value, sev = f.sev.value;
    var ten = f.tenant.value.trim(), act = f.actor.value.trim().toLowerCase();
    var txt = f.text.value.trim().toLowerCase();
    var from = parseT(f.from), to = parseT(f.to);
    var shown = 0;
    info.forEach(function (a) {
      var ok = (!cat || a.cat === cat) && (!sev || a.sev === sev) &&
        (!ten || a.tenants.indexOf(ten) >= 0) &&
        (!act || a.actor.indexOf(act) >= 0) &&
        (!from || a.t >= from.t) && (!to || a.t < to.t + to.step);
      if (ok && txt) {
        if (a.text === null) a.text = a.el.textContent.toLowerCase();
        ok = a.text.indexOf(txt) >= 0;
      }
      if (a.shown !== ok) {
        a.shown = ok;
        a.el.hidden = !ok;
        var m = marks[a.id];
        if (m) m.classList.toggle('off', !ok);
      }
      if (ok) shown++;
    });
    $('#shown').textContent = shown.toLocaleString('en-US');
    $('#no-match').hidden = shown > 0 || info.length === 0;
    drawSelection(from, to);
    saveHash();
  }

  function saveHash() {
    var parts = [];
    keys.forEach(function (k) {
      if (f[k].value) parts.push(k + '=' + encodeURIComponent(f[k].value));
    });
    // Leave a plain anchor (#a12) alone until a filter is set.
    if (!parts.length && location.hash.indexOf('=') < 0) return;
    try { history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname + location.search); } catch (e) { /* file:// may refuse */ }
  }
  function loadHash() {
    var h = location.hash.replace(/^#/, '');
    if (!h || h.indexOf('=') < 0) return;
    h.split('&').forEach(function (p) {
      var i = p.indexOf('=');
      var k = p.slice(0, i), v = decodeURIComponent(p.slice(i + 1));
      if (keys.indexOf(k) >= 0) f[k].value = v;
    });
  }

  keys.forEach(function (k) {
    f[k].addEventListener('input', apply);
    f[k].addEventListener('change', apply);
  });
  $('#f-reset').addEventListener('click', function () {
    keys.forEach(function (k) { f[k].value = ''; });
    apply();
  });

  // Table rows and severity tiles set a filter.
  $$('[data-set]').forEach(function (tr) {
    tr.addEventListener('click', function () {
      var k = tr.getAttribute('data-set');
      f[k].value = tr.getAttribute('data-v');
      apply();
      $('#alerts').scrollIntoView({ behavior: 'smooth', block: 'start' });
    });
  });

  var expand = $('#expand');
  if (expand) {
    expand.addEventListener('click', function () {
      var open = expand.getAttribute('data-open') !== '1';
      $$('article.alert details').forEach(function (d) { d.open = open; });
      expand.setAttribute('data-open', open ? '1' : '0');
      expand.textContent = open ? 'Collapse all' : 'Expand all';
    });
  }

  function openAlert(id) {
    var a = document.getElementById(id);
    if (!a) return;
    var d = $('details', a);
    if (d) d.open = true;
    a.scrollIntoView({ behavior: 'smooth', block: 'center' });
    a.classList.remove('flash');
    void a.offsetWidth;
    a.classList.add('flash');
  }

  loadHash();
  if (!svg) { apply(); return; }

  // Tooltip: built with textContent from the alert's own card.
  var tip = $('#tip');
  function showTip(m, x, y) {
    var a = document.getElementById(m.getAttribute('data-a'));
    if (!a) return;
    tip.textContent = '';
    var head = document.createElement('div');
    var sev = document.createElement('span');
    sev.className = 'sev ' + a.getAttribute('data-sev');
    sev.textContent = a.getAttribute('data-sev');
    var t = document.createElement('span');
    t.className = 't';
    t.textContent = $('time', a).textContent + ' UTC · ' + $('.cat', a).textContent;
    head.appendChild(sev); head.appendChild(t);
    var s = document.createElement('div');
    s.className = 's';
    s.textContent = $('.summary', a).textContent;
    var who = document.createElement('div');
    who.className = 'a';
    var actor = $('.actor', a);
    who.textContent = actor ? actor.textContent : '';
    tip.appendChild(head); tip.appendChild(s); tip.appendChild(who);
    tip.hidden = false;
    place(x, y);
  }
  function place(x, y) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = Math.min(x + 14, window.innerWidth - w - 8);
    var top = y + 16 + h > window.innerHeight ? y - h - 12 : y + 16;
    tip.style.left = Math.max(8, left) + 'px';
    tip.style.top = Math.max(8, top) + 'px';
  }
  svg.addEventListener('mouseover', function (e) {
    var m = e.target.closest('.m');
    if (m) showTip(m, e.clientX, e.clientY);
  });
  svg.addEventListener('mousemove', function (e) {
    if (!tip.hidden) place(e.clientX, e.clientY);
  });
  svg.addEventListener('mouseout', function (e) {
    if (e.target.closest('.m')) tip.hidden = true;
  });
  svg.addEventListener('focusin', function (e) {
    var m = e.target.closest('.m');
    if (m) { var r = m.getBoundingClientRect(); showTip(m, r.right, r.bottom); }
  });
  svg.addEventListener('focusout', function () { tip.hidden = true; });
  svg.addEventListener('click', function (e) {
    var m = e.target.closest('.m');
    if (m) { tip.hidden = true; openAlert(m.getAttribute('data-a')); }
  });
  svg.addEventListener('keydown', function (e) {
    var m = e.target.closest('.m');
    if (m && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); openAlert(m.getAttribute('data-a')); }
  });

  // Brushing: drag across the chart to set the time range.
  var t0 = +svg.getAttribute('data-t0'), t1 = +svg.getAttribute('data-t1');
  var x0 = +svg.getAttribute('data-x0'), x1 = +svg.getAttribute('data-x1');
  var brush = $('#brush'), sel = $('#sel'), catcher = $('#catch');
  function toX(clientX) {
    var p = svg.createSVGPoint();
    p.x = clientX; p.y = 0;
    var m = svg.getScreenCTM();
    var x = m ? p.matrixTransform(m.inverse()).x : x0;
    return Math.max(x0, Math.min(x1, x));
  }
  function toT(x) { return t0 + (x - x0) / (x1 - x0) * (t1 - t0); }
  function toXt(t) { return x0 + (t - t0) / (t1 - t0) * (x1 - x0); }
  function drawSelection(from, to) {
    if (!sel) return;
    if (!from && !to) { sel.setAttribute('width', 0); return; }
    var a = !from ? x0 : Math.max(x0, Math.min(x1, toXt(from.t)));
    var b = !to ? x1 : Math.max(x0, Math.min(x1, toXt(to.t + to.step)));
    sel.setAttribute('x', Math.min(a, b));
    sel.setAttribute('width', Math.abs(b - a));
  }
  var start = null;
  catcher.addEventListener('pointerdown', function (e) {
    start = toX(e.clientX);
    catcher.setPointerCapture(e.pointerId);
    brush.setAttribute('x', start);
    brush.setAttribute('width', 0);
  });
  catcher.addEventListener('pointermove', function (e) {
    if (start === null) return;
    var x = toX(e.clientX);
    brush.setAttribute('x', Math.min(start, x));
    brush.setAttribute('width', Math.abs(x - start));
  });
  catcher.addEventListener('pointerup', function (e) {
    if (start === null) return;
    var x = toX(e.clientX), a = Math.min(start, x), b = Math.max(start, x);
    start = null;
    brush.setAttribute('width', 0);
    if (b - a < 3) return;
    f.from.value = fmtT(Math.floor(toT(a) / 1000) * 1000);
    f.to.value = fmtT(Math.ceil(toT(b) / 1000) * 1000 - 1000);
    apply();
  });

  apply();
})();
