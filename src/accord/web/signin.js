// The sign-in page: only shows why a sign-in was refused (text, never markup).
"use strict";
(function () {
  const reason = new URLSearchParams(location.search).get("error");
  if (!reason) return;
  const el = document.getElementById("signin-error");
  el.textContent = reason === "refused"
    ? "Wrong user name or password, or too many attempts: wait and try again."
    : "Enter a user name and a password.";
  el.hidden = false;
})();
