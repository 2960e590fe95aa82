// Verify a credential with Digital Bazaar's @digitalbazaar/vc and the
// eddsa-rdfc-2022 cryptosuite, offline. Request: {credential, didDocuments,
// documents}. Answer: {verified, errors, revoked}. A credential with a
// BitstringStatusListEntry has its status checked with
// @digitalbazaar/vc-bitstring-status-list (its list credential among
// `documents`, its proof verified too).
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import {describeError, makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({credential, didDocuments, documents}) => {
  const documentLoader = makeDocumentLoader({didDocuments, documents});
  const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});
  const result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus});
  const errors = [];
  if(result.error) {
    errors.push(describeError(result.error));
  }
  for(const proofResult of result.results || []) {
    if(!proofResult.verified) {
      errors.push(describeError(proofResult.error));
    }
  }
  const statuses = result.statusResult?.results || [];
  return {
    verified: result.verified,
    errors,
    proofsVerified: (result.results || []).filter(r => r.verified).length,
    revoked: statuses.length ? statuses.some(r => r.status === true) : null,
  };
});
