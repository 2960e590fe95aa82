// Check a credential's BitstringStatusListEntry with
// @digitalbazaar/vc-bitstring-status-list, verifying the status list
// credential's own Data Integrity proof and that both have one issuer.
// Request: {credential, statusListCredential, didDocuments}.
// Answer: {verified, revoked, error}.
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import {describeError, makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({credential, statusListCredential, didDocuments}) => {
  const documentLoader = makeDocumentLoader({
    didDocuments, documents: {[statusListCredential.id]: statusListCredential}});
  const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});
  const result = await checkStatus({
    credential, documentLoader, suite,
    verifyBitstringStatusListCredential: true, verifyMatchingIssuers: true});
  return {
    verified: result.verified,
    revoked: result.verified ? result.results.some(r => r.status === true) : null,
    error: describeError(result.error),
  };
});
