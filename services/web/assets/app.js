// Enhancements only: every page works without this script.
(function () {
  'use strict';

  // The error summary takes the focus when a form comes back with errors.
  var summary = document.getElementById('error-summary');
  if (summary) summary.focus();

  // Conditional fields: shown at once when the answer they depend on applies.
  var conditionals = document.querySelectorAll('[data-when-field]');
  function valueOf(form, name) {
    var values = [];
    var inputs = form.querySelectorAll('[name="' + name + '"]');
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if ((el.type === 'checkbox' || el.type === 'radio') && !el.checked) continue;
      values.push(el.type === 'checkbox' && el.value === 'true' ? 'true' : el.value);
    }
    return values;
  }
  function update() {
    for (var i = 0; i < conditionals.length; i++) {
      var c = conditionals[i];
      var form = c.closest('form');
      if (!form) continue;
      var wanted = (c.getAttribute('data-when-values') || '').split(' ');
      var got = valueOf(form, c.getAttribute('data-when-field'));
      var show = got.some(function (v) { return wanted.indexOf(v) !== -1; });
      c.hidden = !show;
      var hint = c.querySelector('.sp-when');
      if (hint) hint.hidden = true;
    }
  }
  if (conditionals.length) {
    document.addEventListener('change', update);
    update();
  }

  // Autosave while typing: the step's answers are saved (not checked) a moment after a change.
  var step = document.querySelector('form[data-autosave]');
  if (step && window.fetch && window.FormData) {
    var timer = null;
    var save = function () {
      var data = new FormData(step);
      var plain = new URLSearchParams();
      data.forEach(function (value, key) {
        if (typeof value === 'string') plain.append(key, value);
      });
      plain.append('autosave', '1');
      fetch(step.getAttribute('action'), {
        method: 'POST', body: plain, credentials: 'same-origin',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'}
      }).catch(function () {});
    };
    step.addEventListener('input', function (e) {
      if (e.target && e.target.type === 'file') return;
      clearTimeout(timer);
      timer = setTimeout(save, 1500);
    });
    step.addEventListener('submit', function () { clearTimeout(timer); });
  }

  // A submit button that must act once is disabled after the first click (the server
  // also takes a second submission as the first).
  var once = document.querySelectorAll('button[data-once]');
  for (var k = 0; k < once.length; k++) {
    once[k].form.addEventListener('submit', function (e) {
      var b = e.target.querySelector('button[data-once]');
      if (b) setTimeout(function () { b.disabled = true; }, 0);
    });
  }
}());
