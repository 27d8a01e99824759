// Notes API for mini-idp preview environments (api-database template).
// The platform gives the app its own PostgreSQL database through DATABASE_URL (and
// DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD). Listens on $PORT.
//   GET    /health      -> 200 {"status":"ok","database":"ok"} when the database answers, else 503
//   POST   /notes       -> 201 the new note; body {"text": "..."}
//   GET    /notes       -> 200 every note, oldest first
//   GET    /notes/:id   -> 200 the note, or 404
//   DELETE /notes/:id   -> 204, or 404
'use strict';
const http = require('http');
const { Pool } = require('pg');

const port = Number(process.env.PORT || 3000);
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 5, connectionTimeoutMillis: 5000 });
pool.on('error', (err) => console.error(`database connection lost: ${err.message}`));

// A seed (database.seed) may have created the table already; otherwise the app does.
async function migrate() {
  await pool.query(`CREATE TABLE IF NOT EXISTS notes (
    id         serial PRIMARY KEY,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`);
}

function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status);
    return res.end();
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
      if (body.length > 1e6) {
        reject(new Error('body too large'));
        req.destroy();
      }
    });
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch (e) {
        reject(new Error('expected a JSON body'));
      }
    });
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path === '/health') {
    try {
      await pool.query('SELECT 1');
      return send(res, 200, { status: 'ok', database: 'ok', service: 'api-database-demo' });
    } catch (e) {
      return send(res, 503, { status: 'unhealthy', database: e.message });
    }
  }
  if (path === '/notes' && req.method === 'POST') {
    let body;
    try {
      body = await readJson(req);
    } catch (e) {
      return send(res, 400, { error: 'bad_request', message: e.message });
    }
    if (typeof body.text !== 'string' || body.text.length === 0) {
      return send(res, 400, { error: 'bad_request', message: 'expected {"text": "..."}' });
    }
    const r = await pool.query('INSERT INTO notes (text) VALUES ($1) RETURNING id, text, created_at', [body.text]);
    return send(res, 201, r.rows[0]);
  }
  if (path === '/notes' && req.method === 'GET') {
    const r = await pool.query('SELECT id, text, created_at FROM notes ORDER BY id');
    return send(res, 200, r.rows);
  }
  const m = path.match(/^\/notes\/(\d+)$/);
  if (m && req.method === 'GET') {
    const r = await pool.query('SELECT id, text, created_at FROM notes WHERE id = $1', [Number(m[1])]);
    return r.rowCount ? send(res, 200, r.rows[0]) : send(res, 404, { error: 'not_found' });
  }
  if (m && req.method === 'DELETE') {
    const r = await pool.query('DELETE FROM notes WHERE id = $1', [Number(m[1])]);
    return r.rowCount ? send(res, 204) : send(res, 404, { error: 'not_found' });
  }
  if (path === '/') {
    return send(res, 200, { service: 'api-database-demo', endpoints: ['/health', '/notes', '/notes/:id'] });
  }
  return send(res, 404, { error: 'not_found', path: url.pathname });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(`${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) send(res, 500, { error: 'internal', message: e.message });
  });
});

migrate()
  .then(() => {
    server.listen(port, '127.0.0.1', () => console.log(`api-database-demo listening on ${port}`));
  })
  .catch((e) => {
    console.error(`cannot prepare the database: ${e.message}`);
    process.exit(1);
  });

function shutdown(signal) {
  console.log(`received ${signal}, shutting down`);
  server.close(() => pool.end().then(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
