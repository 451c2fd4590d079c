"use strict";
// Says why the last login did not work (the server redirects with ?login=…).
document.addEventListener("DOMContentLoaded", () => {
  const reasons = {
    refused: "That key or token was not accepted.",
    empty: "Enter an API key or a token.",
  };
  const why = new URLSearchParams(location.search).get("login");
  const box = document.getElementById("login-error");
  if (why && reasons[why]) {
    box.textContent = reasons[why];
    box.hidden = false;
  }
});
