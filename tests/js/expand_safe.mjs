// jsonld.js 9 expansion with `safe: true` over a whole document (proofs
// included). Request: {document}. Answer: {ok, error}.
import jsonld from 'jsonld';
import {describeError, makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({document}) => {
  try {
    await jsonld.expand(document, {documentLoader: makeDocumentLoader(), safe: true});
    return {ok: true, error: null};
  } catch(error) {
    return {ok: false, error: describeError(error)};
  }
});
