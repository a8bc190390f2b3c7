// The demo page: demo sign-in and the chat widget (rasa-webchat on Rasa's socket.io channel).
// The widget keeps the conversation (session id and messages) in localStorage under
// "chat_session": a reload reconnects to the same session and shows the history. Signing in or
// out starts a new conversation, so that the bot greets the customer by name (or anonymously).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("site-config").textContent);
  var LOGIN_KEY = "sportello-demo-login";
  var WIDGET_KEY = "chat_session"; // rasa-webchat's storage key

  function currentLogin() {
    try {
      var login = JSON.parse(localStorage.getItem(LOGIN_KEY) || "null");
      return login && typeof login.token === "string" ? login : null;
    } catch (e) {
      return null;
    }
  }

  function restartConversation(login) {
    if (login) {
      localStorage.setItem(LOGIN_KEY, JSON.stringify(login));
    } else {
      localStorage.removeItem(LOGIN_KEY);
    }
    localStorage.removeItem(WIDGET_KEY);
    window.location.reload();
  }

  function showLogin(login) {
    var status = document.getElementById("login-status");
    status.textContent = login ? config.text.signedIn + " " + login.name : config.text.anonymous;
    document.getElementById("login-form").hidden = !!login;
    document.getElementById("logout-button").hidden = !login;
    document.body.classList.toggle("signed-in", !!login);
  }

  document.getElementById("demo-login-button").addEventListener("click", function () {
    var code = document.getElementById("demo-customer").value;
    fetch("/demo-login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ customer_code: code }),
    })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      })
      .then(function (body) {
        restartConversation({ code: body.customer_code, name: body.name, token: body.token });
      })
      .catch(function () {
        document.getElementById("login-status").textContent = config.text.loginFailed;
      });
  });
  document.getElementById("logout-button").addEventListener("click", function () {
    restartConversation(null);
  });

  // "The assistant is typing…" from the customer's message until the bot's reply: the widget's
  // own indicator only covers the short delay before each reply is shown.
  function watchTyping(container) {
    var indicator = document.getElementById("bot-working");
    var timer = null;
    function show(on) {
      indicator.hidden = !on;
      clearTimeout(timer);
      if (on) timer = setTimeout(function () { indicator.hidden = true; }, 30000);
    }
    new MutationObserver(function (mutations) {
      mutations.forEach(function (m) {
        m.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1) return;
          if (node.querySelector(".rw-response") || (node.classList && node.classList.contains("rw-response"))) show(false);
          else if (node.querySelector(".rw-client") || (node.classList && node.classList.contains("rw-client"))) show(true);
        });
      });
    }).observe(container, { childList: true, subtree: true });
  }

  var login = currentLogin();
  showLogin(login);
  watchTyping(document.getElementById("webchat"));
  window.WebChat.default(
    {
      socketUrl: config.rasaUrl,
      socketPath: "/socket.io/",
      // The first message, not shown: the bot detects the page's language from it; a signed-in
      // customer's profile language comes first.
      initPayload: config.chat.greeting,
      customData: login ? { customer_token: login.token } : {},
      title: config.chat.title,
      subtitle: config.chat.subtitle,
      inputTextFieldHint: config.chat.hint,
      embedded: true,
      showMessageDate: false,
      params: { storage: "local" },
    },
    document.getElementById("webchat")
  );
})();
