// Builds the site into dist/ (what `local.build` runs): an index page, a client-side
// router script and a stylesheet. No dependencies.
'use strict';
const fs = require('fs');
const path = require('path');

const out = path.join(__dirname, 'dist');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'assets'), { recursive: true });
const built = new Date().toISOString();
const index = fs.readFileSync(path.join(__dirname, 'src', 'index.html'), 'utf8').replace('{{built}}', built);
fs.writeFileSync(path.join(out, 'index.html'), index);
fs.copyFileSync(path.join(__dirname, 'src', 'app.js'), path.join(out, 'assets', 'app.js'));
fs.copyFileSync(path.join(__dirname, 'src', 'style.css'), path.join(out, 'assets', 'style.css'));
console.log(`built dist/ (index.html, assets/app.js, assets/style.css) at ${built}`);
