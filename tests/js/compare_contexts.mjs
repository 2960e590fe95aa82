// Compare every official context Attest ships with the npm package's copy:
// byte for byte where the package ships a file, by JSON value (key order
// included) where it ships a JavaScript module. Answer: {results: [...]}.
import fs from 'node:fs';
import path from 'node:path';
import {createRequire} from 'node:module';
import {CONTEXTS_DIR, MANIFEST, serve} from './loader.mjs';

const require = createRequire(import.meta.url);

function packageDir(name) {
  return path.resolve(CONTEXTS_DIR, '../../node_modules', name);
}

await serve(async () => {
  const results = [];
  for(const [url, entry] of Object.entries(MANIFEST.official)) {
    const shipped = fs.readFileSync(path.join(CONTEXTS_DIR, entry.file));
    const {package: name, file, export: exported, key} = entry.source;
    const version = JSON.parse(fs.readFileSync(path.join(packageDir(name), 'package.json'))).version;
    let match;
    if(file) {
      match = shipped.equals(fs.readFileSync(path.join(packageDir(name), file)));
    } else {
      const fromPackage = require(name)[exported].get(key);
      match = JSON.stringify(JSON.parse(shipped.toString('utf8'))) === JSON.stringify(fromPackage);
    }
    results.push({url, package: `${name}@${version}`, match});
  }
  return {results};
});
