// An offline JSON-LD document loader for the third-party checks, built from
// credentials/contexts/manifest.json (the same pinned files Attest's Python
// loader serves) plus documents the test hands over: DID documents (did:web
// is resolved from them, never over the network) and status list
// credentials by URL. Everything else is refused, naming the URL.
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CONTEXTS_DIR = path.resolve(here, '../../credentials/contexts');
export const MANIFEST = JSON.parse(fs.readFileSync(path.join(CONTEXTS_DIR, 'manifest.json'), 'utf8'));

function readContext(file) {
  return JSON.parse(fs.readFileSync(path.join(CONTEXTS_DIR, file), 'utf8'));
}

const official = new Map(Object.entries(MANIFEST.official).map(([url, e]) => [url, readContext(e.file)]));
const installation = Object.entries(MANIFEST.installation).map(([p, e]) => [p, readContext(e.file)]);

// The Attest context: `<any http(s) origin>[/prefix]/contexts/attest/v1`, as
// credentials/jsonld.py accepts it.
function installationContext(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if(!['http:', 'https:'].includes(parsed.protocol) || parsed.search || parsed.hash ||
     parsed.username || url.includes('#') || url.includes('?')) {
    return undefined;
  }
  for(const [suffix, document] of installation) {
    if(parsed.pathname.endsWith(suffix)) {
      return document;
    }
  }
  return undefined;
}

export function makeDocumentLoader({didDocuments = [], documents = {}} = {}) {
  const dids = new Map(didDocuments.map(doc => [doc.id, doc]));
  return async url => {
    const found = official.get(url) ?? installationContext(url) ?? documents[url];
    if(found !== undefined) {
      return {contextUrl: null, documentUrl: url, document: structuredClone(found)};
    }
    const [did, fragment] = url.split('#');
    const didDocument = dids.get(did);
    if(didDocument) {
      if(fragment === undefined) {
        return {contextUrl: null, documentUrl: url, document: structuredClone(didDocument)};
      }
      const method = (didDocument.verificationMethod || []).find(m => m.id === url);
      if(method) {
        return {contextUrl: null, documentUrl: url,
          document: {'@context': didDocument['@context'], ...structuredClone(method)}};
      }
    }
    throw new Error(`offline document loader refused ${url}`);
  };
}

// One JSON request on stdin, one JSON answer on stdout.
export async function serve(handler) {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const answer = await handler(request);
  process.stdout.write(JSON.stringify(answer) + '\n');
}

export function describeError(error) {
  if(!error) {
    return null;
  }
  const parts = [error.message || String(error)];
  if(error.details && error.details.event) {
    const {code, details} = error.details.event;
    parts.push(`event: ${code}${details && details.property ? ` (${details.property})` : ''}` +
      `${details && details.type ? ` (${JSON.stringify(details.type)})` : ''}`);
  }
  if(Array.isArray(error.errors)) {
    parts.push(...error.errors.map(describeError));
  }
  if(error.cause && error.cause !== error) {
    parts.push(`cause: ${describeError(error.cause)}`);
  }
  return parts.filter(Boolean).join('; ');
}
