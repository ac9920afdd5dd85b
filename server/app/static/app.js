// casefhir case management: small progressive enhancements; every page
// works without script.
(function () {
  'use strict';
  // The closure reason matters only when a case finishes or is cancelled.
  document.querySelectorAll('select[data-closure]').forEach(function (status) {
    var form = status.form;
    var closure = form && form.querySelector('.closure');
    if (!closure) return;
    var sync = function () {
      closure.hidden = !(status.value === 'finished' || status.value === 'cancelled');
    };
    status.addEventListener('change', sync);
    sync();
  });
  // Move the focus to the problems of a refused action, for keyboard and
  // screen-reader users.
  var problems = document.querySelector('.problems');
  if (problems) {
    problems.setAttribute('tabindex', '-1');
    problems.focus();
  }
})();
