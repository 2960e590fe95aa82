// RDFC-1.0 canonical N-Quads as Digital Bazaar's eddsa-rdfc-2022 computes
// them (jsonld.js toRDF, then rdf-canonize). Request: {documents: [...]}.
// Answer: {nquads: [...]} (null for a document it refuses, with errors).
import {cryptosuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {describeError, makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({documents}) => {
  const documentLoader = makeDocumentLoader();
  const nquads = [];
  const errors = [];
  for(const document of documents) {
    try {
      nquads.push(await cryptosuite.canonize(document, {documentLoader}));
      errors.push(null);
    } catch(error) {
      nquads.push(null);
      errors.push(describeError(error));
    }
  }
  return {nquads, errors};
});
