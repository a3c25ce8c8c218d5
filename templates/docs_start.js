// Starts Swagger UI on /docs (a file, not an inline script, so the page's Content-Security-Policy stays strict).
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: {{ spec_url | tojson }},
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: false
  });
});
