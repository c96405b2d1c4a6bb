// Swagger UI for the API's own OpenAPI document, same origin. When the playground signed in this tab, its key
// (sessionStorage only) is pre-filled as the bearer token, so "Try it out" works straight away.
/* global SwaggerUIBundle */
'use strict';
window.addEventListener('DOMContentLoaded', () => {
  const ui = SwaggerUIBundle({
    url: '/v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    docExpansion: 'list',
    filter: true,
    tryItOutEnabled: false,
    persistAuthorization: false, // it would copy the key into localStorage
    validatorUrl: null, // the default validator is another host
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    onComplete: () => {
      const key = sessionStorage.getItem('vidgen.apiKey');
      if (key) ui.preauthorizeApiKey('bearerAuth', key);
    },
  });
});
