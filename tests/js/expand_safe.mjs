// jsonld.js 9 expansion with `safe: true` over a whole document (proofs
// included), recording every event it raises on the way, safe-mode ones or
// not. Request: {document}. Answer: {ok, error, events}.
import jsonld from 'jsonld';
import {describeError, makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({document}) => {
  const events = [];
  const eventHandler = ({event, next}) => {
    events.push(`${event.level}: ${event.code}`);
    next();
  };
  try {
    await jsonld.expand(document, {documentLoader: makeDocumentLoader(), safe: true, eventHandler});
    return {ok: true, error: null, events};
  } catch(error) {
    return {ok: false, error: describeError(error), events};
  }
});
