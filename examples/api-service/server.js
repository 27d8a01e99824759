// Demo API for mini-idp preview environments (api-service template).
// Dependency-free: Node's http module only. Listens on $PORT.
//   GET  /health  -> {"status":"ok", ...}
//   GET  /env     -> environment the platform injected (secrets redacted)
//   POST /echo    -> echoes the request body; GET /echo?msg=x echoes the query
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 3000);
const started = new Date().toISOString();
const version = process.env.APP_VERSION || 'v1';

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/health') {
    return send(res, 200, { status: 'ok', service: 'api-service-demo', version, started });
  }
  if (url.pathname === '/env') {
    const shown = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (/^(PORT|APP_|IDP_ENVIRONMENT|NODE_ENV|GREETING)/.test(k)) shown[k] = v;
    }
    return send(res, 200, shown);
  }
  if (url.pathname === '/echo') {
    if (req.method === 'GET') {
      console.log(`echo: ${url.searchParams.get('msg')}`);
      return send(res, 200, { echo: url.searchParams.get('msg') });
    }
    let body = '';
    req.on('data', (c) => { body += c; if (body.length > 1e6) req.destroy(); });
    req.on('end', () => send(res, 200, { echo: body }));
    return;
  }
  if (url.pathname === '/') {
    return send(res, 200, { service: 'api-service-demo', version, endpoints: ['/health', '/env', '/echo'] });
  }
  send(res, 404, { error: 'not_found', path: url.pathname });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`api-service-demo ${version} listening on ${port}`);
});

function shutdown(signal) {
  console.log(`received ${signal}, shutting down`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
