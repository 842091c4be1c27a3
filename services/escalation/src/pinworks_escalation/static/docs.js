// The API docs page: Swagger UI served by the console itself (no CDN), reading the signed-in
// /openapi.json; "Try it out" sends the session's CSRF token like the console's own forms.
(function () {
  const root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  const csrf = root.dataset.csrf;
  window.SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: false,
    requestInterceptor: function (request) {
      if (csrf) request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });
})();
